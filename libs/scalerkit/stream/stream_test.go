package stream_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kedascalers/kedascalers/libs/scalerkit/stream"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every wait: a safety net, not a performance expectation.
const waitTimeout = 10 * time.Second

// long is an interval that never elapses during a test.
const long = time.Hour

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// newHub returns a Hub closed at the end of the test, after which no
// goroutine may be left.
func newHub(t *testing.T, opts stream.Options) *stream.Hub[int64] {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = discard
	}
	h := stream.NewHub[int64](opts)
	t.Cleanup(func() {
		h.Close()
		goleak.VerifyNone(t)
	})
	return h
}

// subscribe joins src's feed; the hubs of these tests have room for it.
func subscribe(t *testing.T, h *stream.Hub[int64], src stream.Source[int64]) *stream.Subscription[int64] {
	t.Helper()
	s, err := h.Subscribe(src)
	if err != nil {
		t.Errorf("Subscribe(%s): %v", src.Key(), err)
	}
	return s
}

// latest is h.Latest for hubs with room for src.
func latest(t *testing.T, h *stream.Hub[int64], src stream.Source[int64]) (int64, bool) {
	t.Helper()
	v, ok, err := h.Latest(src)
	if err != nil {
		t.Errorf("Latest(%s): %v", src.Key(), err)
	}
	return v, ok
}

// counter is a Source whose n-th read returns n, or the error fail(n).
type counter struct {
	stream.NoChanges
	key   string
	ns    string // the namespace it is charged to
	reads atomic.Int64
	// active counts reads in progress.
	active atomic.Int64
	// fail, when set, returns the error of the n-th read.
	fail func(n int64) error
	// gate, when set, makes reads wait for a token (or the ctx to end).
	gate chan struct{}
	// blockFrom, when > 0, makes reads from that one on block until ctx ends.
	blockFrom int64
	// read is notified (without blocking) after every read.
	read chan int64
}

func newCounter(key string) *counter {
	return &counter{key: key, read: make(chan int64, 1000)}
}

func (c *counter) Key() string { return c.key }

func (c *counter) Namespace() string { return c.ns }

func (c *counter) Read(ctx context.Context) (int64, error) {
	c.active.Add(1)
	defer c.active.Add(-1)
	n := c.reads.Add(1)
	defer func() {
		select {
		case c.read <- n:
		default:
		}
	}()
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	if c.blockFrom > 0 && n >= c.blockFrom {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	if c.fail != nil {
		if err := c.fail(n); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// watcher is a counter that can signal changes.
type watcher struct {
	*counter
	watches atomic.Int64
	// failWatch, when set, is the error of the n-th Watch (nil: watch until
	// ctx ends).
	failWatch func(n int64) error
	// gap, when set, is the change gap the Watch asks for.
	gap      time.Duration
	mu       sync.Mutex
	changed  func()
	watching chan struct{} // receives once per successful Watch start
	returned atomic.Int64
}

func newWatcher(key string) *watcher {
	return &watcher{counter: newCounter(key), watching: make(chan struct{}, 100)}
}

func (w *watcher) Watch(ctx context.Context, changed func()) error {
	defer w.returned.Add(1)
	n := w.watches.Add(1)
	if w.failWatch != nil {
		if err := w.failWatch(n); err != nil {
			return err
		}
	}
	if w.gap > 0 {
		stream.SetChangeGap(ctx, w.gap)
	}
	w.mu.Lock()
	w.changed = changed
	w.mu.Unlock()
	w.watching <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

func (w *watcher) signal() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.changed()
}

func next(t *testing.T, s *stream.Subscription[int64]) stream.Update[int64] {
	t.Helper()
	select {
	case u := <-s.C():
		return u
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for an update")
		return stream.Update[int64]{}
	}
}

func noUpdate(t *testing.T, s *stream.Subscription[int64]) {
	t.Helper()
	select {
	case u := <-s.C():
		t.Fatalf("unexpected update %+v", u)
	default:
	}
}

func waitWatching(t *testing.T, w *watcher) {
	t.Helper()
	select {
	case <-w.watching:
	case <-time.After(waitTimeout):
		t.Fatalf("Watch was not called (calls: %d)", w.watches.Load())
	}
}

func waitRead(t *testing.T, c *counter, n int64) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case got := <-c.read:
			if got >= n {
				return
			}
		case <-deadline:
			t.Fatalf("timed out waiting for read %d of %s (reads: %d)", n, c.key, c.reads.Load())
		}
	}
}

