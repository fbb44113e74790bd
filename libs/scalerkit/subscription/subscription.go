// Package subscription shares a database's change subscriptions among
// every push feed that watches: one subscription per name, however many
// watchers need it, within a bounded number of places shared fairly among
// namespaces.
//
// A Mux counts the watchers of each name. The first watcher of a name has
// the Transport subscribe to it, the last one to leave has it unsubscribe.
// Each namespace holds one place per name its watchers watch, from a
// share.Pool of Limit places: a namespace under its fair share takes a
// place from the namespace holding the most, whose watchers of that name
// end with ErrPlaceLost (their feeds poll, and watch again later); a
// watcher whose namespace is at its share waits for room (its feed polls
// meanwhile), with a warning at most as often as the Limiter allows.
package subscription

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/ratelog"
	"github.com/kedascalers/kedascalers/libs/scalerkit/share"
)

// ErrClosed ends the watches of a closed Mux.
var ErrClosed = errors.New("subscriptions closed")

// ErrPlaceLost ends a watch whose namespace's place was taken for a
// namespace under its fair share. It is no failure: the feed polls every
// interval, a true if slower answer, and watches again later.
var ErrPlaceLost = errors.New("subscription place taken for a namespace under its fair share; polling until one is free")

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
	// Limit is the most places held at once: one per name and namespace
	// watching it, so the names subscribed never pass it.
	Limit int
	// Namespace returns the namespace a Watch runs for, from its context;
	// nil puts every watcher in one namespace.
	Namespace func(ctx context.Context) string
	// Shared receives the reports of the places (see metrics.Shared).
	Shared share.Options
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
	t      Transport[K]
	opts   Options
	places *share.Pool

	ops sync.Mutex // one join or batch of unsubscriptions at a time, with its Transport calls

	mu     sync.Mutex
	names  map[K]map[string]*hold[K] // subscribed names: the holds of each namespace
	placed int                       // places held, by holds or by a join under way
	byNS   map[string]int            // places held by each namespace
	room   chan struct{}             // closed, and replaced, when places are freed
	// waiters are the detached watchers waiting for room, woken with room.
	waiters map[*waiter]struct{}
	gen     int // counts Fail: a subscription made across one is lost
	closed  bool
	done    chan struct{} // closed by Close
	// unsub holds the names nobody watches any more, still subscribed
	// until unsubscribe's next batch; unsubscribing says it runs.
	unsub         map[K]struct{}
	unsubscribing bool
}

// hold is a namespace's place for one name, and its watchers of it.
type hold[K comparable] struct {
	name     K
	ns       string
	place    *share.Place
	watchers map[*watcher]struct{}
}

// watcher is one Watch call.
type watcher struct {
	ns      string
	changed func()
	failed  chan error // receives why its subscriptions were lost
	// end, for a detached watch (see Detach), ends it with the reason
	// instead of failed: once, on its own goroutine.
	end    func(err error)
	stop   func() bool // stops following the context of a detached watch; guarded by the Mux's mu
	handle *Handle     // of a detached watch
}

// New returns a Mux over t. Call Close when done.
func New[K comparable](t Transport[K], opts Options) *Mux[K] {
	return &Mux[K]{t: t, opts: opts, places: share.New(opts.Limit, opts.Shared),
		names: make(map[K]map[string]*hold[K]), byNS: make(map[string]int),
		room: make(chan struct{}), done: make(chan struct{})}
}

// Watch subscribes to names, calls changed once they are subscribed (what
// changed since the caller's first read was not heard) and then on every
// Notify of one of them, until ctx ends (ctx.Err()), the Mux is closed
// (ErrClosed), the namespace's place is taken (ErrPlaceLost) or the
// subscriptions are lost (Fail's error). When the namespace of ctx is at
// its share of a full Mux it waits for room. Under a context of Detach
// it returns ErrDetached once subscribed, and the end goes to the
// callback.
func (m *Mux[K]) Watch(ctx context.Context, names []K, changed func()) error {
	w := &watcher{changed: changed, failed: make(chan error, 1)}
	if m.opts.Namespace != nil {
		w.ns = m.opts.Namespace(ctx)
	}
	names = unique(names)
	if d, ok := ctx.Value(detachKey{}).(detachValue); ok {
		w.end, w.handle = m.endOf(names, w, d.ended), d.handle
	}
	return m.watch(ctx, names, w, false)
}

