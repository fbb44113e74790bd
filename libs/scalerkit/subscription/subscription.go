// Package subscription shares a database's change subscriptions among
// every push feed that watches: one subscription per name, however many
// watchers need it, at most a bounded number of names at once.
//
// A Mux counts the watchers of each name. The first watcher of a name has
// the Transport subscribe to it, the last one to leave has it unsubscribe.
// A watcher whose names would pass the limit waits for room (its feed
// polls meanwhile), with a warning at most as often as the Limiter allows.
package subscription

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/ratelog"
)

// ErrClosed ends the watches of a closed Mux.
var ErrClosed = errors.New("subscriptions closed")

// Transport subscribes to names on the database for a Mux. The Mux calls
// Subscribe and Unsubscribe one at a time, never while holding its own
// lock: they may wait for a goroutine that calls Notify or Fail.
type Transport[K comparable] interface {
	// Subscribe starts the subscriptions of names, which no watcher had.
	Subscribe(ctx context.Context, names []K) error
	// Unsubscribe ends the subscriptions of names, which no watcher needs
	// any more.
	Unsubscribe(names []K)
	// Ready reports whether name's subscription is in place: a new watcher
	// of it is then signalled at once; otherwise the Transport calls
	// Notify once it is.
	Ready(name K) bool
}

// Options configures a Mux.
type Options struct {
	// Limit is the most names subscribed at once.
	Limit int
	// Variable names the setting of Limit, for the warning.
	Variable string
	// Full is the warning logged when a watcher waits for room.
	Full string
	// Logger receives the warning; Limiter rate-limits it.
	Logger  *slog.Logger
	Limiter *ratelog.Limiter
	// Refused, when set, is called once per Watch that waits for room.
	Refused func()
	// Held, when set, is called with the number of names subscribed
	// whenever it changes, under the Mux's lock.
	Held func(n int)
}

// Mux counts the watchers of each name and has a Transport subscribe to
// the names in use. It is safe for concurrent use.
type Mux[K comparable] struct {
	t    Transport[K]
	opts Options

	ops sync.Mutex // one Transport call at a time, with the changes it makes

	mu     sync.Mutex
	names  map[K]map[*watcher]struct{}
	room   chan struct{} // closed, and replaced, when names are freed
	gen    int           // counts Fail: a subscription made across one is lost
	closed bool
	done   chan struct{} // closed by Close
}

// watcher is one Watch call.
type watcher struct {
	changed func()
	failed  chan error // receives why every subscription was lost
}

// New returns a Mux over t. Call Close when done.
func New[K comparable](t Transport[K], opts Options) *Mux[K] {
	return &Mux[K]{t: t, opts: opts, names: make(map[K]map[*watcher]struct{}),
		room: make(chan struct{}), done: make(chan struct{})}
}

// Watch subscribes to names, calls changed once they are subscribed (what
// changed since the caller's first read was not heard) and then on every
// Notify of one of them, until ctx ends (ctx.Err()), the Mux is closed
// (ErrClosed) or the subscriptions are lost (Fail's error). When names
// would pass the limit it waits for room.
func (m *Mux[K]) Watch(ctx context.Context, names []K, changed func()) error {
	w := &watcher{changed: changed, failed: make(chan error, 1)}
	waited := false
	for {
		room, err := m.join(ctx, names, w)
		if err != nil {
			return err
		}
		if room == nil {
			break
		}
		if !waited && m.opts.Refused != nil {
			m.opts.Refused()
		}
		waited = true
		if m.opts.Logger != nil {
			m.opts.Limiter.Log(ctx, m.opts.Logger, slog.LevelWarn, m.opts.Variable, m.opts.Full,
				slog.Int("limit", m.opts.Limit), slog.String("variable", m.opts.Variable),
				slog.String("channel", metadata.Clip(fmt.Sprint(names[0]))))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.done:
			return ErrClosed
		case <-room:
		}
	}
	defer m.leave(names, w)
	ready := true
	for _, n := range names {
		ready = ready && m.t.Ready(n)
	}
	if ready {
		changed()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-m.done:
		return ErrClosed
	case err := <-w.failed:
		return err
	}
}

// join registers w as a watcher of names, subscribing to those nobody
// watched. Past the limit it returns a channel closed when there may be
// room.
func (m *Mux[K]) join(ctx context.Context, names []K, w *watcher) (<-chan struct{}, error) {
	m.ops.Lock()
	defer m.ops.Unlock()
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, ErrClosed
		}
		var fresh []K
		for _, n := range names {
			if len(m.names[n]) == 0 {
				fresh = append(fresh, n)
			}
		}
		if len(m.names)+len(fresh) > m.opts.Limit {
			room := m.room
			m.mu.Unlock()
			return room, nil
		}
		gen := m.gen
		m.mu.Unlock()
		if len(fresh) > 0 {
			if err := m.t.Subscribe(ctx, fresh); err != nil {
				return nil, err
			}
		}
		m.mu.Lock()
		if m.gen != gen { // lost at once: subscribe again
			m.mu.Unlock()
			continue
		}
		for _, n := range names {
			if m.names[n] == nil {
				m.names[n] = make(map[*watcher]struct{})
			}
			m.names[n][w] = struct{}{}
		}
		m.heldLocked()
		m.mu.Unlock()
		return nil, nil
	}
}

// leave unregisters w and has the Transport unsubscribe from the names
// nobody needs any more.
func (m *Mux[K]) leave(names []K, w *watcher) {
	m.ops.Lock()
	defer m.ops.Unlock()
	m.mu.Lock()
	var gone []K
	for _, n := range names {
		set, ok := m.names[n]
		if _, in := set[w]; !ok || !in {
			continue // lost by Fail, or closed
		}
		delete(set, w)
		if len(set) == 0 {
			delete(m.names, n)
			gone = append(gone, n)
		}
	}
	if len(gone) > 0 {
		m.freedLocked()
	}
	m.mu.Unlock()
	if len(gone) > 0 {
		m.t.Unsubscribe(gone)
	}
}

// Notify calls the watchers of name.
func (m *Mux[K]) Notify(name K) {
	m.mu.Lock()
	fns := make([]func(), 0, len(m.names[name]))
	for w := range m.names[name] {
		fns = append(fns, w.changed)
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
	for _, set := range m.names {
		for w := range set {
			select {
			case w.failed <- err:
			default:
			}
		}
	}
	clear(m.names)
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
		clear(m.names)
		m.heldLocked()
	}
}

// Len returns the number of names subscribed.
func (m *Mux[K]) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.names)
}

// freedLocked wakes the watchers waiting for room. m.mu must be held.
func (m *Mux[K]) freedLocked() {
	m.heldLocked()
	close(m.room)
	m.room = make(chan struct{})
}

func (m *Mux[K]) heldLocked() {
	if m.opts.Held != nil {
		m.opts.Held(len(m.names))
	}
}
