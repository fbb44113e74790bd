// Package cache answers repeated and concurrent questions with one backend
// call.
//
// KEDA asks GetMetrics and then IsActive back to back on every poll, and many
// ScaledObjects may ask the same question. A Group keeps each answer for a
// TTL and lets concurrent callers of the same key share one call in flight.
// The shared call runs detached from its first caller, under the Group's own
// timeout, so a caller that goes away fails nobody else. Errors are never
// kept beyond the call that produced them. A fetch function must not
// panic: the shared call runs on a goroutine of its own, where no caller
// can recover it (the scaler recovers around the backend call itself).
//
// The keys come from what triggers ask, so a Group holds at most
// MaxEntries of them: past it the least recently used kept value makes
// room. The calls in flight are places of a share.Pool divided among the
// namespaces of their first callers: when every key held has a call in
// flight, a namespace under its fair share takes the place of the newest
// call of the namespace holding the most (that call is cancelled and its
// callers get ErrFull), and a namespace at its share gets ErrFull. Close
// cancels the calls in flight, for a shutdown that does not wait on the
// backend.
package cache

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/kedascalers/kedascalers/libs/scalerkit/share"
)

// ErrFull is returned by Get for a new key when the Group holds
// MaxEntries keys that all have a call in flight and the caller's
// namespace holds its fair share of them, and to the callers of a call
// whose place a namespace under its share took.
var ErrFull = errors.New("cache: every key held has a call in flight")

// ErrClosed is returned by Get for a new call after Close.
var ErrClosed = errors.New("cache: closed")

// Options configures a Group.
type Options struct {
	// TTL is how long a value answers further calls. Zero disables keeping
	// values; concurrent calls are still coalesced.
	TTL time.Duration
	// Timeout bounds each shared call. Zero means no bound, which is only
	// sensible in tests.
	Timeout time.Duration
	// MaxEntries bounds the distinct keys held: kept values plus calls in
	// flight. At the bound a new key drops the least recently used kept
	// value; when every key held has a call in flight, Get returns ErrFull.
	// Zero means no bound, which is only sensible in tests.
	MaxEntries int
	// MaxBytes bounds the bytes of the keys of kept values: past it the
	// least recently used kept values make room. Calls in flight are not
	// counted (MaxEntries bounds them). Zero means no bound.
	MaxBytes int
	// Observe, when set, is called once per answered Get with its outcome
	// (a Get that ends on its own context, or is refused, is not counted).
	Observe func(Outcome)
	// Evicted, when set, is called once per kept value dropped before its
	// TTL to make room for a new key.
	Evicted func()
	// Held, when set, is called with the number of keys held (kept values
	// plus calls in flight) whenever it changes, under the Group's lock.
	Held func(n int)
	// Namespace, when set, names the tenant of a caller's context: the
	// calls in flight are shared fairly among them (see ErrFull). Unset,
	// every call is of one namespace.
	Namespace func(context.Context) string
	// Shares receives the reports of the pool of calls in flight.
	Shares share.Options
}

// Group is a TTL cache with request coalescing and a bound on the keys it
// holds. The zero value is not usable: create one with New.
type Group[V any] struct {
	opts   Options
	now    func() time.Time
	sf     singleflight.Group
	ctx    context.Context // ends on Close: cancels the calls in flight
	cancel context.CancelFunc
	calls  sync.WaitGroup // shared calls running; Add only under mu, never after closed
	places *share.Pool    // calls in flight by namespace; nil without MaxEntries

	mu        sync.Mutex
	entries   map[string]*list.Element // of *entry[V]
	lru       *list.List               // kept values, most recently used at the front
	inflight  map[string]*flight
	keptBytes int // bytes of the keys of entries
	closed    bool
	lastSweep time.Time
}

type entry[V any] struct {
	key     string
	value   V
	expires time.Time
}

