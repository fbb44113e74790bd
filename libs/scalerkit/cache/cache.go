// Package cache answers repeated and concurrent questions with one backend
// call.
//
// KEDA asks GetMetrics and then IsActive back to back on every poll, and many
// ScaledObjects may ask the same question. A Group keeps each answer for a
// TTL and lets concurrent callers of the same key share one call in flight.
// The shared call runs detached from its first caller, under the Group's own
// timeout, so a caller that goes away fails nobody else. Errors are never
// kept beyond the call that produced them.
package cache

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Outcome says how a Get was answered.
type Outcome int

const (
	// Hit was answered from a value kept within its TTL.
	Hit Outcome = iota
	// Shared joined a call already in flight for the same key.
	Shared
	// Miss started a new call.
	Miss
)

// String returns "hit", "shared" or "miss".
func (o Outcome) String() string {
	switch o {
	case Hit:
		return "hit"
	case Shared:
		return "shared"
	default:
		return "miss"
	}
}

// PanicError is returned when a fetch function panics: the panic is
// recovered, so one bad backend call cannot bring the service down.
type PanicError struct {
	// Value is what the function panicked with.
	Value any
	// Stack is the stack trace of the panic.
	Stack []byte
}

// Error implements error.
func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Options configures a Group.
type Options struct {
	// TTL is how long a value answers further calls. Zero disables keeping
	// values; concurrent calls are still coalesced.
	TTL time.Duration
	// Timeout bounds each shared call. Zero means no bound, which is only
	// sensible in tests.
	Timeout time.Duration
	// Observe, when set, is called once per answered Get with its outcome
	// (a Get that ends on its own context is not counted).
	Observe func(Outcome)
}

// Group is a TTL cache with request coalescing. The zero value is not
// usable: create one with New.
type Group[V any] struct {
	opts Options
	now  func() time.Time
	sf   singleflight.Group

	mu        sync.Mutex
	entries   map[string]entry[V]
	lastSweep time.Time
}

type entry[V any] struct {
	value   V
	expires time.Time
}

// New returns a Group configured by opts.
func New[V any](opts Options) *Group[V] {
	return &Group[V]{opts: opts, now: time.Now, entries: make(map[string]entry[V])}
}

// Get returns the value for key: the kept one if it is younger than the TTL,
// else the result of the call in flight for key, else the result of a new
// call of fetch. fetch runs with a context that carries ctx's values but not
// its cancellation, bounded by the Group's timeout. If ctx ends first, Get
// returns ctx.Err() and the shared call goes on for the other callers.
func (g *Group[V]) Get(ctx context.Context, key string, fetch func(context.Context) (V, error)) (V, error) {
	if v, ok := g.lookup(key); ok {
		g.observe(Hit)
		return v, nil
	}
	started := false
	ch := g.sf.DoChan(key, func() (any, error) {
		started = true // written before the result is sent, read after it is received
		return g.call(context.WithoutCancel(ctx), key, fetch)
	})
	select {
	case res := <-ch:
		if started {
			g.observe(Miss)
		} else {
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

// call runs fetch under the timeout, keeps a successful value and turns a
// panic into a *PanicError.
func (g *Group[V]) call(ctx context.Context, key string, fetch func(context.Context) (V, error)) (v V, err error) {
	// A value may have been stored by a flight that ended between our
	// lookup and this call starting.
	if v, ok := g.lookup(key); ok {
		return v, nil
	}
	if g.opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.opts.Timeout)
		defer cancel()
	}
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	v, err = fetch(ctx)
	if err == nil && g.opts.TTL > 0 {
		g.store(key, v)
	}
	return v, err
}

func (g *Group[V]) lookup(key string) (V, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	e, ok := g.entries[key]
	if ok && g.now().Before(e.expires) {
		return e.value, true
	}
	var zero V
	return zero, false
}

func (g *Group[V]) store(key string, v V) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	g.entries[key] = entry[V]{value: v, expires: now.Add(g.opts.TTL)}
	// Drop expired entries at most once per TTL, so that keys nobody asks
	// for any more do not pile up.
	if now.Sub(g.lastSweep) >= g.opts.TTL {
		for k, e := range g.entries {
			if !now.Before(e.expires) {
				delete(g.entries, k)
			}
		}
		g.lastSweep = now
	}
}

// Forget drops the value kept for key, so that the next Get calls the
// backend. A call already in flight is not affected.
func (g *Group[V]) Forget(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.entries, key)
}

// Len returns the number of values kept, expired ones not yet dropped
// included.
func (g *Group[V]) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.entries)
}

func (g *Group[V]) observe(o Outcome) {
	if g.opts.Observe != nil {
		g.opts.Observe(o)
	}
}
