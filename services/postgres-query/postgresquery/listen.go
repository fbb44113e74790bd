package postgresquery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kedascalers/kedascalers/libs/scalerkit/ratelog"
	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
	"github.com/kedascalers/kedascalers/libs/scalerkit/share"
	"github.com/kedascalers/kedascalers/libs/scalerkit/stream"
	"github.com/kedascalers/kedascalers/libs/scalerkit/subscription"
)

// channelRE is what notifyChannel accepts: a lowercase PostgreSQL
// identifier that needs no quoting (NOTIFY bookings names "bookings").
var channelRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// errListenerClosed ends the watches of a closed Listener.
var errListenerClosed = subscription.ErrClosed

// Backoff between reconnections of a LISTEN session, unless
// ListenerOptions say otherwise: it doubles on every failure.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 10 * time.Second
)

// listenPing is how long a LISTEN session may stay quiet (no
// notification) before it is pinged, unless ListenerOptions say
// otherwise: 30 s. A
// session that does not answer within the connect timeout
// (POSTGRES_CONNECT_TIMEOUT) has died silently (a network or NAT that
// drops the connection without a reset, which TCP keepalive finds only
// after minutes, or never through a proxy that keeps its side open) and
// is reconnected.
const listenPing = 30 * time.Second

// ListenerOptions tunes a Listener.
type ListenerOptions struct {
	// MaxChannels caps the channels listened to at once
	// (POSTGRES_MAX_LISTEN_CHANNELS): each costs one session. Its places
	// are shared fairly among the namespaces of the watches
	// (scaler.Namespace): a namespace under its share takes one from the
	// namespace holding the most, whose watch ends with
	// subscription.ErrPlaceLost and whose feed polls.
	MaxChannels int
	// Shared receives the reports of the places (metrics.SharedOn).
	Shared share.Options
	// Refused, when set, is called once per watch that waits for room
	// (kedascalers_limit_refusals_total{limit="POSTGRES_MAX_LISTEN_CHANNELS"}).
	Refused func()
	// MinBackoff and MaxBackoff bound the pause between reconnection
	// attempts; zero takes minBackoff and maxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// PingAfter is how long a session may be quiet before it is pinged;
	// zero takes listenPing. The ping's timeout is the connection's
	// ConnectTimeout (PingAfter when it has none).
	PingAfter time.Duration
	// Logger receives connection failures and recoveries, and the
	// warning of a watch past MaxChannels (one line a minute).
	Logger *slog.Logger
}

// Listener is the subscription.Transport of NOTIFY on one database: one
// dedicated session per channel in use, whatever the number of triggers
// and streams that watch it. Its Mux bounds the channels at MaxChannels.
//
// A session that fails (the server restarts, the network drops) is
// reconnected inside, with exponential backoff, while its watchers keep
// waiting: Watch does not fail on an outage. A session quiet for
// PingAfter is pinged, so that one that died silently is found within
// PingAfter and the connect timeout. Once listening again, every
// watcher of the channel is signalled once, since notifications sent in
// the meantime are lost. Until then scalerkit's push feeds still poll
// every PUSH_INTERVAL.
type Listener struct {
	cfg  *pgx.ConnConfig
	opts ListenerOptions
	log  *slog.Logger
	mux  *subscription.Mux[string]

	mu       sync.Mutex
	sessions map[string]*listenSession
	closed   bool
	wg       sync.WaitGroup
}

// listenSession is the session of one channel.
type listenSession struct {
	name      string
	listening bool // a session has run LISTEN; guarded by Listener.mu
	stop      context.CancelFunc
	stopped   chan struct{}
}

// NewListener returns a Listener that connects with cfg. It connects only
// when the first watcher comes. Call Close when done.
func NewListener(cfg *pgx.ConnConfig, opts ListenerOptions) *Listener {
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = minBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(maxBackoff, opts.MinBackoff)
	}
	if opts.PingAfter <= 0 {
		opts.PingAfter = listenPing
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	l := &Listener{cfg: cfg, opts: opts, log: log, sessions: make(map[string]*listenSession)}
	l.mux = subscription.New[string](l, subscription.Options{
		Limit: opts.MaxChannels, Namespace: scaler.Namespace, Shared: opts.Shared, Refused: opts.Refused,
		Variable: "POSTGRES_MAX_LISTEN_CHANNELS", Logger: log, Limiter: ratelog.New(time.Minute, 1),
		Full: "too many notifyChannel values for this namespace's share of LISTEN sessions: this one is polled until one is free",
	})
	return l
}

// Watch calls changed after every NOTIFY on channel, until ctx ends
// (ctx.Err()), the Listener is closed or its namespace's place is taken
// for a namespace under its share (subscription.ErrPlaceLost). It fails
// at once when channel is not a plain lowercase identifier. When its
// namespace holds its share of MaxChannels, it waits (its feed polls
// meanwhile) until one is freed.
func (l *Listener) Watch(ctx context.Context, channel string, changed func()) error {
	if !channelRE.MatchString(channel) {
		return fmt.Errorf("channel %q: want a lowercase identifier", channel)
	}
	return l.mux.Watch(ctx, []string{channel}, changed)
}