func TestSubscribeStartsOneFeedPerKey(t *testing.T) {
	tests := []struct {
		name      string
		keys      []string // one subscriber per entry
		wantFeeds int
	}{
		{"one subscriber", []string{"a"}, 1},
		{"ten subscribers of one key", []string{"a", "a", "a", "a", "a", "a", "a", "a", "a", "a"}, 1},
		{"two keys", []string{"a", "b", "a", "b", "a"}, 2},
		{"three keys", []string{"a", "b", "c"}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHub(t, stream.Options{Interval: long})
			sources := map[string]*counter{}
			var subs []*stream.Subscription[int64]
			for _, k := range tt.keys {
				// A new Source value per subscriber: sharing goes by Key.
				src := newCounter(k)
				// Hold the first read until everyone has subscribed: a
				// subscriber that joins a running feed gets the next
				// reading, not the one already made.
				if _, ok := sources[k]; !ok {
					src.gate = make(chan struct{}, 1)
					sources[k] = src
				}
				subs = append(subs, subscribe(t, h, src))
			}
			if got := h.Feeds(); got != tt.wantFeeds {
				t.Fatalf("Feeds() = %d, want %d", got, tt.wantFeeds)
			}
			for _, src := range sources {
				src.gate <- struct{}{}
			}
			for i, s := range subs {
				u := next(t, s)
				if u.Err != nil || u.Value != 1 {
					t.Errorf("subscriber %d (%s): first update %+v, want value 1", i, tt.keys[i], u)
				}
			}
			// Only the first Source of each key is read, once.
			for k, src := range sources {
				if n := src.reads.Load(); n != 1 {
					t.Errorf("source %s read %d times, want 1", k, n)
				}
			}
			for _, s := range subs {
				s.Close()
			}
			if got := h.Feeds(); got != 0 {
				t.Errorf("Feeds() = %d after every subscriber left, want 0", got)
			}
		})
	}
}

func TestFeedReadsAtOnce(t *testing.T) {
	h := newHub(t, stream.Options{Interval: long})
	src := newCounter("k")
	sub := subscribe(t, h, src)
	defer sub.Close()
	u := next(t, sub)
	if u.Err != nil || u.Value != 1 {
		t.Fatalf("first update %+v, want value 1", u)
	}
	if u.At.IsZero() {
		t.Error("Update.At is zero")
	}
	noUpdate(t, sub)
}

func TestFeedReadsEveryInterval(t *testing.T) {
	h := newHub(t, stream.Options{Interval: 5 * time.Millisecond})
	src := newCounter("k")
	sub := subscribe(t, h, src)
	defer sub.Close()
	var last stream.Update[int64]
	for i := range 5 {
		u := next(t, sub)
		if u.Err != nil {
			t.Fatalf("update %d: %v", i, u.Err)
		}
		if u.Value <= last.Value {
			t.Fatalf("update %d: value %d after %d, want newer readings", i, u.Value, last.Value)
		}
		if u.At.Before(last.At) {
			t.Fatalf("update %d: At %v before the previous %v", i, u.At, last.At)
		}
		last = u
	}
}

func TestSlowSubscriberSeesOnlyNewest(t *testing.T) {
	h := newHub(t, stream.Options{Interval: time.Millisecond})
	src := newCounter("k")
	slow := subscribe(t, h, src)
	defer slow.Close()
	fast := subscribe(t, h, src)
	defer fast.Close()

	// The fast subscriber keeps receiving while the slow one reads nothing:
	// the feed is never blocked by it.
	for range 5 {
		next(t, fast)
	}
	waitRead(t, src, 10)
	if n := len(slow.C()); n > 1 {
		t.Fatalf("slow subscriber holds %d updates, want at most 1", n)
	}
	u := next(t, slow)
	// Read 9 had been delivered when read 10 ended; anything older means
	// the slow subscriber got a stale reading.
	if u.Value < 9 {
		t.Errorf("slow subscriber got value %d, want the newest (>= 9)", u.Value)
	}
}