// New returns a Group configured by opts.
func New[V any](opts Options) *Group[V] {
	ctx, cancel := context.WithCancel(context.Background())
	g := &Group[V]{opts: opts, now: time.Now, ctx: ctx, cancel: cancel,
		entries: make(map[string]*list.Element), lru: list.New(), inflight: make(map[string]*flight)}
	if opts.MaxEntries > 0 {
		g.places = share.New(opts.MaxEntries, opts.Shares)
	}
	return g
}

// Get returns the value for key: the kept one if it is younger than the TTL,
// else the result of the call in flight for key, else the result of a new
// call of fetch. fetch runs with a context that carries ctx's values but not
// its cancellation, bounded by the Group's timeout and ended by Close. If
// ctx ends first, Get returns ctx.Err() and the shared call goes on for the
// other callers. A new key at the bound is ErrFull when nothing can make
// room for it.
func (g *Group[V]) Get(ctx context.Context, key string, fetch func(context.Context) (V, error)) (V, error) {
	if v, ok := g.Hit(key); ok {
		return v, nil
	}
	started := false
	ch := g.sf.DoChan(key, func() (any, error) {
		started = true // written before the result is sent, read after it is received
		return g.call(ctx, key, fetch)
	})
	select {
	case res := <-ch:
		switch {
		case errors.Is(res.Err, ErrFull) || errors.Is(res.Err, ErrClosed):
		case started:
			g.observe(Miss)
		default:
			g.observe(Shared)
		}
		if res.Err != nil {
			var zero V
			return zero, res.Err
		}
		return res.Val.(V), nil
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

// Hit returns the value kept for key when it is younger than the TTL, and
// counts a hit; it never calls the backend. A caller that tries Hit before
// Get builds its fetch function only when there is no kept value.
func (g *Group[V]) Hit(key string) (V, bool) {
	v, ok := g.lookup(key)
	if ok {
		g.observe(Hit)
	}
	return v, ok
}

// call admits key, runs fetch detached from the caller under the timeout
// and keeps a successful value.
func (g *Group[V]) call(caller context.Context, key string, fetch func(context.Context) (V, error)) (v V, err error) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(caller))
	defer cancel()
	// A value may have been stored by a flight that ended between our
	// lookup and this call starting.
	v, kept, place, err := g.admit(caller, key, cancel)
	if kept || err != nil {
		return v, err
	}
	defer g.calls.Done()
	defer func() { g.finish(key, v, err == nil) }()
	defer context.AfterFunc(g.ctx, cancel)()
	if g.opts.Timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, g.opts.Timeout)
		defer cancel()
	}
	v, err = fetch(ctx)
	if place != nil && err != nil && lost(place) {
		return v, fmt.Errorf("%w: a namespace under its share took this call's place", ErrFull)
	}
	return v, err
}

// admit returns the kept value of key if there is one; else it takes a
// place for the caller's namespace, makes room for a call of key
// (dropping the least recently used kept value at the bound) and counts
// the call in flight, or returns ErrFull.
func (g *Group[V]) admit(caller context.Context, key string, cancel context.CancelFunc) (v V, kept bool, place *share.Place, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	defer g.heldLocked()
	now := g.now()
	if el, ok := g.entries[key]; ok {
		e := el.Value.(*entry[V])
		if now.Before(e.expires) {
			g.lru.MoveToFront(el)
			return e.value, true, nil, nil
		}
		g.removeLocked(el) // expired: this call replaces it
	}
	if g.closed {
		return v, false, nil, ErrClosed
	}
	if g.places != nil {
		ns := ""
		if g.opts.Namespace != nil {
			ns = g.opts.Namespace(caller)
		}
		// Free while a call in flight is not (a kept value makes room
		// below); else a place taken from the largest holder, whose call
		// is cancelled and leaves soon after.
		var ok bool
		if place, ok = g.places.Take(ns); !ok {
			return v, false, nil, ErrFull
		}
		for len(g.entries)+len(g.inflight) >= g.opts.MaxEntries && g.lru.Len() > 0 {
			oldest := g.lru.Back()
			if e := oldest.Value.(*entry[V]); now.Before(e.expires) && g.opts.Evicted != nil {
				g.opts.Evicted()
			}
			g.removeLocked(oldest)
		}
	}
	f := &flight{place: place}
	if place != nil {
		f.stop = place.AfterLost(cancel)
	}
	g.inflight[key] = f
	g.calls.Add(1)
	return v, false, place, nil
}

