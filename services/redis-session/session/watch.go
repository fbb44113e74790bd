package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
)

// Keyspace notifications (notify-keyspace-events) let a push feed re-check
// at once instead of at its next interval. Where they are off nothing
// arrives, and the feed's polling covers it. On a Cluster they are
// published only by the node that holds the key, so only polling is
// reliable there and probes do not watch.

// watchingProbe is a probe that also watches its keys.
type watchingProbe struct{ *probe }

// Watch implements scaler.Probe: it calls changed after every keyspace
// event of the keys the probe reads, until ctx ends (ctx.Err()) or the
// subscription fails.
func (p watchingProbe) Watch(ctx context.Context, changed func()) error {
	var chans, pats []string
	switch p.s.mode {
	case modeDBSize:
		pats = append(pats, keyspaceChannel(p.s.db, "*"))
	case modePattern:
		pats = append(pats, keyspaceChannel(p.s.db, p.s.keyPattern))
	default:
		// SUBSCRIBE takes the name as it is: no glob characters to escape.
		chans = append(chans, keyspaceChannel(p.s.db, p.s.key))
	}
	if p.s.activeKey != "" {
		chans = append(chans, keyspaceChannel(p.s.db, p.s.activeKey))
	}
	if len(pats) > 0 {
		// A whole keyspace or pattern sends an event on every write.
		t := &throttle{gap: p.b.cfg.NotifyMinInterval, fn: changed}
		defer t.stop()
		changed = t.signal
	}
	return p.b.notifier.watch(ctx, chans, pats, changed)
}

// watchingTargetProbe is a targetProbe that also watches its key.
type watchingTargetProbe struct{ *targetProbe }

// Watch implements scaler.Probe for the sessionSizeKey.
func (p watchingTargetProbe) Watch(ctx context.Context, changed func()) error {
	return p.b.notifier.watch(ctx, []string{keyspaceChannel(p.db, p.key)}, nil, changed)
}

// keyspaceChannel is the channel of key's events in database db.
func keyspaceChannel(db int, key string) string {
	return "__keyspace@" + strconv.Itoa(db) + "__:" + key
}

// Timing of the shared subscription's health check: a connection that
// has been quiet for notifyPing is pinged, and one that does not answer
// within the next notifyPing has failed.
const notifyPing = 30 * time.Second

var errClosed = errors.New("redis-session: backend closed")

// notifier shares one pub/sub connection among all the watchers of every
// database, however many feeds watch: keyspace channels name their
// database, and pub/sub is not scoped to one. Channels and patterns are
// subscribed while at least one watcher needs them, at most
// REDIS_MAX_WATCHED_KEYS at once; a watcher past that waits for room,
// while its feed polls.
type notifier struct {
	b *Backend

	mu       sync.Mutex
	client   redis.UniversalClient // of the subscription; nil while nobody watches
	ps       *redis.PubSub         // nil while nobody watches
	done     chan struct{}         // closed when ps's receive loop has ended
	watchers map[*watcher]struct{}
	chans    map[string]map[*watcher]struct{}
	pats     map[string]map[*watcher]struct{}
	room     chan struct{} // closed, and replaced, when names are unsubscribed
	closed   bool
}

// watcher is one Watch call.
type watcher struct {
	chans, pats []string
	changed     func()
	failed      chan error // receives why the shared subscription ended
}

// errTooManyWatched is why a watcher waits: the names it needs would pass
// REDIS_MAX_WATCHED_KEYS.
var errTooManyWatched = errors.New("too many keyspace-notification subscriptions")

func newNotifier(b *Backend) *notifier {
	return &notifier{
		b:        b,
		watchers: make(map[*watcher]struct{}),
		chans:    make(map[string]map[*watcher]struct{}),
		pats:     make(map[string]map[*watcher]struct{}),
		room:     make(chan struct{}),
	}
}

