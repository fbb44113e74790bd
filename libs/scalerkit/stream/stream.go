// Package stream feeds many long-lived push streams from one reader per
// question.
//
// A Hub runs one feed per distinct source key, however many streams share
// it: the feed reads its source when it starts, every interval after that,
// and soon after the source signals a change (see Source.Watch), and hands
// every reading to its subscribers. A subscriber holds only the newest
// reading, so a slow stream never blocks a feed. A feed
// stops when its last subscriber leaves and its lease (see Hub.Latest) has
// run out; Close stops them all and tells stream handlers to end.
//
// Source keys come from what triggers ask, so a Hub runs at most MaxFeeds
// feeds: past it the idle feed (no subscribers, kept only by its lease)
// asked for least recently is stopped to make room, and a new key is
// refused (ErrFull) only when every feed has subscribers.
package stream

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/subscription"
)

// ErrFull is returned for a new source key when the Hub runs MaxFeeds
// feeds that all have subscribers, so none can be stopped to make room.
var ErrFull = errors.New("stream: every feed has subscribers")

// Source is one question a feed asks over and over.
type Source[T any] interface {
	// Key identifies the question: sources with equal keys share a feed.
	Key() string
	// Read returns the current answer.
	Read(ctx context.Context) (T, error)
	// Watch calls changed once its watch is in place (a change made
	// between the feed's first read and then was not seen), then whenever
	// the answer may have changed (the database's change signals),
	// until ctx ends or watching fails. It returns ctx.Err() after ctx ends, or the reason
	// watching failed; the feed falls back to its interval and tries again
	// later. A source that cannot tell returns ErrNoChanges at once (embed
	// NoChanges), and its feed only polls.
	Watch(ctx context.Context, changed func()) error
}

// ErrNoChanges is returned by the Watch of a source that has no change
// signals.
var ErrNoChanges = errors.New("no change signals: polling only")

// NoChanges is embedded by sources that have no change signals.
type NoChanges struct{}

// Watch returns ErrNoChanges.
func (NoChanges) Watch(context.Context, func()) error { return ErrNoChanges }

// Update is one reading of a source.
type Update[T any] struct {
	// Value is the answer; meaningless when Err is set.
	Value T
	// Err is the reason the read failed.
	Err error
	// At is when the read ended.
	At time.Time
}

// Options configures a Hub.
type Options struct {
	// Interval is how often each feed reads its source (PUSH_INTERVAL);
	// it must be above 0.
	Interval time.Duration
	// Throttle is the least time between any read and a read that a
	// change signal causes: a change after a quiet spell (no read for
	// Throttle) is read at once, so a push reaches KEDA within a read's
	// time, and a burst of changes costs at most one more read per
	// Throttle. Zero is MinThrottle; a source may ask for more (see
	// SetChangeGap).
	Throttle time.Duration
	// Lease is how long Latest keeps a feed running without subscribers.
	Lease time.Duration
	// RetryWatch is the pause before watching again after Watch failed;
	// zero is the Interval.
	RetryWatch time.Duration
	// Logger receives one line per watch failure; nil is slog.Default.
	Logger *slog.Logger
	// MaxFeeds bounds the feeds running at once. Zero means no bound, which
	// is only sensible in tests.
	MaxFeeds int
	// Evicted, when set, is called once per idle feed stopped before its
	// lease ran out to make room for a new one.
	Evicted func()
	// Held, when set, is called with the number of feeds whenever it
	// changes, under the Hub's lock.
	Held func(n int)
}

// Hub runs feeds and hands their readings to subscribers.
type Hub[T any] struct {
	opts Options
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu     sync.Mutex
	feeds  map[string]*feed[T]
	closed bool
}

// MinThrottle is the Throttle of Options that leave it zero.
const MinThrottle = 50 * time.Millisecond

// NewHub returns a Hub configured by opts. It panics when opts.Interval
// is not above 0: the caller's configuration has checked it.
func NewHub[T any](opts Options) *Hub[T] {
	if opts.Interval <= 0 {
		panic("stream: Options.Interval must be above 0")
	}
	if opts.Throttle <= 0 {
		opts.Throttle = MinThrottle
	}
	if opts.RetryWatch <= 0 {
		opts.RetryWatch = opts.Interval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Hub[T]{opts: opts, ctx: ctx, stop: stop, feeds: make(map[string]*feed[T])}
}

// Done is closed when Close is called: stream handlers return on it, so
// that streams end cleanly on shutdown.
func (h *Hub[T]) Done() <-chan struct{} { return h.ctx.Done() }

// Close stops every feed, waits for them and closes Done. Subscriptions
// stay valid but receive nothing more.
func (h *Hub[T]) Close() {
	h.mu.Lock()
	h.closed = true
	clear(h.feeds)
	h.heldLocked()
	h.mu.Unlock()
	h.stop()
	h.wg.Wait()
}

// Feeds returns the number of running feeds.
func (h *Hub[T]) Feeds() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.feeds)
}

