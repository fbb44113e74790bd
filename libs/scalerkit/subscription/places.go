package subscription

import "github.com/kedascalers/kedascalers/libs/scalerkit/share"

// takeLocked takes a place for each of need for namespace ns, all or
// none: when the pool is full it first checks that ns stays under its
// fair share with all of them (a namespace holding nothing may always
// take one), so that no place is taken from another namespace in vain.
// m.mu must be held.
func (m *Mux[K]) takeLocked(ns string, need []K) (taken map[K]*share.Place, displaced, ok bool) {
	if len(need) == 0 {
		return nil, false, true
	}
	capacity := m.places.Capacity()
	if k, free := len(need), capacity-m.placed; k > free {
		displaced = true
		held, namespaces := m.byNS[ns], len(m.byNS)
		if held == 0 {
			namespaces++
		}
		// The pool takes the k-free last places from others while ns
		// holds fewer than its share, or none.
		last := held + k - 1
		if last >= capacity/namespaces && last > 0 {
			return nil, false, false
		}
	}
	taken = make(map[K]*share.Place, len(need))
	for _, n := range need {
		pl, ok := m.places.Take(ns)
		if !ok {
			m.releaseLocked(ns, taken)
			return nil, false, false
		}
		taken[n] = pl
		m.placed++
		m.byNS[ns]++
	}
	return taken, displaced, true
}

// releaseLocked gives back places taken for ns that no hold uses.
// m.mu must be held.
func (m *Mux[K]) releaseLocked(ns string, taken map[K]*share.Place) {
	for _, pl := range taken {
		pl.Release()
		m.dropLocked(ns)
	}
}

// dropLocked counts one place of ns less. m.mu must be held.
func (m *Mux[K]) dropLocked(ns string) {
	m.placed--
	if m.byNS[ns]--; m.byNS[ns] <= 0 {
		delete(m.byNS, ns)
	}
}

// lostLocked forgets the holds whose place was taken for another
// namespace, ending their watchers with ErrPlaceLost, and returns the
// names nobody holds any more, but for keep (which the caller is about to
// hold), to unsubscribe. m.mu must be held.
func (m *Mux[K]) lostLocked(keep []K) (gone []K) {
	for name, holds := range m.names {
		for ns, h := range holds {
			select {
			case <-h.place.Lost():
			default:
				continue
			}
			delete(holds, ns)
			m.dropLocked(ns)
			for w := range h.watchers {
				w.fail(ErrPlaceLost)
			}
		}
		if len(holds) == 0 && !contains(keep, name) {
			delete(m.names, name)
			gone = append(gone, name)
		}
	}
	return gone
}

func contains[K comparable](names []K, n K) bool {
	for _, o := range names {
		if o == n {
			return true
		}
	}
	return false
}

// leave unregisters w and gives back the places nobody of its namespace
// needs. The names nobody needs any more are unsubscribed in the
// background, in batches (see unsubscribe): a KEDA restart ends thousands
// of watches at once, and none waits for another's Transport call.
func (m *Mux[K]) leave(names []K, w *watcher) {
	m.mu.Lock()
	defer m.mu.Unlock()
	freed := false
	for _, n := range names {
		holds := m.names[n]
		h := holds[w.ns]
		if _, in := h.watchersOf()[w]; !in {
			continue // lost, failed or closed
		}
		delete(h.watchers, w)
		if len(h.watchers) > 0 {
			continue
		}
		delete(holds, w.ns)
		h.place.Release()
		m.dropLocked(w.ns)
		freed = true
		if len(holds) == 0 {
			delete(m.names, n)
			m.goneLocked(n)
		}
	}
	if freed {
		m.freedLocked()
	}
}

// goneLocked has name, which nobody watches any more, unsubscribed in the
// background. m.mu must be held.
func (m *Mux[K]) goneLocked(name K) {
	if m.unsub == nil {
		m.unsub = make(map[K]struct{})
	}
	m.unsub[name] = struct{}{}
	if !m.unsubscribing {
		m.unsubscribing = true
		go m.unsubscribe()
	}
}

// unsubscribe has the Transport unsubscribe from the names gone, in
// batches, until none is left. A name watched again meanwhile leaves the
// batch (see reviveLocked): its subscription is still in place.
func (m *Mux[K]) unsubscribe() {
	m.ops.Lock()
	defer m.ops.Unlock()
	for {
		m.mu.Lock()
		batch := make([]K, 0, len(m.unsub))
		for n := range m.unsub {
			batch = append(batch, n)
		}
		clear(m.unsub)
		if len(batch) == 0 {
			m.unsubscribing = false
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
		m.t.Unsubscribe(batch)
	}
}

// reviveLocked takes name, watched again, out of the names waiting to be
// unsubscribed, and reports whether it was there: its subscription is
// still in place. m.mu must be held.
func (m *Mux[K]) reviveLocked(name K) bool {
	if _, ok := m.unsub[name]; ok {
		delete(m.unsub, name)
		return true
	}
	return false
}

// unusedLocked forgets the names of names that nobody holds (kept by
// lostLocked for a join that then failed) and returns them, to
// unsubscribe. m.mu must be held.
func (m *Mux[K]) unusedLocked(names []K) (gone []K) {
	for _, n := range names {
		if holds, ok := m.names[n]; ok && len(holds) == 0 {
			delete(m.names, n)
			gone = append(gone, n)
		}
	}
	return gone
}

// watchersOf returns h's watchers; nil for no hold.
func (h *hold[K]) watchersOf() map[*watcher]struct{} {
	if h == nil {
		return nil
	}
	return h.watchers
}

// Notify calls the watchers of name.
func (m *Mux[K]) Notify(name K) {
	m.mu.Lock()
	var fns []func()
	for _, h := range m.names[name] {
		for w := range h.watchers {
			fns = append(fns, w.changed)
		}
	}
	m.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// Fail ends every watch with err and forgets every name: the Transport
// has lost its subscriptions (its connection failed). The feeds poll and
// watch again later.
func (m *Mux[K]) Fail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.forgetLocked(err)
	clear(m.unsub) // the Transport lost them too
	m.gen++
	m.freedLocked()
}

// Close ends every watch with ErrClosed; the Transport's subscriptions
// are the caller's to end.
func (m *Mux[K]) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.closed = true
		close(m.done)
		m.forgetLocked(nil)
		m.wakeLocked()
		m.heldLocked()
	}
}

// forgetLocked drops every hold, giving its place back, and sends err
// (unless nil) to its watchers. m.mu must be held.
func (m *Mux[K]) forgetLocked(err error) {
	for _, holds := range m.names {
		for _, h := range holds {
			h.place.Release()
			m.dropLocked(h.ns)
			for w := range h.watchers {
				switch {
				case err != nil:
					w.fail(err)
				case w.end != nil: // closing: a waiting Watch sees m.done
					w.fail(ErrClosed)
				}
			}
		}
	}
	clear(m.names)
}

// Len returns the number of names subscribed.
func (m *Mux[K]) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.names)
}

// Held returns the places namespace ns holds.
func (m *Mux[K]) Held(ns string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byNS[ns]
}

// freedLocked wakes the watchers waiting for room. m.mu must be held.
func (m *Mux[K]) freedLocked() {
	m.heldLocked()
	close(m.room)
	m.room = make(chan struct{})
	m.wakeLocked()
}

func (m *Mux[K]) heldLocked() {
	if m.opts.Held != nil {
		m.opts.Held(len(m.names))
	}
}