// watch subscribes to chans and pats, calls changed once subscribed and
// then for every message on them, and returns when ctx ends (ctx.Err()) or the subscription fails.
// Past REDIS_MAX_WATCHED_KEYS it waits for room instead (the feed polls
// meanwhile), with a rate-limited warning.
func (n *notifier) watch(ctx context.Context, chans, pats []string, changed func()) error {
	w := &watcher{chans: chans, pats: pats, changed: changed, failed: make(chan error, 1)}
	counted := false
	for {
		room, err := n.add(ctx, w)
		if err == nil {
			break
		}
		if !errors.Is(err, errTooManyWatched) {
			return fmt.Errorf("subscribing to keyspace notifications: %w", err)
		}
		if !counted {
			counted = true
			n.b.limitReached(limitWatchedKeys)
		}
		name := append(append([]string(nil), chans...), pats...)[0]
		n.b.warn.Log(ctx, n.b.log, slog.LevelWarn, limitWatchedKeys,
			"keyspace notifications at their limit: the trigger is re-checked every PUSH_INTERVAL instead",
			slog.Int("limit", n.b.cfg.MaxWatchedKeys), slog.String("variable", limitWatchedKeys),
			slog.String("channel", metadata.Clip(name)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-room:
		}
	}
	defer n.remove(w)
	// Subscribed: a change since the feed's first read was not heard. The
	// SUBSCRIBE is sent, not yet confirmed; the read this signal causes
	// comes at least the feed's throttle (50 ms) after its first read.
	changed()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-w.failed:
		return fmt.Errorf("keyspace notifications: %w", err)
	}
}

// add registers w, subscribing to what nobody subscribed to yet. Past the
// limit it returns errTooManyWatched and a channel closed when there may
// be room.
func (n *notifier) add(ctx context.Context, w *watcher) (<-chan struct{}, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, errClosed
	}
	freshChans, freshPats := newNames(n.chans, w.chans), newNames(n.pats, w.pats)
	if len(n.chans)+len(n.pats)+len(freshChans)+len(freshPats) > n.b.cfg.MaxWatchedKeys {
		return n.room, errTooManyWatched
	}
	client, ps := n.client, n.ps
	if ps == nil {
		opts := n.b.opts
		opts.DB, opts.PoolSize, opts.MaxActiveConns, opts.MinIdleConns = 0, 1, 1, 0
		client = redis.NewUniversalClient(&opts)
		ps = client.Subscribe(ctx) // connects on the first subscription
	}
	var err error
	if len(freshChans) > 0 {
		err = ps.Subscribe(ctx, freshChans...)
	}
	if err == nil && len(freshPats) > 0 {
		err = ps.PSubscribe(ctx, freshPats...)
	}
	if err != nil {
		if ps == n.ps {
			n.teardownLocked(err) // the shared connection is in doubt
		} else {
			_ = ps.Close()
			_ = client.Close()
		}
		return nil, err
	}
	n.watchers[w] = struct{}{}
	join(n.chans, w.chans, w)
	join(n.pats, w.pats, w)
	n.b.metrics.subscriptions.Set(float64(len(n.chans) + len(n.pats)))
	if n.ps == nil {
		n.client, n.ps, n.done = client, ps, make(chan struct{})
		go n.receive(ps, n.done)
	}
	return nil, nil
}

// freedLocked wakes the watchers waiting for room. n.mu must be held.
func (n *notifier) freedLocked() {
	n.b.metrics.subscriptions.Set(float64(len(n.chans) + len(n.pats)))
	close(n.room)
	n.room = make(chan struct{})
}

// remove unregisters w, unsubscribing what nobody needs any more, and
// closes the connection when w was the last watcher.
func (n *notifier) remove(w *watcher) {
	n.mu.Lock()
	if _, ok := n.watchers[w]; !ok || n.ps == nil {
		n.mu.Unlock()
		return // already failed
	}
	delete(n.watchers, w)
	gone := leave(n.chans, w.chans, w)
	gonePats := leave(n.pats, w.pats, w)
	client, ps, done := n.client, n.ps, n.done
	if len(n.watchers) == 0 {
		n.client, n.ps, n.done = nil, nil, nil
		n.freedLocked()
		n.mu.Unlock()
		_ = ps.Close()
		<-done
		_ = client.Close()
		return
	}
	// Unsubscribing is tidiness only: a message nobody wants is dropped.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if len(gone) > 0 {
		_ = ps.Unsubscribe(ctx, gone...)
	}
	if len(gonePats) > 0 {
		_ = ps.PUnsubscribe(ctx, gonePats...)
	}
	if len(gone)+len(gonePats) > 0 {
		n.freedLocked()
	}
	n.mu.Unlock()
}

