package redissession

import (
	"context"
	"sync"

	"github.com/kedascalers/kedascalers/libs/scalerkit/share"
)

// gateWaiting bounds the reads of one namespace waiting for a connection.
// The scaler's own per-namespace bound (MAX_CALLS_PER_NAMESPACE) keeps
// far fewer in flight; this only caps the memory of the queue.
const gateWaiting = 4096

// gate gives reads their turn for a Redis connection: at most capacity
// at once (REDIS_MAX_CONNECTIONS less what pub/sub and Sentinel keep), at
// most half of them to one namespace, and each freed turn to the
// namespaces waiting in turn (share.Queue). A read that finds every
// connection busy waits instead of failing.
type gate struct {
	capacity int
	q        *share.Queue
	report   share.Options

	mu      sync.Mutex
	byNS    map[string]int
	largest int
}

func newGate(capacity int, report share.Options) *gate {
	g := &gate{capacity: capacity, report: report, byNS: map[string]int{}}
	g.q = share.NewQueue(capacity, max(1, capacity/2), gateWaiting, report.Held)
	return g
}

// acquire waits the turn of a read of namespace ns until ctx ends.
func (g *gate) acquire(ctx context.Context, ns string) (release func(), err error) {
	leave, err := g.q.Acquire(ctx, ns)
	if err != nil {
		return nil, err
	}
	g.count(ns, 1)
	var once sync.Once
	return func() {
		once.Do(func() {
			g.count(ns, -1)
			leave()
		})
	}, nil
}

// count adds d to the reads of ns and reports the largest namespace's.
func (g *gate) count(ns string, d int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := g.byNS[ns] + d
	if n <= 0 {
		delete(g.byNS, ns)
	} else {
		g.byNS[ns] = n
	}
	largest := g.largest
	if n > largest {
		largest = n
	} else if d < 0 && n+1 == largest {
		largest = 0
		for _, m := range g.byNS {
			largest = max(largest, m)
		}
	}
	if largest != g.largest {
		g.largest = largest
		if g.report.Largest != nil {
			g.report.Largest(largest)
		}
	}
}