func TestErrorsAreDelivered(t *testing.T) {
	errDown := errors.New("backend down")
	h := newHub(t, stream.Options{Interval: time.Millisecond})
	src := newCounter("k")
	src.fail = func(n int64) error {
		if n%2 == 0 {
			return fmt.Errorf("read %d: %w", n, errDown)
		}
		return nil
	}
	sub := subscribe(t, h, src)
	defer sub.Close()
	var sawErr, sawValue bool
	deadline := time.After(waitTimeout)
	for !sawErr || !sawValue {
		select {
		case <-deadline:
			t.Fatalf("saw error: %v, saw value: %v", sawErr, sawValue)
		default:
		}
		u := next(t, sub)
		switch {
		case u.Err != nil:
			sawErr = true
			if !errors.Is(u.Err, errDown) {
				t.Errorf("Update.Err = %v, want %v", u.Err, errDown)
			}
			if u.Value != 0 {
				t.Errorf("failed update carries value %d", u.Value)
			}
			if u.At.IsZero() {
				t.Error("failed update has no At")
			}
		default:
			sawValue = true
			if u.Value%2 != 1 {
				t.Errorf("good update value %d, want an odd read", u.Value)
			}
		}
	}
}

func TestLatest(t *testing.T) {
	errDown := errors.New("backend down")
	h := newHub(t, stream.Options{Interval: time.Millisecond, Lease: long})
	src := newCounter("k")
	src.gate = make(chan struct{})
	var failing atomic.Bool
	src.fail = func(int64) error {
		if failing.Load() {
			return errDown
		}
		return nil
	}

	// Before the first read ends: not ok.
	if v, ok := latest(t, h, src); ok || v != 0 {
		t.Fatalf("Latest before any read = %d, %v; want 0, false", v, ok)
	}
	if h.Feeds() != 1 {
		t.Fatalf("Latest did not start a feed: Feeds() = %d", h.Feeds())
	}
	// A failed first read still leaves it not ok.
	failing.Store(true)
	src.gate <- struct{}{}
	waitRead(t, src, 1)
	if _, ok := latest(t, h, src); ok {
		t.Fatal("Latest ok after only a failed read")
	}
	// A good read: ok with its value.
	failing.Store(false)
	src.gate <- struct{}{}
	waitRead(t, src, 2)
	var good int64
	wait.For(t, waitTimeout, "Latest to report the good read", func() bool {
		v, ok := latest(t, h, src)
		good = v
		return ok
	})
	if good != 2 {
		t.Fatalf("Latest = %d, want 2", good)
	}
	// Later failures keep the last good value.
	failing.Store(true)
	for range 3 {
		src.gate <- struct{}{}
	}
	waitRead(t, src, 5)
	if v, ok := latest(t, h, src); !ok || v != good {
		t.Fatalf("Latest after failed reads = %d, %v; want the last good %d, true", v, ok, good)
	}
	// The lease keeps the feed without subscribers.
	if h.Feeds() != 1 {
		t.Errorf("Feeds() = %d within the lease, want 1", h.Feeds())
	}
	// Latest shares the feed with subscribers of the same key.
	sub := subscribe(t, h, newCounter("k"))
	defer sub.Close()
	if h.Feeds() != 1 {
		t.Errorf("Feeds() = %d after subscribing to the same key, want 1", h.Feeds())
	}
}