// close ends every watch and the shared connection.
func (n *notifier) close() {
	n.mu.Lock()
	n.closed = true
	done := n.done
	if n.ps != nil {
		n.teardownLocked(errClosed)
	}
	n.mu.Unlock()
	if done != nil {
		<-done
	}
}

// teardownLocked closes the shared connection and fails every watcher
// with err; their feeds poll and watch again later. n.mu must be held.
func (n *notifier) teardownLocked(err error) {
	_ = n.ps.Close()
	for w := range n.watchers {
		select {
		case w.failed <- err:
		default:
		}
	}
	clear(n.watchers)
	clear(n.chans)
	clear(n.pats)
	if n.client != nil {
		_ = n.client.Close()
	}
	n.client, n.ps, n.done = nil, nil, nil
	n.freedLocked()
}

// receive hands the messages of ps to the watchers until ps is closed or
// fails.
func (n *notifier) receive(ps *redis.PubSub, done chan struct{}) {
	defer close(done)
	ctx := context.Background()
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, notifyPing)
		if err != nil {
			if isTimeout(err) && !pinged {
				if err = ps.Ping(ctx); err == nil {
					pinged = true
					continue
				}
			}
			n.mu.Lock()
			if n.ps == ps { // not closed on purpose: a real failure
				n.teardownLocked(err)
			}
			n.mu.Unlock()
			return
		}
		pinged = false
		if m, ok := msg.(*redis.Message); ok {
			n.dispatch(m)
		}
	}
}

// dispatch calls the watchers subscribed to m's channel or pattern.
func (n *notifier) dispatch(m *redis.Message) {
	n.mu.Lock()
	set := n.chans[m.Channel]
	if m.Pattern != "" {
		set = n.pats[m.Pattern]
	}
	fns := make([]func(), 0, len(set))
	for w := range set {
		fns = append(fns, w.changed)
	}
	n.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// newNames returns the names of names that nobody is subscribed to yet.
func newNames(subs map[string]map[*watcher]struct{}, names []string) []string {
	var fresh []string
	for _, name := range names {
		if len(subs[name]) == 0 {
			fresh = append(fresh, name)
		}
	}
	return fresh
}

// join records w as a subscriber of names.
func join(subs map[string]map[*watcher]struct{}, names []string, w *watcher) {
	for _, name := range names {
		if subs[name] == nil {
			subs[name] = make(map[*watcher]struct{})
		}
		subs[name][w] = struct{}{}
	}
}

// leave removes w from names and returns those nobody needs any more.
func leave(subs map[string]map[*watcher]struct{}, names []string, w *watcher) []string {
	var gone []string
	for _, name := range names {
		delete(subs[name], w)
		if len(subs[name]) == 0 && subs[name] != nil {
			delete(subs, name)
			gone = append(gone, name)
		}
	}
	return gone
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// throttle calls fn at most once per gap: at once after a quiet spell (the
// change that matters most, the first session, is never delayed), and
// once at the end of a busy gap for the signals that came during it.
type throttle struct {
	gap time.Duration
	fn  func()

	mu    sync.Mutex
	last  time.Time
	timer *time.Timer // pending trailing call
}

// signal asks for a call of fn.
func (t *throttle) signal() {
	t.mu.Lock()
	if t.timer != nil {
		t.mu.Unlock()
		return // the trailing call covers this signal
	}
	if wait := t.gap - time.Since(t.last); wait > 0 {
		t.timer = time.AfterFunc(wait, t.fire)
		t.mu.Unlock()
		return
	}
	t.last = time.Now()
	t.mu.Unlock()
	t.fn()
}

func (t *throttle) fire() {
	t.mu.Lock()
	if t.timer == nil {
		t.mu.Unlock()
		return // stopped
	}
	t.timer, t.last = nil, time.Now()
	t.mu.Unlock()
	t.fn()
}

// stop cancels a pending trailing call.
func (t *throttle) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
}
