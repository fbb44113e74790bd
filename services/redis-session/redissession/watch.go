package redissession

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
	"github.com/kedascalers/kedascalers/libs/scalerkit/stream"
	"github.com/kedascalers/kedascalers/libs/scalerkit/subscription"
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
	var topics []topic
	switch p.s.mode {
	case modeDBSize:
		topics = append(topics, topic{name: keyspaceChannel(p.s.db, "*"), pattern: true})
	case modePattern:
		topics = append(topics, topic{name: keyspaceChannel(p.s.db, p.s.keyPattern), pattern: true})
	default:
		// SUBSCRIBE takes the name as it is: no glob characters to escape.
		topics = append(topics, topic{name: keyspaceChannel(p.s.db, p.s.key)})
	}
	if p.s.activeKey != "" {
		topics = append(topics, topic{name: keyspaceChannel(p.s.db, p.s.activeKey)})
	}
	if topics[0].pattern {
		// A whole keyspace or pattern sends an event on every write, and
		// its re-check is a walk: the feed reads at most once per gap.
		stream.SetChangeGap(ctx, p.b.cfg.NotifyMinInterval)
	}
	return p.b.notifier.watch(ctx, topics, changed)
}

// watchingTargetProbe is a targetProbe that also watches its key.
type watchingTargetProbe struct{ *targetProbe }

// Watch implements scaler.Probe for the sessionSizeKey.
func (p watchingTargetProbe) Watch(ctx context.Context, changed func()) error {
	return p.b.notifier.watch(ctx, []topic{{name: keyspaceChannel(p.db, p.key)}}, changed)
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

// topic is a channel (SUBSCRIBE) or a pattern (PSUBSCRIBE).
type topic struct {
	name    string
	pattern bool
}

func (t topic) String() string { return t.name }

// notifier is the subscription.Transport of keyspace notifications: one
// pub/sub connection shared by the watchers of every database (keyspace
// channels name their database, and pub/sub is not scoped to one), open
// while anything is subscribed. Its Mux bounds the names at
// REDIS_MAX_WATCHED_KEYS.
type notifier struct {
	b   *Backend
	mux *subscription.Mux[topic]

	mu     sync.Mutex
	client redis.UniversalClient // of the subscription; nil while nothing is subscribed
	ps     *redis.PubSub         // nil while nothing is subscribed
	done   chan struct{}         // closed when ps's receive loop has ended
	n      int                   // names subscribed on ps
	// complete says that Redis reported keyspace notifications of every
	// event class on when ps connected (see notificationsOn).
	complete atomic.Bool
	// back is closed once Redis answers again, for the watches waiting
	// after their subscription broke; nil while none waits (see waitBack).
	back    chan struct{}
	waiting int // watches waiting on back

	quit    chan struct{}  // closed by close: ends the wait for Redis
	pinging sync.WaitGroup // the PING loop of back
}

func newNotifier(b *Backend) *notifier {
	n := &notifier{b: b, quit: make(chan struct{})}
	n.mux = subscription.New[topic](n, subscription.Options{
		Limit: b.cfg.MaxWatchedKeys, Namespace: scaler.Namespace, Shared: b.metrics.watchedKeys,
		Variable: limitWatchedKeys, Logger: b.log, Limiter: b.warn,
		Full:    "keyspace notifications at their limit for this namespace (its share of REDIS_MAX_WATCHED_KEYS): the trigger is re-checked every PUSH_INTERVAL instead",
		Refused: func() { b.limitReached(limitWatchedKeys) },
		Held:    func(k int) { b.metrics.subscriptions.Set(float64(k)) },
	})
	return n
}

// watch subscribes to topics and calls changed once subscribed and then
// for every message on them, until ctx ends (ctx.Err()) or the
// subscription fails. Past REDIS_MAX_WATCHED_KEYS it waits for room (the
// feed polls meanwhile), with a rate-limited warning. When the connection
// to Redis breaks (a restart) it waits for Redis to answer and subscribes
// again, calling changed once subscribed; it fails when subscribing right
// after Redis answered fails again. Under subscription.Detach it returns
// once subscribed, and does the same from the watch's end.
func (n *notifier) watch(ctx context.Context, topics []topic, changed func()) error {
	ended, detached := subscription.Detached(ctx)
	failedBefore := false // the last try failed before it subscribed
	for {
		var subscribed atomic.Bool
		wctx := ctx
		if detached {
			wctx = subscription.Redetach(ctx, func(err error) {
				// It was subscribed: after Redis is back, a new watch.
				if err = n.afterLost(ctx, err, changed); err == nil {
					if err = n.watch(ctx, topics, changed); errors.Is(err, subscription.ErrDetached) {
						return
					}
				}
				ended(err)
			})
		}
		err := n.mux.Watch(wctx, topics, func() {
			if !subscribed.Swap(true) && n.complete.Load() {
				stream.TrustSignals(ctx)
			}
			changed()
		})
		if errors.Is(err, subscription.ErrDetached) {
			return err
		}
		if failedBefore && !subscribed.Load() && ctx.Err() == nil {
			return fmt.Errorf("keyspace notifications: %w", err)
		}
		failedBefore = !subscribed.Load()
		if err = n.afterLost(ctx, err, changed); err != nil {
			return err
		}
	}
}

// afterLost returns nil once Redis answers again when err, a watch's end,
// says that the connection broke; else the watch's end to report. A
// broken connection calls changed first: the feed reads, and reads every
// interval while its reads fail (Redis gone), not only every
// PUSH_WATCHED_INTERVAL.
func (n *notifier) afterLost(ctx context.Context, err error, changed func()) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if !connLost(err) {
		return fmt.Errorf("keyspace notifications: %w", err)
	}
	stream.UntrustSignals(ctx) // until subscribed again, with notifications on
	changed()
	if werr := n.waitBack(ctx, err); werr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("keyspace notifications: %w", err)
	}
	return nil
}

