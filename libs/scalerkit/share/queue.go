package share

import (
	"context"
	"errors"
	"slices"
	"sync"
)

// ErrQueueFull is returned by Queue.Acquire when the namespace already has
// as many calls waiting as the Queue lets one namespace queue.
var ErrQueueFull = errors.New("share: the namespace's queue is full")

// Queue bounds the calls running at once, overall (capacity) and per
// namespace (perNamespace), and hands each freed place to the namespaces
// that wait in turn, round robin, each namespace's calls in order: a
// namespace's burst waits behind its own calls, never in front of
// another namespace's. It is safe for concurrent use.
type Queue struct {
	capacity, perNamespace, waiting int
	opts                            QueueOptions

	mu      sync.Mutex
	total   int
	waiters int                // calls waiting, all namespaces
	byNS    map[string]*queued // present while it has calls running or waiting
	turn    []*queued          // namespaces with calls waiting, next first
	// runningBy[k] is the number of namespaces running k calls (k <=
	// perNamespace), so that the largest is found without a scan.
	runningBy []int
	largest   int // as last reported
}

// QueueOptions configures a Queue's reports; every field is optional and
// is called under the Queue's lock.
type QueueOptions struct {
	// Running is called with the calls running whenever it changes.
	Running func(n int)
	// Waiting is called with the calls waiting whenever it changes.
	Waiting func(n int)
	// Largest is called with the calls running of the namespace running
	// the most whenever it changes.
	Largest func(n int)
}

type queued struct {
	ns      string
	running int
	waiters []chan struct{} // closed when handed a place
}

// NewQueue returns a Queue running at most capacity calls at once, at most
// perNamespace of one namespace, with at most waiting calls of one
// namespace waiting. running, when set, is called with the number of
// calls running whenever it changes, under the Queue's lock.
func NewQueue(capacity, perNamespace, waiting int, running func(n int)) *Queue {
	return NewQueueWith(capacity, perNamespace, waiting, QueueOptions{Running: running})
}

// NewQueueWith is NewQueue with every report of opts.
func NewQueueWith(capacity, perNamespace, waiting int, opts QueueOptions) *Queue {
	perNamespace = max(perNamespace, 1)
	return &Queue{capacity: max(capacity, 1), perNamespace: perNamespace, waiting: waiting,
		opts: opts, byNS: map[string]*queued{}, runningBy: make([]int, perNamespace+1)}
}

// Acquire takes a place for a call of namespace ns, waiting its turn
// until ctx ends. It returns ErrQueueFull at once when ns already has its
// most calls waiting. The returned release gives the place back; it is
// safe to call more than once.
func (q *Queue) Acquire(ctx context.Context, ns string) (release func(), err error) {
	q.mu.Lock()
	n := q.byNS[ns]
	if n == nil {
		n = &queued{ns: ns}
		q.byNS[ns] = n
	}
	// Nobody waits for a place this call could take: a namespace waits
	// only while it is at perNamespace or every place is taken.
	if q.total < q.capacity && n.running < q.perNamespace && len(n.waiters) == 0 {
		q.startLocked(n)
		q.mu.Unlock()
		return q.releaser(n), nil
	}
	if len(n.waiters) >= q.waiting {
		q.forgetLocked(n)
		q.mu.Unlock()
		return nil, ErrQueueFull
	}
	w := make(chan struct{})
	if len(n.waiters) == 0 {
		q.turn = append(q.turn, n)
	}
	n.waiters = append(n.waiters, w)
	q.waitedLocked(1)
	q.mu.Unlock()

	select {
	case <-w: // handed a place: it counts already
		return q.releaser(n), nil
	case <-ctx.Done():
		q.mu.Lock()
		defer q.mu.Unlock()
		if i := slices.Index(n.waiters, w); i >= 0 {
			n.waiters = slices.Delete(n.waiters, i, i+1)
			q.waitedLocked(-1)
			if len(n.waiters) == 0 {
				q.turn = slices.DeleteFunc(q.turn, func(o *queued) bool { return o == n })
			}
			q.forgetLocked(n)
		} else {
			q.releaseLocked(n) // handed a place as ctx ended: pass it on
		}
		return nil, ctx.Err()
	}
}

func (q *Queue) releaser(n *queued) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			q.mu.Lock()
			q.releaseLocked(n)
			q.mu.Unlock()
		})
	}
}

func (q *Queue) startLocked(n *queued) {
	q.ranLocked(n, 1)
	q.total++
	if q.opts.Running != nil {
		q.opts.Running(q.total)
	}
}

// ranLocked adds delta to n's running calls and reports the largest.
func (q *Queue) ranLocked(n *queued, delta int) {
	if n.running > 0 {
		q.runningBy[n.running]--
	}
	n.running += delta
	if n.running > 0 {
		q.runningBy[n.running]++
	}
	largest := 0
	for k := len(q.runningBy) - 1; k > 0; k-- {
		if q.runningBy[k] > 0 {
			largest = k
			break
		}
	}
	if largest != q.largest {
		q.largest = largest
		if q.opts.Largest != nil {
			q.opts.Largest(largest)
		}
	}
}

func (q *Queue) waitedLocked(delta int) {
	q.waiters += delta
	if q.opts.Waiting != nil {
		q.opts.Waiting(q.waiters)
	}
}

// releaseLocked ends a call of n and hands its place on: to the next
// namespace in turn that may run one more call.
func (q *Queue) releaseLocked(n *queued) {
	q.ranLocked(n, -1)
	q.total--
	for i, o := range q.turn {
		if o.running >= q.perNamespace {
			continue
		}
		close(o.waiters[0])
		o.waiters = o.waiters[1:]
		q.waitedLocked(-1)
		q.turn = slices.Delete(q.turn, i, i+1)
		if len(o.waiters) > 0 {
			q.turn = append(q.turn, o) // the back of the line
		}
		q.startLocked(o) // reports Running
		q.forgetLocked(n)
		return
	}
	if q.opts.Running != nil {
		q.opts.Running(q.total)
	}
	q.forgetLocked(n)
}

func (q *Queue) forgetLocked(n *queued) {
	if n.running == 0 && len(n.waiters) == 0 {
		delete(q.byNS, n.ns)
	}
}