// watch is Watch for w, which waited for room before when waited.
func (m *Mux[K]) watch(ctx context.Context, names []K, w *watcher, waited bool) error {
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
				slog.String("channel", metadata.Clip(fmt.Sprint(names[0]))),
				slog.String("namespace", metadata.Clip(w.ns)), slog.Int("share", m.places.Share()))
		}
		if w.end != nil {
			m.awaitRoom(ctx, names, w, room)
			return ErrDetached
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.done:
			return ErrClosed
		case <-room:
		}
	}
	ready := true
	for _, n := range names {
		ready = ready && m.t.Ready(n)
	}
	if w.end != nil {
		m.follow(ctx, w)
		if ready {
			w.changed()
		}
		return ErrDetached
	}
	defer m.leave(names, w)
	if ready {
		w.changed()
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

// unique returns names without repeats, in order.
func unique[K comparable](names []K) []K {
	out := names[:0:0]
	seen := make(map[K]struct{}, len(names))
	for _, n := range names {
		if _, ok := seen[n]; !ok {
			seen[n] = struct{}{}
			out = append(out, n)
		}
	}
	return out
}

// join registers w as a watcher of names: it takes a place for each name
// w's namespace does not hold yet, and subscribes to the names nobody
// watched. When the namespace cannot have the places it returns a channel
// closed when there may be room.
func (m *Mux[K]) join(ctx context.Context, names []K, w *watcher) (<-chan struct{}, error) {
	m.ops.Lock()
	defer m.ops.Unlock()
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, ErrClosed
		}
		var need []K
		for _, n := range names {
			if m.names[n][w.ns] == nil {
				need = append(need, n)
			}
		}
		taken, displaced, ok := m.takeLocked(w.ns, need)
		if !ok {
			room := m.room
			m.mu.Unlock()
			return room, nil
		}
		var gone []K
		if displaced {
			gone = m.lostLocked(names)
		}
		var fresh []K // neither held nor still subscribed (m.unsub)
		for _, n := range names {
			_, held := m.names[n]
			_, pending := m.unsub[n]
			if !held && !pending {
				fresh = append(fresh, n)
			}
		}
		gen := m.gen
		m.mu.Unlock()
		if len(gone) > 0 {
			m.t.Unsubscribe(gone)
		}
		var err error
		if len(fresh) > 0 {
			err = m.t.Subscribe(ctx, fresh)
		}
		m.mu.Lock()
		if err == nil && m.gen == gen && m.vanishedLocked(names, w.ns, taken) {
			// A hold this join counted on was left meanwhile (its place
			// gone, its name waiting in m.unsub: unsubscribe needs m.ops,
			// held here). The fresh names wait there too; try again.
			m.releaseLocked(w.ns, taken)
			for _, n := range fresh {
				m.goneLocked(n)
			}
			m.freedLocked()
			m.mu.Unlock()
			continue
		}
		if err != nil || m.gen != gen { // failed, or lost at once: subscribe again
			m.releaseLocked(w.ns, taken)
			unused := m.unusedLocked(names)
			m.freedLocked()
			m.mu.Unlock()
			if len(unused) > 0 {
				m.t.Unsubscribe(unused)
			}
			if err != nil {
				return nil, err
			}
			continue
		}
		for _, n := range names {
			m.reviveLocked(n) // left by others meanwhile, still subscribed: watched again
			holds := m.names[n]
			if holds == nil {
				holds = make(map[string]*hold[K])
				m.names[n] = holds
			}
			h := holds[w.ns]
			if h == nil {
				h = &hold[K]{name: n, ns: w.ns, place: taken[n], watchers: make(map[*watcher]struct{})}
				holds[w.ns] = h
			}
			h.watchers[w] = struct{}{}
		}
		m.heldLocked()
		m.mu.Unlock()
		return nil, nil
	}
}

// vanishedLocked reports whether a hold of ns that join counted on (no
// place taken for it) was left since. m.mu must be held.
func (m *Mux[K]) vanishedLocked(names []K, ns string, taken map[K]*share.Place) bool {
	for _, n := range names {
		if taken[n] == nil && m.names[n][ns] == nil {
			return true
		}
	}
	return false
}