func TestLatestLeaseRunsOut(t *testing.T) {
	tests := []struct {
		name  string
		lease time.Duration
	}{
		{"no lease", 0},
		{"short lease", 50 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHub(t, stream.Options{Interval: 5 * time.Millisecond, Lease: tt.lease})
			src := newCounter("k")
			start := time.Now()
			latest(t, h, src)
			if h.Feeds() != 1 {
				t.Fatalf("Feeds() = %d right after Latest, want 1", h.Feeds())
			}
			wait.For(t, waitTimeout, "the feed to stop after its lease", func() bool { return h.Feeds() == 0 })
			if elapsed := time.Since(start); elapsed < tt.lease {
				t.Errorf("feed stopped after %v, before its lease of %v", elapsed, tt.lease)
			}
			if tt.lease > 0 && src.reads.Load() < 2 {
				t.Errorf("feed read %d times during its lease, want it kept polling", src.reads.Load())
			}
			// Its goroutine is gone without Close.
			goleak.VerifyNone(t)
			// Latest again starts a new feed.
			latest(t, h, src)
			if h.Feeds() != 1 {
				t.Errorf("Feeds() = %d after Latest on a stopped feed, want 1", h.Feeds())
			}
		})
	}
}

func TestLatestRenewsLease(t *testing.T) {
	const lease = 100 * time.Millisecond
	h := newHub(t, stream.Options{Interval: 5 * time.Millisecond, Lease: lease})
	src := newCounter("k")
	stop := time.Now().Add(3 * lease)
	for time.Now().Before(stop) {
		latest(t, h, src)
		if h.Feeds() != 1 {
			t.Fatalf("feed stopped although Latest renewed its lease")
		}
		time.Sleep(lease / 10)
	}
}

func TestLeaseOutlivesSubscribers(t *testing.T) {
	const lease = 50 * time.Millisecond
	h := newHub(t, stream.Options{Interval: 5 * time.Millisecond, Lease: lease})
	src := newCounter("k")
	sub := subscribe(t, h, src)
	start := time.Now()
	latest(t, h, src)
	sub.Close()
	if h.Feeds() != 1 {
		t.Fatalf("Feeds() = %d: the feed stopped with its subscriber although leased", h.Feeds())
	}
	wait.For(t, waitTimeout, "the feed to stop after the lease", func() bool { return h.Feeds() == 0 })
	if elapsed := time.Since(start); elapsed < lease {
		t.Errorf("feed stopped %v after its last subscriber left, inside the lease of %v", elapsed, lease)
	}
}

func TestFeedStopsWhenLastSubscriberLeaves(t *testing.T) {
	h := newHub(t, stream.Options{Interval: long})
	src := newCounter("k")
	src.blockFrom = 2 // the second read waits for the feed's ctx to end
	src.gate = make(chan struct{}, 1)
	a, b := subscribe(t, h, src), subscribe(t, h, src)
	src.gate <- struct{}{} // the first read ends once both have subscribed
	next(t, a)
	next(t, b)

	a.Close()
	a.Close() // idempotent
	if h.Feeds() != 1 {
		t.Fatalf("Feeds() = %d with one subscriber left, want 1", h.Feeds())
	}
	b.Close()
	if h.Feeds() != 0 {
		t.Fatalf("Feeds() = %d after the last subscriber left, want 0", h.Feeds())
	}
	// The feed's goroutine ends by itself, before Close.
	goleak.VerifyNone(t)

	// A new subscriber starts a new feed, which reads at once.
	c := subscribe(t, h, src)
	defer c.Close()
	if h.Feeds() != 1 {
		t.Fatalf("Feeds() = %d after subscribing again, want 1", h.Feeds())
	}
	wait.For(t, waitTimeout, "the new feed to read", func() bool { return src.reads.Load() >= 2 })
}

func TestFeedStopCancelsRead(t *testing.T) {
	h := newHub(t, stream.Options{Interval: time.Millisecond})
	src := newCounter("k")
	src.blockFrom = 2
	sub := subscribe(t, h, src)
	next(t, sub)
	wait.For(t, waitTimeout, "the second read to start", func() bool { return src.active.Load() == 1 })
	sub.Close()
	// The read in progress sees its ctx end.
	wait.For(t, waitTimeout, "the read to be cancelled", func() bool { return src.active.Load() == 0 })
	noUpdate(t, sub)
}