// Subscribe implements subscription.Transport, opening the shared
// connection for the first names.
func (n *notifier) Subscribe(ctx context.Context, topics []topic) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	client, ps := n.client, n.ps
	if ps == nil {
		opts := n.b.opts
		opts.DB, opts.PoolSize, opts.MaxActiveConns, opts.MinIdleConns = 0, 1, 1, 0
		client = redis.NewUniversalClient(&opts)
		ps = client.Subscribe(ctx) // connects on the first subscription
		n.complete.Store(notificationsOn(ctx, client))
	}
	var chans, pats []string
	for _, t := range topics {
		if t.pattern {
			pats = append(pats, t.name)
		} else {
			chans = append(chans, t.name)
		}
	}
	var err error
	if len(chans) > 0 {
		err = ps.Subscribe(ctx, chans...)
	}
	if err == nil && len(pats) > 0 {
		err = ps.PSubscribe(ctx, pats...)
	}
	if err != nil {
		if ps == n.ps {
			n.teardownLocked() // the shared connection is in doubt
			n.mux.Fail(err)
		} else {
			_ = ps.Close()
			_ = client.Close()
		}
		return err
	}
	n.n += len(topics)
	if n.ps == nil {
		n.client, n.ps, n.done = client, ps, make(chan struct{})
		go n.receive(ps, n.done)
	}
	return nil
}

// Unsubscribe implements subscription.Transport, closing the shared
// connection with the last names.
func (n *notifier) Unsubscribe(topics []topic) {
	n.mu.Lock()
	if n.ps == nil {
		n.mu.Unlock()
		return
	}
	n.n -= len(topics)
	if n.n <= 0 {
		client, ps, done := n.client, n.ps, n.done
		n.client, n.ps, n.done, n.n = nil, nil, nil, 0
		n.mu.Unlock()
		_ = ps.Close()
		<-done
		_ = client.Close()
		return
	}
	defer n.mu.Unlock()
	// Unsubscribing is tidiness only: a message nobody wants is dropped.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, t := range topics {
		if t.pattern {
			_ = n.ps.PUnsubscribe(ctx, t.name)
		} else {
			_ = n.ps.Unsubscribe(ctx, t.name)
		}
	}
}

// Ready implements subscription.Transport: a name is subscribed once
// Subscribe returned.
func (n *notifier) Ready(topic) bool { return true }

// close ends every watch, the wait for Redis and the shared connection.
func (n *notifier) close() {
	n.mux.Close()
	n.mu.Lock()
	select {
	case <-n.quit:
	default:
		close(n.quit)
	}
	done := n.done
	if n.ps != nil {
		n.teardownLocked()
	}
	n.mu.Unlock()
	if done != nil {
		<-done
	}
	n.pinging.Wait()
}

// teardownLocked closes the shared connection. n.mu must be held.
func (n *notifier) teardownLocked() {
	_ = n.ps.Close()
	if n.client != nil {
		_ = n.client.Close()
	}
	n.client, n.ps, n.done, n.n = nil, nil, nil, 0
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
			failed := n.ps == ps // not closed on purpose: a real failure
			if failed {
				n.teardownLocked()
			}
			n.mu.Unlock()
			if failed {
				n.mux.Fail(err) // the feeds poll and watch again later
			}
			return
		}
		pinged = false
		if m, ok := msg.(*redis.Message); ok {
			if m.Pattern != "" {
				n.mux.Notify(topic{name: m.Pattern, pattern: true})
			} else {
				n.mux.Notify(topic{name: m.Channel})
			}
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// notificationsOn reports whether Redis says that its keyspace
// notifications cover every change a probe reads: keyspace channels (K)
// of every event class (A: generic, string, list, set, hash, sorted
// set, expired, evicted). Only then may watched feeds skip their
// interval reads (stream.TrustSignals). Where CONFIG GET is refused (a
// managed Redis) it reports false, and feeds read every PUSH_INTERVAL.
func notificationsOn(ctx context.Context, client redis.UniversalClient) bool {
	cfg, err := client.ConfigGet(ctx, "notify-keyspace-events").Result()
	if err != nil {
		return false
	}
	flags := cfg["notify-keyspace-events"]
	return strings.Contains(flags, "K") && strings.Contains(flags, "A")
}