// finish ends key's call in flight, keeping its value if ok.
func (g *Group[V]) finish(key string, v V, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f := g.inflight[key]; f != nil && f.place != nil {
		f.stop()
		f.place.Release()
	}
	delete(g.inflight, key)
	if ok && g.opts.TTL > 0 {
		g.storeLocked(key, v)
	}
	g.heldLocked()
}

func (g *Group[V]) lookup(key string) (V, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if el, ok := g.entries[key]; ok {
		if e := el.Value.(*entry[V]); g.now().Before(e.expires) {
			g.lru.MoveToFront(el)
			return e.value, true
		}
	}
	var zero V
	return zero, false
}

// storeLocked keeps v for key. The key was counted in flight, so the
// bound still holds (but for calls whose place was taken and that still
// succeeded, which the next admit makes room for).
func (g *Group[V]) storeLocked(key string, v V) {
	now := g.now()
	e := &entry[V]{key: key, value: v, expires: now.Add(g.opts.TTL)}
	if el, ok := g.entries[key]; ok {
		el.Value = e
		g.lru.MoveToFront(el)
	} else {
		g.entries[key] = g.lru.PushFront(e)
		g.keptBytes += len(key)
	}
	for g.opts.MaxBytes > 0 && g.keptBytes > g.opts.MaxBytes && g.lru.Len() > 1 {
		oldest := g.lru.Back()
		if e := oldest.Value.(*entry[V]); now.Before(e.expires) && g.opts.Evicted != nil {
			g.opts.Evicted()
		}
		g.removeLocked(oldest)
	}
	// Drop expired entries at most once per TTL, so that keys nobody asks
	// for any more do not pile up.
	if now.Sub(g.lastSweep) >= g.opts.TTL {
		for _, el := range g.entries {
			if !now.Before(el.Value.(*entry[V]).expires) {
				g.removeLocked(el)
			}
		}
		g.lastSweep = now
	}
}

func (g *Group[V]) removeLocked(el *list.Element) {
	key := el.Value.(*entry[V]).key
	g.keptBytes -= len(key)
	delete(g.entries, key)
	g.lru.Remove(el)
}

func (g *Group[V]) heldLocked() {
	if g.opts.Held != nil {
		g.opts.Held(len(g.entries) + len(g.inflight))
	}
}

// Forget drops the value kept for key, so that the next Get calls the
// backend. A call already in flight is not affected.
func (g *Group[V]) Forget(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if el, ok := g.entries[key]; ok {
		g.removeLocked(el)
		g.heldLocked()
	}
}

// Len returns the number of values kept, expired ones not yet dropped
// included.
func (g *Group[V]) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.entries)
}

// Held returns the number of keys held: values kept plus calls in flight.
func (g *Group[V]) Held() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.entries) + len(g.inflight)
}

// Close cancels every call in flight (new calls fail with ErrClosed) and
// waits for them until ctx ends. It returns ctx's error, wrapped, when a
// fetch ignored the cancellation; that call goes on in the background.
func (g *Group[V]) Close(ctx context.Context) error {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.cancel()
	done := make(chan struct{})
	go func() {
		g.calls.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cache: calls still running after their cancellation: %w", ctx.Err())
	}
}

func (g *Group[V]) observe(o Outcome) {
	if g.opts.Observe != nil {
		g.opts.Observe(o)
	}
}