func TestWatcherSignalTriggersRead(t *testing.T) {
	src, sub := watching(t, time.Millisecond)
	for want := int64(2); want <= 4; want++ {
		src.signal()
		if u := next(t, sub); u.Value != want {
			t.Fatalf("update after a change signal: %+v, want value %d", u, want)
		}
	}
}

// watching returns a watcher source and a subscription to it, past its
// first reading and with the watch in place.
func watching(t *testing.T, throttle time.Duration) (*watcher, *stream.Subscription[int64]) {
	t.Helper()
	h := newHub(t, stream.Options{Interval: long, Throttle: throttle})
	src := newWatcher("k")
	sub := subscribe(t, h, src)
	t.Cleanup(sub.Close)
	next(t, sub)
	waitWatching(t, src)
	return src, sub
}

func TestWatcherChangeWithinThrottleWaits(t *testing.T) {
	const throttle = 600 * time.Millisecond
	src, sub := watching(t, throttle)
	// The first read was just now, so this change waits for the rest of
	// the throttle, then is read.
	src.signal()
	time.Sleep(200 * time.Millisecond)
	noUpdate(t, sub)
	if n := src.reads.Load(); n != 1 {
		t.Fatalf("a change within the throttle of the last read was read at once (%d reads)", n)
	}
	if u := next(t, sub); u.Value != 2 {
		t.Fatalf("update after the throttle: %+v, want value 2", u)
	}
}

// TestSourceChangeGap: a source that asks for a change gap has its change
// signals read at most once per gap; the signal of its watch in place and
// the first change after a quiet spell are read at once.
func TestSourceChangeGap(t *testing.T) {
	const gap = 600 * time.Millisecond
	h := newHub(t, stream.Options{Interval: long, Throttle: time.Millisecond})
	src := newWatcher("k")
	src.gap = gap
	sub := subscribe(t, h, src)
	t.Cleanup(sub.Close)
	next(t, sub)
	waitWatching(t, src)
	// The signal of the watch in place, then the first change: each read
	// at once.
	for want := int64(2); want <= 3; want++ {
		src.signal()
		if u := next(t, sub); u.Value != want {
			t.Fatalf("update %+v, want value %d", u, want)
		}
	}
	src.signal() // within the gap of the first change
	time.Sleep(200 * time.Millisecond)
	noUpdate(t, sub)
	if n := src.reads.Load(); n != 3 {
		t.Fatalf("a change within the source's gap was read at once (%d reads)", n)
	}
	if u := next(t, sub); u.Value != 4 {
		t.Fatalf("update after the gap: %+v, want value 4", u)
	}
	stream.SetChangeGap(context.Background(), gap) // outside a feed: nothing
}

// TestPeriodicReadsGoOnDuringAGap: a change waiting for the source's gap
// does not hold up the periodic reads, so a change the watch reports
// during a gap is seen at the next interval, not at the gap's end.
func TestPeriodicReadsGoOnDuringAGap(t *testing.T) {
	const interval = 50 * time.Millisecond
	h := newHub(t, stream.Options{Interval: interval, Throttle: time.Millisecond})
	src := newWatcher("k")
	src.gap = time.Hour
	sub := subscribe(t, h, src)
	t.Cleanup(sub.Close)
	next(t, sub)
	waitWatching(t, src)
	src.signal() // the watch in place: read at once
	next(t, sub)
	src.signal() // the first change: read at once, and the gap starts
	next(t, sub)
	src.signal() // within the gap: waits for it, but the interval reads go on
	before := src.reads.Load()
	for range 3 {
		next(t, sub)
	}
	if n := src.reads.Load() - before; n < 3 {
		t.Fatalf("%d reads while a change waited for its gap, want the periodic ones (at least 3)", n)
	}
}

