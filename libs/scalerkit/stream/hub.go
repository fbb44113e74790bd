package stream

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/kedascalers/kedascalers/libs/scalerkit/share"
)

// feedLocked returns src's feed, starting it if needed, with a Readers
// place when the Hub has them (see Resubscribe for again).
func (h *Hub[T]) feedLocked(src Source[T], again bool) (*feed[T], error) {
	key := src.Key()
	now := time.Now()
	if f, ok := h.feeds[key]; ok {
		if !placeLost(f) {
			f.used = now
			return f, nil
		}
		h.stopLocked(f) // stopping already: its subscribers are told
	}
	ns := namespace(src)
	var place *share.Place
	if h.opts.Readers != nil {
		var ok bool
		if place, ok = h.readerPlaceLocked(ns, now, again); !ok {
			return nil, ErrNoPlace
		}
	}
	ctx, cancel := context.WithCancel(h.ctx)
	f := &feed[T]{hub: h, src: src, key: key, ns: ns, place: place, ctx: ctx, cancel: cancel, used: now,
		subs: make(map[*Subscription[T]]struct{})}
	h.feeds[key] = f
	f.start()
	if place != nil {
		place.AfterLost(func() { h.lost(f) }) // a read in progress must not hold a place taken away
	}
	return f, nil
}

// readerPlaceLocked takes a Readers place for ns. When every place is
// held, an idle feed gives its place up first (see Options.Readers), so
// that a place is taken from a feed someone streams only when no idle one
// can make room. Asking again, ns takes no place from another namespace
// unless it holds one already (see take).
func (h *Hub[T]) readerPlaceLocked(ns string, now time.Time, again bool) (*share.Place, bool) {
	pool := h.opts.Readers
	if len(h.feeds) < pool.Capacity() {
		return take(pool, ns, again)
	}
	held := map[string]int{ns: pool.Held(ns)}
	live := 0 // feeds whose place is not lost yet: the places held
	var oldest *feed[T]
	for _, f := range h.feeds {
		if placeLost(f) {
			continue // stopping: its place is already someone else's
		}
		live++
		if len(f.subs) > 0 || (oldest != nil && !f.used.Before(oldest.used)) {
			continue
		}
		n, ok := held[f.ns]
		if !ok {
			n = pool.Held(f.ns)
			held[f.ns] = n
		}
		if f.ns == ns || n > held[ns] {
			oldest = f
		}
	}
	if oldest != nil && live >= pool.Capacity() {
		if now.Before(oldest.lease) && h.opts.Evicted != nil {
			h.opts.Evicted()
		}
		h.stopLocked(oldest)
	}
	return take(pool, ns, again)
}

// take takes a place of pool for ns. again (a feed polling, a stream
// waiting for a reader) takes only a free place, or one from a larger
// holder when ns holds some already: when more namespaces ask than there
// are places, a namespace without one would take the single place of
// another, which would take it back at its next try, and so on, each
// time restarting a watch or a reader for nothing.
func take(pool *share.Pool, ns string, again bool) (*share.Place, bool) {
	if again && pool.Free() == 0 && pool.Held(ns) == 0 {
		return nil, false
	}
	return pool.Take(ns)
}

// placeLost reports whether f's Readers place was taken.
func placeLost[T any](f *feed[T]) bool {
	if f.place == nil {
		return false
	}
	select {
	case <-f.place.Lost():
		return true
	default:
		return false
	}
}

// stopLocked stops f and gives its Readers place back at once, so that a
// new feed can take it.
func (h *Hub[T]) stopLocked(f *feed[T]) {
	if h.feeds[f.key] == f {
		delete(h.feeds, f.key)
	}
	f.cancel()
	if f.place != nil {
		f.place.Release()
	}
	h.ending = append(h.ending, f)
}

// unlock unlocks h.mu and has the feeds stopped meanwhile handle their
// end, each on a goroutine of its own.
func (h *Hub[T]) unlock() {
	ending := h.ending
	h.ending = nil
	h.mu.Unlock()
	for _, f := range ending {
		f.post(evEnd)
	}
}

// leave removes s from f's subscribers; a feed it stops ends on the
// caller's goroutine (a stream handler returning), so that thousands of
// streams ending at once (a KEDA restart) start no goroutine each.
func (h *Hub[T]) leave(f *feed[T], s *Subscription[T]) {
	h.mu.Lock()
	delete(f.subs, s)
	h.retireLocked(f)
	ending := h.ending
	h.ending = nil
	h.mu.Unlock()
	for _, f := range ending {
		f.postHere(evEnd)
	}
}

// retireLocked stops f when it has no subscribers and no lease left.
func (h *Hub[T]) retireLocked(f *feed[T]) {
	if len(f.subs) == 0 && !time.Now().Before(f.lease) && h.feeds[f.key] == f {
		h.stopLocked(f)
	}
}

// lost stops f, whose Readers place was taken: its subscribers see Lost.
func (h *Hub[T]) lost(f *feed[T]) {
	h.mu.Lock()
	defer h.unlock()
	h.stopLocked(f)
}

// setPolled counts f in Polled or not, and reports whether that changed.
func (h *Hub[T]) setPolled(f *feed[T], polled bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f.polled == polled {
		return false
	}
	f.polled = polled
	if polled {
		h.polled++
	} else {
		h.polled--
	}
	if h.opts.Polled != nil {
		h.opts.Polled(h.polled)
	}
	return true
}

// interval returns Options.Interval less up to a tenth of it, at random:
// feeds started together (a KEDA restart reopens every stream at once)
// then do not all read together at every interval ever after.
func (h *Hub[T]) interval() time.Duration {
	i := h.opts.Interval
	return i - rand.N(i/10+1)
}