// Subscribe implements subscription.Transport: a session per channel,
// which signals the channel's watchers once it listens.
func (l *Listener) Subscribe(_ context.Context, channels []string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errListenerClosed
	}
	for _, name := range channels {
		ctx, stop := context.WithCancel(context.Background())
		ch := &listenSession{name: name, stop: stop, stopped: make(chan struct{})}
		l.sessions[name] = ch
		l.wg.Add(1)
		go l.run(ctx, ch)
	}
	return nil
}

// Unsubscribe implements subscription.Transport: it ends the sessions of
// channels and waits for them.
func (l *Listener) Unsubscribe(channels []string) {
	l.mu.Lock()
	var ended []*listenSession
	for _, name := range channels {
		if ch := l.sessions[name]; ch != nil {
			delete(l.sessions, name)
			ch.stop()
			ended = append(ended, ch)
		}
	}
	l.mu.Unlock()
	for _, ch := range ended {
		<-ch.stopped
	}
}

// Ready implements subscription.Transport: whether channel's session
// listens.
func (l *Listener) Ready(channel string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch := l.sessions[channel]
	return ch != nil && ch.listening
}

// Close ends every watch and session, and waits for them.
func (l *Listener) Close() {
	l.mux.Close()
	l.mu.Lock()
	l.closed = true
	for name, ch := range l.sessions {
		ch.stop()
		delete(l.sessions, name)
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// Channels returns the number of channels with a session.
func (l *Listener) Channels() int { return l.mux.Len() }

// run keeps ch's session listening until ctx ends, reconnecting with
// exponential backoff.
func (l *Listener) run(ctx context.Context, ch *listenSession) {
	defer l.wg.Done()
	defer close(ch.stopped)
	backoff := l.opts.MinBackoff
	failures := 0 // since the last session that listened
	for {
		start := time.Now()
		listened, err := l.listen(ctx, ch, failures > 0)
		if ctx.Err() != nil {
			return
		}
		if listened {
			// Its watchers read once: the backend may be gone, and their
			// feeds read every interval again only after a read failed.
			l.mux.Notify(ch.name)
			failures = 0
			if time.Since(start) >= l.opts.MaxBackoff {
				backoff = l.opts.MinBackoff // a healthy session: start the backoff over
			}
		}
		failures++
		level := slog.LevelWarn
		if failures > 1 {
			level = slog.LevelDebug // said once per outage; reads report the rest
		}
		l.log.Log(ctx, level, "LISTEN session failed; notifications wait until it is back, push feeds poll meanwhile",
			slog.String("channel", ch.name), slog.Duration("retryIn", backoff), slog.Any("error", err))
		if !stream.Sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, l.opts.MaxBackoff)
	}
}

// listen opens one session, listens on ch and signals its watchers once
// LISTEN is in place and on every notification, until ctx ends or the
// session fails. listened reports whether LISTEN succeeded. resumed says
// that an earlier session failed (logged as back).
func (l *Listener) listen(ctx context.Context, ch *listenSession, resumed bool) (listened bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, l.cfg)
	if err != nil {
		return false, err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	// Sanitize quotes the name; channelRE already allows no quotes anyway.
	listen := "listen " + pgx.Identifier{ch.name}.Sanitize()
	if _, err := conn.Exec(ctx, listen); err != nil {
		return false, err
	}
	if resumed {
		l.log.Info("LISTEN session back", slog.String("channel", ch.name))
	}
	// Every watcher re-checks once: the first session was not in place at
	// its feed's first read, a new one missed what came while down.
	l.mu.Lock()
	ch.listening = true
	l.mu.Unlock()
	l.mux.Notify(ch.name)
	defer func() {
		l.mu.Lock()
		ch.listening = false
		l.mu.Unlock()
	}()
	for {
		n, err := l.next(ctx, conn, listen)
		if err != nil {
			return true, err
		}
		if n != nil && n.Channel == ch.name {
			l.mux.Notify(ch.name)
		}
	}
}

// next waits up to PingAfter for conn's next notification; after that
// quiet spell it pings conn and returns no notification when it answers.
// An error says that the session failed, or died silently. The ping runs
// listen (the session's LISTEN) again: a no-op for PostgreSQL, and
// pg_stat_activity keeps showing what the session is for.
func (l *Listener) next(ctx context.Context, conn *pgx.Conn, listen string) (*pgconn.Notification, error) {
	wctx, cancel := context.WithTimeout(ctx, l.opts.PingAfter)
	n, err := conn.WaitForNotification(wctx)
	cancel()
	if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
		return n, err
	}
	timeout := l.cfg.ConnectTimeout
	if timeout <= 0 {
		timeout = l.opts.PingAfter
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := conn.Exec(pctx, listen); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("no answer to a ping within %v after %v without a notification: %w", timeout, l.opts.PingAfter, err)
	}
	return nil, nil
}
