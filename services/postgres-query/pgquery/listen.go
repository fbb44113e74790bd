package pgquery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kedascalers/kedascalers/libs/scalerkit/ratelog"
	"github.com/kedascalers/kedascalers/libs/scalerkit/stream"
)

// channelRE is what notifyChannel accepts: a lowercase PostgreSQL
// identifier that needs no quoting (NOTIFY bookings names "bookings").
var channelRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// errListenerClosed ends the watches of a closed Listener.
var errListenerClosed = errors.New("postgres-query: listener closed")

// ListenerOptions tunes a Listener; zero values take the defaults.
type ListenerOptions struct {
	// MaxChannels caps the channels listened to at once (default 8): each
	// costs one session.
	MaxChannels int
	// MinBackoff and MaxBackoff bound the pause between reconnection
	// attempts (defaults 100ms and 10s); it doubles on every failure.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives connection failures and recoveries.
	Logger *slog.Logger
	// Limiter rate-limits the warning of a watch over MaxChannels (by
	// default one of the Listener's own: one line per minute).
	Limiter *ratelog.Limiter
}

// Listener shares LISTEN sessions on one database among every watcher:
// one dedicated connection per channel in use, whatever the number of
// triggers and streams that watch it. The first watcher of a channel opens
// its session, the last one to leave closes it.
//
// A session that fails (the server restarts, the network drops) is
// reconnected inside, with exponential backoff, while its watchers keep
// waiting: Watch does not fail on an outage. Once listening again, every
// watcher of the channel is signalled once, since notifications sent in
// the meantime are lost. Until then scalerkit's push feeds still poll
// every PUSH_INTERVAL.
type Listener struct {
	cfg  *pgx.ConnConfig
	opts ListenerOptions
	log  *slog.Logger

	mu       sync.Mutex
	channels map[string]*listenChannel
	freed    chan struct{} // closed, and replaced, when a channel's session ends
	closed   bool
	done     chan struct{} // closed by Close
	wg       sync.WaitGroup
}

// listenChannel is the session of one channel and its watchers.
type listenChannel struct {
	name      string
	watchers  map[*watcher]struct{}
	listening bool // a session has run LISTEN; guarded by Listener.mu
	stop      context.CancelFunc
	stopped   chan struct{}
}

// watcher is one Watch call.
type watcher struct{ changed func() }

// NewListener returns a Listener that connects with cfg. It connects only
// when the first watcher comes. Call Close when done.
func NewListener(cfg *pgx.ConnConfig, opts ListenerOptions) *Listener {
	if opts.MaxChannels <= 0 {
		opts.MaxChannels = 8
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(10*time.Second, opts.MinBackoff)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Limiter == nil {
		opts.Limiter = ratelog.New(time.Minute, 1)
	}
	return &Listener{
		cfg:      cfg,
		opts:     opts,
		log:      opts.Logger,
		channels: make(map[string]*listenChannel),
		freed:    make(chan struct{}),
		done:     make(chan struct{}),
	}
}

// Watch calls changed after every NOTIFY on channel, until ctx ends
// (ctx.Err()) or the Listener is closed. It fails at once when channel is
// not a plain lowercase identifier. When MaxChannels other channels are
// listened to already, it waits (its feed polls meanwhile) until one is
// freed, and says so in a warning at most once a minute per connection:
// a feed that retried would log a line for every retry of every stream.
func (l *Listener) Watch(ctx context.Context, channel string, changed func()) error {
	if !channelRE.MatchString(channel) {
		return fmt.Errorf("channel %q: want a lowercase identifier", channel)
	}
	var (
		ch *listenChannel
		w  *watcher
	)
	for {
		var freed <-chan struct{}
		var err error
		var listening bool
		ch, w, listening, freed, err = l.join(channel, changed)
		if err != nil {
			return err
		}
		if ch != nil {
			if listening {
				changed() // in place already: what came since the feed's first read was not heard
			}
			break
		}
		l.opts.Limiter.Log(ctx, l.log, slog.LevelWarn, "listen-limit",
			"too many notifyChannel values: this one is polled until a LISTEN session is free (POSTGRES_MAX_LISTEN_CHANNELS)",
			slog.String("channel", channel), slog.Int("limit", l.opts.MaxChannels))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.done:
			return errListenerClosed
		case <-freed:
		}
	}
	defer l.leave(ch, w)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-l.done:
		return errListenerClosed
	}
}

// join registers a watcher of channel, starting its session if needed,
// and says whether the session listens already (otherwise the watcher is
// signalled once it does). When MaxChannels sessions run already, it
// returns a nil channel and one that is closed when a session ends.
func (l *Listener) join(channel string, changed func()) (*listenChannel, *watcher, bool, <-chan struct{}, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, nil, false, nil, errListenerClosed
	}
	ch := l.channels[channel]
	if ch == nil {
		if len(l.channels) >= l.opts.MaxChannels {
			return nil, nil, false, l.freed, nil
		}
		ctx, stop := context.WithCancel(context.Background())
		ch = &listenChannel{name: channel, watchers: make(map[*watcher]struct{}), stop: stop, stopped: make(chan struct{})}
		l.channels[channel] = ch
		l.wg.Add(1)
		go l.run(ctx, ch)
	}
	w := &watcher{changed: changed}
	ch.watchers[w] = struct{}{}
	return ch, w, ch.listening, nil, nil
}

// leave unregisters w; the last watcher of a channel closes its session
// and waits for it to end.
func (l *Listener) leave(ch *listenChannel, w *watcher) {
	l.mu.Lock()
	delete(ch.watchers, w)
	last := len(ch.watchers) == 0 && l.channels[ch.name] == ch
	if last {
		delete(l.channels, ch.name)
		close(l.freed)
		l.freed = make(chan struct{})
	}
	l.mu.Unlock()
	if last {
		ch.stop()
		<-ch.stopped
	}
}

// Close ends every watch and session, and waits for them.
func (l *Listener) Close() {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.done)
		for name, ch := range l.channels {
			ch.stop()
			delete(l.channels, name)
		}
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// Channels returns the number of channels with a session.
func (l *Listener) Channels() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.channels)
}

// run keeps ch's session listening until ctx ends, reconnecting with
// exponential backoff.
func (l *Listener) run(ctx context.Context, ch *listenChannel) {
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
func (l *Listener) listen(ctx context.Context, ch *listenChannel, resumed bool) (listened bool, err error) {
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
	if _, err := conn.Exec(ctx, "listen "+pgx.Identifier{ch.name}.Sanitize()); err != nil {
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
	l.signal(ch)
	defer func() {
		l.mu.Lock()
		ch.listening = false
		l.mu.Unlock()
	}()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		if n.Channel == ch.name {
			l.signal(ch)
		}
	}
}

// signal calls every watcher of ch, outside the lock.
func (l *Listener) signal(ch *listenChannel) {
	l.mu.Lock()
	fns := make([]func(), 0, len(ch.watchers))
	for w := range ch.watchers {
		fns = append(fns, w.changed)
	}
	l.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}
