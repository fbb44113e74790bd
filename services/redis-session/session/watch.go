package session

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Keyspace notifications (notify-keyspace-events) let a push feed re-check
// at once instead of at its next interval. Where they are off nothing
// arrives, and the feed's polling covers it. On a Cluster they are
// published only by the node that holds the key, so only polling is
// reliable there and probes do not watch.

// watchingProbe is a probe that also watches its keys.
type watchingProbe struct{ *probe }

// Watch implements stream.Watcher: it calls changed after every keyspace
// event of the keys the probe reads, until ctx ends (ctx.Err()) or the
// subscription fails.
func (p watchingProbe) Watch(ctx context.Context, changed func()) error {
	c, err := p.b.db(p.s.db)
	if err != nil {
		return err
	}
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
	return c.notifier.watch(ctx, chans, pats, changed)
}

// watchingTargetProbe is a targetProbe that also watches its key.
type watchingTargetProbe struct{ *targetProbe }

// Watch implements stream.Watcher for the sessionSizeKey.
func (p watchingTargetProbe) Watch(ctx context.Context, changed func()) error {
	c, err := p.b.db(p.db)
	if err != nil {
		return err
	}
	return c.notifier.watch(ctx, []string{keyspaceChannel(p.db, p.key)}, nil, changed)
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

// notifier shares one pub/sub connection to a database among all the
// watchers of that database, however many feeds watch: a connection per
// feed would cost Redis a client per distinct trigger. Channels and
// patterns are subscribed while at least one watcher needs them.
type notifier struct {
	client redis.UniversalClient
	db     int

	mu       sync.Mutex
	ps       *redis.PubSub // nil while nobody watches
	done     chan struct{} // closed when ps's receive loop has ended
	watchers map[*watcher]struct{}
	chans    map[string]map[*watcher]struct{}
	pats     map[string]map[*watcher]struct{}
	closed   bool
}

// watcher is one Watch call.
type watcher struct {
	chans, pats []string
	changed     func()
	failed      chan error // receives why the shared subscription ended
}

func newNotifier(c redis.UniversalClient, db int) *notifier {
	return &notifier{
		client:   c,
		db:       db,
		watchers: make(map[*watcher]struct{}),
		chans:    make(map[string]map[*watcher]struct{}),
		pats:     make(map[string]map[*watcher]struct{}),
	}
}

// watch subscribes to chans and pats, calls changed for every message on
// them, and returns when ctx ends (ctx.Err()) or the subscription fails.
func (n *notifier) watch(ctx context.Context, chans, pats []string, changed func()) error {
	w := &watcher{chans: chans, pats: pats, changed: changed, failed: make(chan error, 1)}
	if err := n.add(ctx, w); err != nil {
		return fmt.Errorf("subscribing to keyspace notifications of db %d: %w", n.db, err)
	}
	defer n.remove(w)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-w.failed:
		return fmt.Errorf("keyspace notifications of db %d: %w", n.db, err)
	}
}

// add registers w, subscribing to what nobody subscribed to yet.
func (n *notifier) add(ctx context.Context, w *watcher) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errClosed
	}
	ps := n.ps
	if ps == nil {
		ps = n.client.Subscribe(ctx) // connects on the first subscription
	}
	var err error
	if fresh := newNames(n.chans, w.chans); len(fresh) > 0 {
		err = ps.Subscribe(ctx, fresh...)
	}
	if fresh := newNames(n.pats, w.pats); err == nil && len(fresh) > 0 {
		err = ps.PSubscribe(ctx, fresh...)
	}
	if err != nil {
		if ps == n.ps {
			n.teardownLocked(err) // the shared connection is in doubt
		} else {
			_ = ps.Close()
		}
		return err
	}
	n.watchers[w] = struct{}{}
	join(n.chans, w.chans, w)
	join(n.pats, w.pats, w)
	if n.ps == nil {
		n.ps, n.done = ps, make(chan struct{})
		go n.receive(ps, n.done)
	}
	return nil
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
	ps, done := n.ps, n.done
	if len(n.watchers) == 0 {
		n.ps, n.done = nil, nil
		n.mu.Unlock()
		_ = ps.Close()
		<-done
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
	n.ps, n.done = nil, nil
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