// Subscription receives the readings of one feed.
type Subscription[T any] struct {
	c    chan Update[T]
	hub  *Hub[T]
	feed *feed[T]
	once sync.Once
}

// C delivers the newest reading not yet received.
func (s *Subscription[T]) C() <-chan Update[T] { return s.c }

// Close leaves the feed; the feed stops when nobody else needs it.
func (s *Subscription[T]) Close() {
	s.once.Do(func() {
		if s.feed != nil {
			s.hub.leave(s.feed, s)
		}
	})
}

// Subscribe joins the feed of src, starting it if needed. It returns
// ErrFull when the feed would be one too many. After Close the
// subscription is valid but receives nothing.
func (h *Hub[T]) Subscribe(src Source[T]) (*Subscription[T], error) {
	s := &Subscription[T]{c: make(chan Update[T], 1), hub: h}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return s, nil
	}
	f, err := h.feedLocked(src)
	if err != nil {
		return nil, err
	}
	f.subs[s] = struct{}{}
	s.feed = f
	return s, nil
}

// Latest returns the newest successful reading of src's feed, starting the
// feed if needed (its first reading then arrives in the background), and
// keeps the feed running for at least the lease. ok is false until a read
// has succeeded. It returns ErrFull when the feed would be one too many.
func (h *Hub[T]) Latest(src Source[T]) (v T, ok bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return v, false, nil
	}
	f, err := h.feedLocked(src)
	if err != nil {
		return v, false, err
	}
	f.lease = time.Now().Add(h.opts.Lease)
	return f.good, f.hasGood, nil
}

// Touch renews the lease of src's feed if it runs, and reports whether it
// does; it never starts one.
func (h *Hub[T]) Touch(src Source[T]) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.feeds[src.Key()]
	if ok {
		f.used = time.Now()
		f.lease = f.used.Add(h.opts.Lease)
	}
	return ok
}

// feedLocked returns src's feed, starting it if needed; at the bound it
// first stops the idle feed asked for least recently.
func (h *Hub[T]) feedLocked(src Source[T]) (*feed[T], error) {
	key := src.Key()
	now := time.Now()
	if f, ok := h.feeds[key]; ok {
		f.used = now
		return f, nil
	}
	if h.opts.MaxFeeds > 0 && len(h.feeds) >= h.opts.MaxFeeds {
		var oldest *feed[T]
		for _, f := range h.feeds {
			if len(f.subs) == 0 && (oldest == nil || f.used.Before(oldest.used)) {
				oldest = f
			}
		}
		if oldest == nil {
			return nil, ErrFull
		}
		if now.Before(oldest.lease) && h.opts.Evicted != nil {
			h.opts.Evicted()
		}
		delete(h.feeds, oldest.key)
		oldest.cancel()
	}
	ctx, cancel := context.WithCancel(h.ctx)
	f := &feed[T]{hub: h, src: src, key: key, ctx: ctx, cancel: cancel, used: now, subs: make(map[*Subscription[T]]struct{})}
	h.feeds[key] = f
	h.heldLocked()
	h.wg.Add(1)
	go f.run()
	return f, nil
}

func (h *Hub[T]) heldLocked() {
	if h.opts.Held != nil {
		h.opts.Held(len(h.feeds))
	}
}

func (h *Hub[T]) leave(f *feed[T], s *Subscription[T]) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(f.subs, s)
	h.retireLocked(f)
}

// retireLocked stops f when it has no subscribers and no lease left.
func (h *Hub[T]) retireLocked(f *feed[T]) {
	if len(f.subs) == 0 && !time.Now().Before(f.lease) && h.feeds[f.key] == f {
		delete(h.feeds, f.key)
		h.heldLocked()
		f.cancel()
	}
}

type feed[T any] struct {
	hub    *Hub[T]
	src    Source[T]
	key    string
	ctx    context.Context
	cancel context.CancelFunc
	gap    atomic.Int64 // a change gap the source asked for (SetChangeGap)
	// catchUp says that the pending signal is a Watch catching up (in
	// place, or back after a failure), not a change: it opens no gap.
	catchUp atomic.Bool

	// Guarded by hub.mu.
	subs    map[*Subscription[T]]struct{}
	used    time.Time // last asked for: the order in which idle feeds make room
	lease   time.Time
	good    T
	hasGood bool
}

