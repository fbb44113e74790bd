package stream_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kedascalers/kedascalers/libs/scalerkit/stream"
	"github.com/kedascalers/kedascalers/libs/scalerkit/subscription"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
)

// detaching is a counter whose Watch detaches (subscription.Detach), as
// one over a subscription.Mux does: it returns at once, and its end goes
// to the feed's callback.
type detaching struct {
	*counter
	watches atomic.Int64
	trusted bool // its Watch calls TrustSignals
	mu      sync.Mutex
	changed func()
	end     func(error)
}

func (d *detaching) Watch(ctx context.Context, changed func()) error {
	d.watches.Add(1)
	ended, ok := subscription.Detached(ctx)
	if !ok {
		return errors.New("the feed's Watch context does not detach")
	}
	var once sync.Once
	end := func(err error) { once.Do(func() { go ended(err) }) }
	d.mu.Lock()
	d.changed, d.end = changed, end
	d.mu.Unlock()
	context.AfterFunc(ctx, func() { end(ctx.Err()) })
	if d.trusted {
		stream.TrustSignals(ctx)
	}
	changed() // in place
	return subscription.ErrDetached
}

func (d *detaching) signal() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.changed()
}

// endWatch ends the watch in place with err, as a lost connection does.
func (d *detaching) endWatch(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.end(err)
}

// TestDetachedWatch: feeds whose watch detaches hold no goroutine while
// they watch; a change signal is still read at once; a watch that ends
// with an error is logged and watched again after RetryWatch, with a
// catch-up read; and the feed's end ends the watch.
func TestDetachedWatch(t *testing.T) {
	const feeds = 200
	logs := &wait.Buffer{}
	h := newHub(t, stream.Options{Interval: long, RetryWatch: 20 * time.Millisecond, Throttle: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	before := runtime.NumGoroutine()
	srcs := make([]*detaching, feeds)
	subs := make([]*stream.Subscription[int64], feeds)
	for i := range srcs {
		srcs[i] = &detaching{counter: newCounter(fmt.Sprint("k", i))}
		subs[i] = subscribe(t, h, srcs[i])
		next(t, subs[i]) // the first read
	}
	for _, src := range srcs { // and the catch-up read of the watch in place
		waitRead(t, src.counter, 2)
	}
	wait.For(t, waitTimeout, "the feeds' goroutines to return", func() bool {
		return runtime.NumGoroutine()-before < 10
	})

	src, sub := srcs[0], subs[0]
	for len(sub.C()) > 0 {
		<-sub.C()
	}
	reads := src.reads.Load()
	src.signal()
	if u := next(t, sub); u.Err != nil || src.reads.Load() != reads+1 {
		t.Fatalf("after a change signal: %+v, reads %d, want one more read than %d", u, src.reads.Load(), reads)
	}

	src.endWatch(errors.New("connection reset"))
	wait.For(t, waitTimeout, "Watch called again after RetryWatch", func() bool { return src.watches.Load() == 2 })
	waitRead(t, src.counter, reads+2) // the catch-up read
	if out := logs.String(); !strings.Contains(out, "watching for changes failed") || !strings.Contains(out, "connection reset") {
		t.Errorf("the watch's failure was not logged:\n%s", out)
	}

	for _, s := range subs {
		s.Close()
	}
	wait.For(t, waitTimeout, "every feed and watch to end", func() bool { return runtime.NumGoroutine() <= before })
}

// TestWatchedFeedReadsOnSignals: with Options.Watched, a feed whose watch
// is in place and trusted (TrustSignals) skips its interval reads and
// reads on change signals; one whose watch is not trusted reads every
// interval; once
// a read fails (the backend gone) it reads every interval again until one
// succeeds, and its watch's end has it read every interval too.
func TestWatchedFeedReadsOnSignals(t *testing.T) {
	const interval = 5 * time.Millisecond
	h := newHub(t, stream.Options{Interval: interval, Watched: long, RetryWatch: long, Throttle: time.Millisecond})
	src := &detaching{counter: newCounter("k"), trusted: true}
	var failing atomic.Bool
	src.counter.fail = func(int64) error {
		if failing.Load() {
			return errors.New("connection refused")
		}
		return nil
	}
	sub := subscribe(t, h, src)
	defer sub.Close()
	waitRead(t, src.counter, 2) // the first read, and the catch-up of the watch in place
	time.Sleep(40 * interval)
	if n := src.reads.Load(); n != 2 {
		t.Fatalf("%d reads over 40 intervals of a watched feed, want 2 (no interval reads)", n)
	}
	src.signal()
	waitRead(t, src.counter, 3)

	failing.Store(true)
	src.signal() // the backend is gone: the read fails
	waitRead(t, src.counter, 6)
	failing.Store(false)
	waitRead(t, src.counter, 7) // a read that succeeds
	time.Sleep(20 * interval)
	quiet := src.reads.Load()
	time.Sleep(40 * interval)
	if n := src.reads.Load(); n != quiet {
		t.Fatalf("%d reads over 40 intervals once a read succeeded again, want none", n-quiet)
	}

	src.endWatch(errors.New("connection reset")) // the watch ends: the feed polls
	waitRead(t, src.counter, quiet+3)
}

// TestUntrustedWatchReadsEveryInterval: a watch in place whose source
// does not call TrustSignals (Redis with keyspace notifications off: the
// subscription works, nothing arrives) leaves its feed reading every
// interval.
func TestUntrustedWatchReadsEveryInterval(t *testing.T) {
	h := newHub(t, stream.Options{Interval: 5 * time.Millisecond, Watched: long, RetryWatch: long, Throttle: time.Millisecond})
	src := &detaching{counter: newCounter("k")}
	sub := subscribe(t, h, src)
	defer sub.Close()
	waitRead(t, src.counter, 10)
}