func TestWatcherBurstCostsAtMostTwoReads(t *testing.T) {
	const throttle = 300 * time.Millisecond
	src, sub := watching(t, throttle)
	time.Sleep(throttle) // a quiet spell: the next change is read at once
	start := time.Now()
	for range 50 {
		src.signal()
	}
	burst := time.Since(start)
	first := next(t, sub)
	firstAt := time.Since(start)
	if first.Value != 2 {
		t.Fatalf("update after the first change: %+v, want value 2", first)
	}
	time.Sleep(2 * throttle)
	if burst > throttle/2 {
		t.Skipf("the burst took %v: too slow a machine to judge a throttle of %v", burst, throttle)
	}
	if firstAt >= throttle {
		t.Errorf("the first change after a quiet spell was read after %v, not at once (throttle %v)", firstAt, throttle)
	}
	// The first change was read at once; the rest of the burst cost at
	// most one more read, a throttle later.
	if n := src.reads.Load() - 1; n > 2 {
		t.Errorf("a burst of 50 signals within the throttle cost %d reads, want at most 2", n)
	}
	if n := src.reads.Load(); n == 3 {
		if u := next(t, sub); u.Value != 3 || u.At.Sub(first.At) < throttle {
			t.Errorf("second read of the burst %+v, %v after the first: want value 3, at least %v later", u, u.At.Sub(first.At), throttle)
		}
	}
	noUpdate(t, sub)
}

func TestWatchErrorIsRetriedAndLogged(t *testing.T) {
	errWatch := errors.New("connection refused")
	tests := []struct {
		name       string
		retryWatch time.Duration
	}{
		{"RetryWatch set", 20 * time.Millisecond},
		{"RetryWatch defaults to Interval", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &wait.Buffer{}
			log := slog.New(slog.NewTextHandler(logs, nil))
			h := newHub(t, stream.Options{Interval: 10 * time.Millisecond, RetryWatch: tt.retryWatch, Throttle: time.Millisecond, Logger: log})
			src := newWatcher("my-source-key")
			src.failWatch = func(n int64) error {
				if n <= 3 {
					return fmt.Errorf("watch %d: %w", n, errWatch)
				}
				return nil
			}
			sub := subscribe(t, h, src)
			defer sub.Close()
			// The feed polls while watching fails.
			for range 3 {
				if u := next(t, sub); u.Err != nil {
					t.Fatalf("update: %v", u.Err)
				}
			}
			// Watching is retried until it works.
			select {
			case <-src.watching:
			case <-time.After(waitTimeout):
				t.Fatalf("Watch never succeeded; calls: %d", src.watches.Load())
			}
			if n := src.watches.Load(); n != 4 {
				t.Errorf("Watch called %d times, want 4 (3 failures, 1 success)", n)
			}
			out := logs.String()
			if got := strings.Count(out, "watching for changes failed"); got != 3 {
				t.Errorf("logged %d watch failures, want 3:\n%s", got, out)
			}
			for _, want := range []string{"level=WARN", "source=my-source-key", "connection refused"} {
				if !strings.Contains(out, want) {
					t.Errorf("log lacks %q:\n%s", want, out)
				}
			}
			// And then it works: a signal is read at once.
			before := src.reads.Load()
			src.signal()
			wait.For(t, waitTimeout, "a read after the signal", func() bool { return src.reads.Load() > before })
		})
	}
}

func TestWatchStopsWithFeed(t *testing.T) {
	h := newHub(t, stream.Options{Interval: long})
	src := newWatcher("k")
	sub := subscribe(t, h, src)
	waitWatching(t, src)
	sub.Close()
	wait.For(t, waitTimeout, "Watch to return", func() bool { return src.returned.Load() == 1 })
}