func (f *feed[T]) run() {
	defer f.hub.wg.Done()
	defer f.cancel()
	changed := make(chan struct{}, 1)
	var watchers sync.WaitGroup
	defer watchers.Wait()
	watchers.Add(1)
	go func() {
		defer watchers.Done()
		f.watch(changed)
	}()
	ticker := time.NewTicker(f.hub.opts.Interval)
	defer ticker.Stop()
	// A change that must wait (Throttle, the source's gap) waits on a
	// timer, so that the periodic reads go on meanwhile.
	delay := time.NewTimer(time.Hour)
	delay.Stop()
	defer delay.Stop()
	var delayed <-chan time.Time // non-nil while a change read waits
	f.read()
	last := time.Now()
	var lastChange time.Time // the last read a change caused
	for {
		byChange := false
		select {
		case <-f.ctx.Done():
			return
		case <-ticker.C:
		case <-changed:
			wait := max(time.Until(last.Add(f.hub.opts.Throttle)), time.Until(lastChange.Add(time.Duration(f.gap.Load()))))
			if wait > 0 {
				if delayed == nil {
					delay.Reset(wait)
					delayed = delay.C
				}
				continue
			}
			byChange = true
		case <-delayed:
			delayed = nil
			byChange = true
		}
		// This read covers every change signalled before it.
		if delayed != nil && !byChange {
			delay.Stop()
			delayed = nil
		}
		select {
		case <-changed:
			if !byChange {
				f.catchUp.Store(false) // a catch-up this read covers
			}
		default:
		}
		f.read()
		last = time.Now()
		if byChange && !f.catchUp.Swap(false) {
			lastChange = last
		}
		f.hub.mu.Lock()
		f.hub.retireLocked(f)
		f.hub.mu.Unlock()
	}
}

// read asks the source once and hands the reading to every subscriber.
func (f *feed[T]) read() {
	v, err := f.src.Read(f.ctx)
	if f.ctx.Err() != nil {
		return // stopping: a read cut short is no news
	}
	u := Update[T]{Value: v, Err: err, At: time.Now()}
	f.hub.mu.Lock()
	defer f.hub.mu.Unlock()
	if err == nil {
		f.good, f.hasGood = v, true
	}
	for s := range f.subs {
		select { // keep only the newest reading; this feed is the only sender
		case <-s.c:
		default:
		}
		s.c <- u
	}
}

func (f *feed[T]) watch(changed chan<- struct{}) {
	signal := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	ctx := context.WithValue(f.ctx, gapKey{}, &f.gap)
	for {
		var caughtUp atomic.Bool
		err := f.src.Watch(ctx, func() {
			if !caughtUp.Swap(true) {
				f.catchUp.Store(true) // the signal of a watch in place
			}
			signal()
		})
		if f.ctx.Err() != nil || errors.Is(err, ErrNoChanges) {
			return
		}
		switch {
		case errors.Is(err, subscription.ErrPlaceLost): // fair shares at work, not a failure
			f.hub.opts.Logger.Info("watch place given to another namespace; polling until one is free",
				slog.String("source", metadata.Clip(f.key)))
		case err != nil:
			f.hub.opts.Logger.Warn("watching for changes failed; polling until it works again",
				slog.String("source", metadata.Clip(f.key)), slog.Any("error", err))
		}
		if !Sleep(f.ctx, f.hub.opts.RetryWatch) {
			return
		}
		f.catchUp.Store(true)
		signal() // changes may have been missed while not watching
	}
}

// gapKey carries a feed's change gap in the context of its source's Watch.
type gapKey struct{}

// SetChangeGap asks the feed whose Watch ctx is to read at most once per
// gap on its source's change signals (besides Throttle): for a source
// whose signals come on every write (a whole keyspace) and whose read is
// costly. A change after a quiet spell is still read at once, and so is
// the first after the watch is in place.
// Outside a feed's Watch it does nothing.
func SetChangeGap(ctx context.Context, gap time.Duration) {
	if g, ok := ctx.Value(gapKey{}).(*atomic.Int64); ok {
		g.Store(int64(gap))
	}
}

// Sleep waits for d or until ctx ends, reporting whether d elapsed: the
// pause between retries of a loop that must end with its context.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
