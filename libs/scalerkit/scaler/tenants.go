package scaler

import (
	"context"
	"errors"
	"slices"
	"sync"
)

// errTenantFull is returned by tenants.acquire when a namespace already has
// its calls running and its queue full.
var errTenantFull = errors.New("namespace's backend calls and queue full")

// tenants bounds the backend calls of each namespace (a tenant, as far as
// the scaler can tell): at most max run at once and at most queue more
// wait for a place; past that a call is refused at once. One tenant's
// flood of slow or distinct questions therefore holds at most max of the
// backend's connections and max+queue places in the cache, and the other
// tenants' calls go on. Hits and calls joined in flight take no place:
// only a call that reaches the backend does.
type tenants struct {
	max, queue int
	held       func(running int) // reports the running calls of all namespaces

	mu      sync.Mutex
	running int
	byName  map[string]*tenant // present while it has calls running or waiting
}

type tenant struct {
	running int
	waiters []chan struct{} // FIFO; a waiter's channel is closed when it is handed a place
}

func newTenants(max, queue int, held func(int)) *tenants {
	return &tenants{max: max, queue: queue, held: held, byName: map[string]*tenant{}}
}

// acquire takes a place for a backend call of namespace ns, waiting until
// one frees or ctx ends. The returned release gives it back; it is safe to
// call more than once.
func (ts *tenants) acquire(ctx context.Context, ns string) (release func(), err error) {
	ts.mu.Lock()
	t := ts.byName[ns]
	if t == nil {
		t = &tenant{}
		ts.byName[ns] = t
	}
	if t.running < ts.max {
		t.running++
		ts.ranLocked(1)
		ts.mu.Unlock()
		return ts.releaser(ns, t), nil
	}
	if len(t.waiters) >= ts.queue {
		ts.mu.Unlock()
		return nil, errTenantFull
	}
	w := make(chan struct{})
	t.waiters = append(t.waiters, w)
	ts.mu.Unlock()

	select {
	case <-w: // handed a place: running counts it already
		return ts.releaser(ns, t), nil
	case <-ctx.Done():
		ts.mu.Lock()
		defer ts.mu.Unlock()
		if i := slices.Index(t.waiters, w); i >= 0 {
			t.waiters = slices.Delete(t.waiters, i, i+1)
			ts.forgetLocked(ns, t)
		} else {
			ts.releaseLocked(ns, t) // handed a place as ctx ended: pass it on
		}
		return nil, ctx.Err()
	}
}

func (ts *tenants) releaser(ns string, t *tenant) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			ts.mu.Lock()
			ts.releaseLocked(ns, t)
			ts.mu.Unlock()
		})
	}
}

// releaseLocked frees one running place of t: to the first waiter if one
// waits (running stays), or back to the namespace.
func (ts *tenants) releaseLocked(ns string, t *tenant) {
	if len(t.waiters) > 0 {
		close(t.waiters[0])
		t.waiters = t.waiters[1:]
		return
	}
	t.running--
	ts.ranLocked(-1)
	ts.forgetLocked(ns, t)
}

func (ts *tenants) forgetLocked(ns string, t *tenant) {
	if t.running == 0 && len(t.waiters) == 0 {
		delete(ts.byName, ns)
	}
}

func (ts *tenants) ranLocked(delta int) {
	ts.running += delta
	if ts.held != nil {
		ts.held(ts.running)
	}
}