func TestClose(t *testing.T) {
	h := stream.NewHub[int64](stream.Options{Interval: time.Millisecond, Logger: discard})
	t.Cleanup(func() { goleak.VerifyNone(t) })
	blocked := newCounter("blocked")
	blocked.blockFrom = 2
	w := newWatcher("watched")
	plain := newCounter("plain")
	subs := []*stream.Subscription[int64]{subscribe(t, h, blocked), subscribe(t, h, w), subscribe(t, h, plain), subscribe(t, h, plain)}
	latest(t, h, newCounter("leased"))
	for _, s := range subs {
		next(t, s)
	}
	waitWatching(t, w)
	wait.For(t, waitTimeout, "the blocked read to start", func() bool { return blocked.active.Load() == 1 })
	select {
	case <-h.Done():
		t.Fatal("Done closed before Close")
	default:
	}

	h.Close()

	select {
	case <-h.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	// Close waited: no read or watch is still running.
	if n := blocked.active.Load() + w.active.Load() + plain.active.Load(); n != 0 {
		t.Errorf("%d reads still running after Close returned", n)
	}
	if w.returned.Load() != 1 {
		t.Error("Watch still running after Close returned")
	}
	goleak.VerifyNone(t)

	// Subscriptions stay valid but receive nothing more.
	for _, s := range subs {
		for len(s.C()) > 0 {
			<-s.C()
		}
	}
	reads := plain.reads.Load()
	time.Sleep(10 * time.Millisecond)
	if plain.reads.Load() != reads {
		t.Error("a feed read after Close")
	}
	for _, s := range subs {
		noUpdate(t, s)
		s.Close()
	}
	h.Close() // idempotent
}

func TestFeedsAfterClose(t *testing.T) {
	// Feeds is documented as "the number of running feeds": after Close
	// none runs.
	h := newHub(t, stream.Options{Interval: long})
	sub := subscribe(t, h, newCounter("a"))
	defer sub.Close()
	latest(t, h, newCounter("b"))
	h.Close()
	if n := h.Feeds(); n != 0 {
		t.Errorf("Feeds() = %d after Close, want 0", n)
	}
}

func TestAfterClose(t *testing.T) {
	h := newHub(t, stream.Options{Interval: time.Millisecond})
	src := newCounter("k")
	h.Close()
	sub := subscribe(t, h, src)
	if v, ok := latest(t, h, src); ok || v != 0 {
		t.Errorf("Latest after Close = %d, %v; want 0, false", v, ok)
	}
	time.Sleep(5 * time.Millisecond)
	noUpdate(t, sub)
	sub.Close()
	if n := src.reads.Load(); n != 0 {
		t.Errorf("a source was read %d times after Close", n)
	}
	if h.Feeds() != 0 {
		t.Errorf("Feeds() = %d: Subscribe or Latest after Close started a feed", h.Feeds())
	}
}

func TestConcurrentSubscribers(t *testing.T) {
	h := newHub(t, stream.Options{Interval: time.Millisecond, Lease: 0})
	srcs := []*counter{newCounter("a"), newCounter("b"), newCounter("c")}
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Go(func() {
			src := srcs[i%len(srcs)]
			for range 5 {
				sub := subscribe(t, h, src)
				select {
				case <-sub.C():
				case <-time.After(waitTimeout):
					t.Error("no update")
				}
				latest(t, h, src)
				sub.Close()
			}
		})
	}
	wg.Wait()
	wait.For(t, waitTimeout, "every feed to stop", func() bool { return h.Feeds() == 0 })
}

// A source without change signals is polled, quietly: its ErrNoChanges is
// not a watch failure to log and retry.
func TestNoChangesSourceOnlyPolls(t *testing.T) {
	logs := &wait.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	h := newHub(t, stream.Options{Interval: 10 * time.Millisecond, RetryWatch: time.Millisecond, Logger: log})
	src := newCounter("polled")
	sub := subscribe(t, h, src)
	defer sub.Close()
	for range 3 {
		if u := next(t, sub); u.Err != nil {
			t.Fatalf("update: %v", u.Err)
		}
	}
	if out := logs.String(); out != "" {
		t.Errorf("a source without change signals logged:\n%s", out)
	}
}

// TestNewHubNeedsAnInterval: the Interval is the caller's configuration
// (PUSH_INTERVAL), never a default of the Hub's own.
func TestNewHubNeedsAnInterval(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewHub with no Interval did not panic")
		}
	}()
	stream.NewHub[int64](stream.Options{})
}
