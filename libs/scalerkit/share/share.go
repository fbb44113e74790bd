// Package share divides a bounded pool of places fairly among the
// namespaces (tenants) that use it.
//
// A Pool has a capacity. While a place is free, any namespace takes it.
// When none is free, a namespace holding less than its fair share (the
// capacity divided among the namespaces holding places, itself included)
// takes one from the namespace that holds the most, and a namespace asking
// for its first place always gets one the same way. A namespace at or over
// its share is told no: it is the one namespace whose answer the bound
// changes. The place taken away reports it on its Lost channel; what
// losing a place means (a watch stopped, a reader paused, a call
// cancelled) is up to the pool's user, who should degrade the answer
// rather than fail it where a degraded answer is still true.
package share

import (
	"sync"
)

// Pool is a bounded number of places shared fairly among namespaces. It
// is safe for concurrent use.
type Pool struct {
	capacity int
	opts     Options

	mu       sync.Mutex
	byNS     map[string]*holder
	total    int
	largest  int // places of the namespace holding the most; -1: count again
	reported int // largest as last reported
}

// Options configures a Pool's reports; every field is optional.
type Options struct {
	// Held is called with the number of places held whenever it changes,
	// under the Pool's lock.
	Held func(n int)
	// Largest is called with the places held by the namespace holding the
	// most whenever it changes, under the Pool's lock.
	Largest func(n int)
	// Taken is called once per place taken from one namespace for
	// another, under the Pool's lock.
	Taken func()
}

// holder is one namespace's places, oldest first.
type holder struct {
	ns     string
	places []*Place
}

// New returns a Pool of capacity places (at least 1).
func New(capacity int, opts Options) *Pool {
	return &Pool{capacity: max(capacity, 1), opts: opts, byNS: map[string]*holder{}}
}

// Capacity returns the number of places.
func (p *Pool) Capacity() int { return p.capacity }

// Free returns the number of places no namespace holds.
func (p *Pool) Free() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.capacity - p.total
}

// Place is one place held by a namespace until Release, or until it is
// taken for another namespace (Lost).
type Place struct {
	pool *Pool
	h    *holder
	lost chan struct{}
	// gone is set, under the pool's lock, once the place is released or
	// taken.
	gone bool
	// after holds the funcs of AfterLost not stopped yet, under the
	// pool's lock.
	after []*afterLost
}

// afterLost is one func of AfterLost.
type afterLost struct{ f func() }

// AfterLost arranges for f to run in a goroutine of its own once the
// place is taken for another namespace (at once if it already was), as
// context.AfterFunc does for a context: nothing waits meanwhile. stop
// undoes it and reports whether it did: false once f has been started.
// After Release, f never runs.
func (pl *Place) AfterLost(f func()) (stop func() bool) {
	p := pl.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	a := &afterLost{f: f}
	if pl.gone {
		select {
		case <-pl.lost:
			go f()
		default:
		}
		return func() bool { return false }
	}
	pl.after = append(pl.after, a)
	return func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for i, o := range pl.after {
			if o == a {
				pl.after = append(pl.after[:i], pl.after[i+1:]...)
				return true
			}
		}
		return false
	}
}

// Lost is closed when the place was taken for another namespace. The
// holder should then stop using what the place stood for; Release after
// it does nothing.
func (pl *Place) Lost() <-chan struct{} { return pl.lost }

// Release gives the place back. It is safe to call more than once, and
// after the place was lost.
func (pl *Place) Release() {
	p := pl.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	if pl.gone {
		return
	}
	pl.after = nil // released, never lost
	p.dropLocked(pl)
	p.reportLocked()
}

// Take asks for a place for namespace ns, without waiting. ok is false
// when no place is free and ns holds its fair share or more.
func (p *Pool) Take(ns string) (pl *Place, ok bool) { return p.TakeAtMost(ns, p.capacity) }

// TakeAtMost is Take for a namespace that may hold at most most places,
// even while places are free: ok is false when ns holds most already.
// The check and the take are one step, so that concurrent asks of one
// namespace never pass most.
func (p *Pool) TakeAtMost(ns string, most int) (pl *Place, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.byNS[ns]
	if h != nil && len(h.places) >= most {
		return nil, false
	}
	if p.total >= p.capacity {
		victim := p.victimLocked(ns, h)
		if victim == nil {
			return nil, false
		}
		taken := victim.places[len(victim.places)-1] // the newest: long-held places stay put
		p.dropLocked(taken)
		close(taken.lost)
		for _, a := range taken.after {
			go a.f()
		}
		taken.after = nil
		if p.opts.Taken != nil {
			p.opts.Taken()
		}
	}
	if h == nil {
		h = &holder{ns: ns}
		p.byNS[ns] = h
	}
	pl = &Place{pool: p, h: h, lost: make(chan struct{})}
	h.places = append(h.places, pl)
	p.total++
	if p.largest >= 0 {
		p.largest = max(p.largest, len(h.places))
	}
	p.reportLocked()
	return pl, true
}

// Held returns the places ns holds.
func (p *Pool) Held(ns string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if h := p.byNS[ns]; h != nil {
		return len(h.places)
	}
	return 0
}

// Share returns the fair share of a namespace holding places now: the
// capacity divided among the namespaces holding places (at least 1).
func (p *Pool) Share() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return max(p.capacity/max(len(p.byNS), 1), 1)
}

// victimLocked returns the namespace that gives a place to ns, or nil
// when ns must go without: ns holds its share or more. Under its share,
// some other namespace holds at least two places more than ns (the
// places add up to the capacity), so a place never bounces between two
// namespaces.
func (p *Pool) victimLocked(ns string, h *holder) *holder {
	held, namespaces := 0, len(p.byNS)
	if h == nil {
		namespaces++
	} else {
		held = len(h.places)
	}
	share := p.capacity / namespaces
	if held >= share && held > 0 {
		return nil
	}
	var victim *holder
	for _, o := range p.byNS {
		if o != h && (victim == nil || len(o.places) > len(victim.places)) {
			victim = o
		}
	}
	return victim
}

// dropLocked removes pl from its holder.
func (p *Pool) dropLocked(pl *Place) {
	pl.gone = true
	h := pl.h
	for i, o := range h.places {
		if o == pl {
			h.places = append(h.places[:i], h.places[i+1:]...)
			break
		}
	}
	if len(h.places)+1 == p.largest {
		p.largest = -1
	}
	if len(h.places) == 0 {
		delete(p.byNS, h.ns)
	}
	p.total--
}

// reportLocked calls the Options' reports with the current figures. The
// largest holding is counted again only when a place was dropped from it.
func (p *Pool) reportLocked() {
	if p.opts.Held != nil {
		p.opts.Held(p.total)
	}
	if p.largest < 0 {
		p.largest = 0
		for _, h := range p.byNS {
			p.largest = max(p.largest, len(h.places))
		}
	}
	if p.largest != p.reported {
		p.reported = p.largest
		if p.opts.Largest != nil {
			p.opts.Largest(p.largest)
		}
	}
}
