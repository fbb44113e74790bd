// Package stream feeds many long-lived push streams from one reader per
// question.
//
// A Hub runs one feed per distinct source key, however many streams share
// it: the feed reads its source when it starts, every interval after that,
// and soon after the source signals a change (see Source.Watch), and hands
// every reading to its subscribers. A subscriber holds only the newest
// reading, so a slow stream never blocks a feed. A feed holds no
// goroutine while it waits (only a watch does). A feed
// stops when its last subscriber leaves and its lease (see Hub.Latest) has
// run out; Close stops them all and tells stream handlers to end.
//
// What feeds hold is shared fairly among the namespaces their sources are
// charged to (see Namespaced and package share), in one of two ways:
// places for watches (Options.Watches: a feed without one still runs but
// only polls), or places for the feeds themselves (Options.Readers: a
// source without one gets no feed, ErrNoPlace, and asks again later with
// Resubscribe).
package stream

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/kedascalers/kedascalers/libs/scalerkit/share"
)

// ErrNoPlace is returned for a source without a feed when Options.Readers
// has no place for its namespace (see share.Pool.Take).
var ErrNoPlace = errors.New("stream: no reader place for this namespace")

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

// Namespaced is implemented by sources charged to a namespace: the feed
// started for one takes its places in that namespace's name. Other
// sources are charged to the namespace "".
type Namespaced interface {
	Namespace() string
}

// namespace returns the namespace src is charged to.
func namespace(src any) string {
	if n, ok := src.(Namespaced); ok {
		return n.Namespace()
	}
	return ""
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
	// Watched, when above Interval, is how often a feed whose watch is in
	// place, and whose last read succeeded, reads without a change signal
	// (PUSH_WATCHED_INTERVAL): its signals tell it of changes, and this
	// read catches what they miss. Zero reads every Interval.
	Watched time.Duration
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
	// Watches, when set, holds the places of the feeds that watch their
	// source: a feed takes one before it watches. A feed that gets none,
	// or whose place is taken for another namespace, runs on but only
	// polls (every Interval), and asks again at each interval (as
	// Resubscribe does: a free place, or one from a larger holder).
	Watches *share.Pool
	// Polled, when set, is called with the number of feeds polling for
	// want of a Watches place whenever it changes, under the Hub's lock.
	Polled func(n int)
	// NoWatch, when set, is called by a feed that goes without a Watches
	// place (none to take, or its place was taken), with its source's key
	// and namespace; the feed keeps polling meanwhile.
	NoWatch func(key, namespace string)
	// Readers, when set, holds the places of the feeds themselves: a feed
	// starts only with a place for its source's namespace (else
	// ErrNoPlace), and stops when its place is taken for another
	// namespace (its subscriptions' Lost is closed). When every place is
	// held, the idle feed (no subscribers, kept by its lease) asked for
	// least recently, of the asking namespace or of one holding more
	// places, gives its place up first.
	Readers *share.Pool
	// Evicted, when set, is called once per idle feed stopped before its
	// lease ran out to make room for a new one.
	Evicted func()
}

// Hub runs feeds and hands their readings to subscribers.
type Hub[T any] struct {
	opts Options
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu     sync.Mutex
	feeds  map[string]*feed[T]
	polled int // feeds polling for want of a Watches place
	// ending holds the feeds stopped under mu whose end is yet to be
	// posted, once mu is unlocked (see unlock).
	ending []*feed[T]
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
	for _, f := range h.feeds {
		h.stopLocked(f)
	}
	h.unlock()
	h.stop()
	h.wg.Wait()
}

// Feeds returns the number of running feeds.
func (h *Hub[T]) Feeds() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.feeds)
}

// Polled returns the number of feeds polling for want of a Watches place.
func (h *Hub[T]) Polled() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.polled
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

// Lost is closed when the feed stopped because its Readers place was
// taken for another namespace: it sends nothing more, and the subscriber
// should fall back and subscribe again later. It is nil (never closed)
// for a Hub without Readers.
func (s *Subscription[T]) Lost() <-chan struct{} {
	if s.feed == nil || s.feed.place == nil {
		return nil
	}
	return s.feed.place.Lost()
}

// Close leaves the feed; the feed stops when nobody else needs it.
func (s *Subscription[T]) Close() {
	s.once.Do(func() {
		if s.feed != nil {
			s.hub.leave(s.feed, s)
		}
	})
}

// Subscribe joins the feed of src, starting it if needed. It returns
// ErrNoPlace when the feed needs a Readers place that src's namespace
// cannot have now. After Close the subscription is valid but receives
// nothing.
func (h *Hub[T]) Subscribe(src Source[T]) (*Subscription[T], error) {
	return h.subscribe(src, false)
}

// Resubscribe is Subscribe for a subscriber asking again after
// ErrNoPlace or Lost: it starts a feed only with a free place, or one
// taken from a larger holder when src's namespace holds some already, so
// that a place does not go round namespaces that hold none.
func (h *Hub[T]) Resubscribe(src Source[T]) (*Subscription[T], error) {
	return h.subscribe(src, true)
}

func (h *Hub[T]) subscribe(src Source[T], again bool) (*Subscription[T], error) {
	s := &Subscription[T]{c: make(chan Update[T], 1), hub: h}
	h.mu.Lock()
	defer h.unlock()
	if h.closed {
		return s, nil
	}
	f, err := h.feedLocked(src, again)
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
// has succeeded. It returns ErrNoPlace when the feed needs a Readers place
// that src's namespace cannot have now.
func (h *Hub[T]) Latest(src Source[T]) (v T, ok bool, err error) {
	h.mu.Lock()
	defer h.unlock()
	if h.closed {
		return v, false, nil
	}
	f, err := h.feedLocked(src, false)
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
