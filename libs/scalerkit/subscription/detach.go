package subscription

import (
	"context"
	"errors"
	"sync"
)

// A detached Watch (see Detach) holds no goroutine while it watches or
// waits for room: its end, and its wake when room is freed, run as
// callbacks.

// ErrDetached is what Watch returns at once, its watch in place or
// waiting for room, when its context carries an end callback (see
// Detach).
var ErrDetached = errors.New("subscription: watching, detached from the caller")

type detachKey struct{}

// detachValue is what a context of Detach carries.
type detachValue struct {
	ended  func(error)
	handle *Handle
}

// Detach returns a context under which Watch does not wait for the watch
// to end: once the watch is in place, or waiting for room, it returns
// ErrDetached, and ended is called once with what Watch would have
// returned (ctx.Err(), ErrClosed, ErrPlaceLost or a failure), on a
// goroutine of its own or the one of Handle.Stop. A watch in place so
// holds no goroutine: a push feed's costs a few hundred bytes, not a
// stack. The callers in between pass ctx on and return Watch's error.
func Detach(ctx context.Context, ended func(err error)) (context.Context, *Handle) {
	h := &Handle{}
	return context.WithValue(ctx, detachKey{}, detachValue{ended: ended, handle: h}), h
}

// Redetach is Detach for a caller in between that retries a watch itself
// (see Detached): its watch's end goes to ended, and the Handle of ctx
// still stops it.
func Redetach(ctx context.Context, ended func(err error)) context.Context {
	d, _ := ctx.Value(detachKey{}).(detachValue)
	if d.handle == nil {
		d.handle = &Handle{}
	}
	d.ended = ended
	return context.WithValue(ctx, detachKey{}, d)
}

// Detached returns the end callback of a context of Detach: a Transport's
// caller that retries a watch itself passes its own callback on with
// Redetach, and calls this one when it gives up.
func Detached(ctx context.Context) (ended func(err error), ok bool) {
	d, ok := ctx.Value(detachKey{}).(detachValue)
	return d.ended, ok
}

// Handle ends a detached watch from its caller's side.
type Handle struct {
	mu     sync.Mutex
	stop   func(cancel context.CancelFunc) // ends the watch bound, if any
	cancel context.CancelFunc              // Stop's, when it came before a watch was bound
}

// Stop cancels the watch's context with cancel and ends the watch on the
// caller's goroutine: its ended callback has run when Stop returns. It
// saves the goroutine that the context's end would start (thousands of
// feeds end at once when KEDA restarts). A watch not detached only has
// its context cancelled.
func (h *Handle) Stop(cancel context.CancelFunc) {
	h.mu.Lock()
	stop := h.stop
	if stop == nil {
		h.cancel = cancel
	}
	h.mu.Unlock()
	if stop != nil {
		stop(cancel)
		return
	}
	cancel()
}

// bind sets how the watch detached under h ends from the caller's side;
// when Stop came first, it ends it at once.
func (h *Handle) bind(stop func(cancel context.CancelFunc)) {
	h.mu.Lock()
	cancel := h.cancel
	if cancel == nil {
		h.stop = stop
	}
	h.mu.Unlock()
	if cancel != nil {
		stop(cancel)
	}
}

// fail ends w with err, its subscriptions lost: a waiting Watch returns
// err, a detached one ends. Safe under m.mu.
func (w *watcher) fail(err error) {
	if w.end != nil {
		go w.end(err)
		return
	}
	select {
	case w.failed <- err:
	default:
	}
}

// endOf returns the end of a detached watcher w of names: it stops
// following w's context, leaves and calls ended, once.
func (m *Mux[K]) endOf(names []K, w *watcher, ended func(error)) func(error) {
	var once sync.Once
	return func(err error) {
		once.Do(func() {
			m.mu.Lock()
			stop := w.stop
			m.mu.Unlock()
			if stop != nil {
				stop()
			}
			m.leave(names, w)
			ended(err)
		})
	}
}

// follow ends w, joined, when ctx ends or its Handle stops it.
func (m *Mux[K]) follow(ctx context.Context, w *watcher) {
	stop := context.AfterFunc(ctx, func() { w.end(ctx.Err()) })
	m.mu.Lock()
	w.stop = stop
	m.mu.Unlock()
	w.handle.bind(func(cancel context.CancelFunc) {
		stop()
		cancel()
		w.end(ctx.Err())
	})
}

// awaitRoom has detached w try again once room was freed (room closed),
// or end when ctx ends or the Mux closes first; meanwhile w's feed polls.
// A watch that ends while it waits leaves m.waiters at once: streams
// opened and closed while the Mux is full leave nothing behind.
func (m *Mux[K]) awaitRoom(ctx context.Context, names []K, w *watcher, room <-chan struct{}) {
	var once sync.Once
	var stop func() bool
	wt := &waiter{}
	wt.again = func() {
		once.Do(func() {
			stop()
			if err := m.watch(ctx, names, w, true); !errors.Is(err, ErrDetached) {
				w.end(err)
			}
		})
	}
	end := func() {
		m.mu.Lock()
		delete(m.waiters, wt)
		m.mu.Unlock()
		once.Do(func() { w.end(ctx.Err()) })
	}
	// Not under m.mu: a Stop that came first ends w here, and w.end locks it.
	stop = context.AfterFunc(ctx, end)
	w.handle.bind(func(cancel context.CancelFunc) {
		if stop() {
			cancel()
			end()
			return
		}
		cancel() // already ending, or trying again
	})
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-room: // freed since join looked
		go wt.again()
		return
	default:
	}
	if m.closed {
		go wt.again() // its join returns ErrClosed
		return
	}
	if ctx.Err() != nil {
		return // ending: end runs, or ran
	}
	if m.waiters == nil {
		m.waiters = make(map[*waiter]struct{})
	}
	m.waiters[wt] = struct{}{}
}

// waiter is a detached watcher waiting for room.
type waiter struct{ again func() }

// wakeLocked has the detached watchers waiting for room try again, each
// on a goroutine of its own. m.mu must be held.
func (m *Mux[K]) wakeLocked() {
	for wt := range m.waiters {
		go wt.again()
	}
	clear(m.waiters)
}
