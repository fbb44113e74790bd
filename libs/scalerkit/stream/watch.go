package stream

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/share"
	"github.com/kedascalers/kedascalers/libs/scalerkit/subscription"
)

// watching runs a feed's Watch while the feed may: always without
// Options.Watches, else while it holds a place of it. Only the goroutine
// handling the feed's events calls its methods.
type watching[T any] struct {
	f         *feed[T]
	place     *share.Place       // the Watches place held; nil without
	cancel    context.CancelFunc // non-nil while a watch goroutine runs
	done      chan struct{}      // closed when that goroutine has returned
	stopGuard func() bool        // undoes the place's AfterLost
	// noChanges is set once Watch returned ErrNoChanges: the source only
	// polls, needs no place and is never watched again.
	noChanges atomic.Bool
	// inPlace is set while a Watch is in place (it signalled once) and has
	// not ended.
	inPlace atomic.Bool
	// handle stops the current Watch, when it detached, on the goroutine
	// of stop.
	handle atomic.Pointer[subscription.Handle]
}

// start starts watching unless the feed already does or its source has
// no change signals; without a Watches place the feed polls. again is a
// polling feed asking again (see take).
func (w *watching[T]) start(again bool) {
	f := w.f
	if w.cancel != nil || w.noChanges.Load() || f.ctx.Err() != nil {
		return // a feed stopping takes no place
	}
	var pl *share.Place
	if pool := f.hub.opts.Watches; pool != nil {
		var ok bool
		if pl, ok = take(pool, f.ns, again); !ok {
			w.poll()
			return
		}
	}
	f.hub.setPolled(f, false)
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	w.place, w.cancel, w.done = pl, cancel, done
	if pl != nil {
		w.stopGuard = pl.AfterLost(func() { // stop watching at once when the place is taken
			cancel()
			f.post(evLost)
		})
	}
	go f.watch(ctx, func() { f.post(evChanged) }, func(noChanges bool) {
		if noChanges {
			w.noChanges.Store(true)
			if pl != nil {
				pl.Release() // a place stands for a watch, and there is none
			}
		}
		cancel()
		close(done)
	})
}

// placeLost reports whether the Watches place was taken for another
// namespace while the feed watched.
func (w *watching[T]) placeLost() bool {
	if w.place == nil || w.noChanges.Load() {
		return false
	}
	select {
	case <-w.place.Lost():
		return true
	default:
		return false
	}
}

// stop stops watching, waits for the watch to return and gives the place
// back.
func (w *watching[T]) stop() {
	if w.stopGuard != nil {
		w.stopGuard()
		w.stopGuard = nil
	}
	if w.cancel != nil {
		if h := w.handle.Load(); h != nil {
			h.Stop(w.cancel) // the watch ends here, with no goroutine of its own
		} else {
			w.cancel()
		}
		<-w.done
		w.cancel = nil
	}
	if w.place != nil {
		w.place.Release()
		w.place = nil
	}
}

// poll marks the feed as polling for want of a place, and reports it
// once per spell.
func (w *watching[T]) poll() {
	f := w.f
	if f.hub.setPolled(f, true) && f.hub.opts.NoWatch != nil {
		f.hub.opts.NoWatch(f.key, f.ns)
	}
}

// watch runs the source's Watch until ctx ends, again after each failure,
// then calls end once, with whether the source has no change signals. A
// source whose Watch detaches (subscription.Detach) resumes this loop
// from its end, on a goroutine of its own: a watch in place, and one
// waiting to retry, hold no goroutine.
func (f *feed[T]) watch(ctx context.Context, signal func(), end func(noChanges bool)) {
	ctx = context.WithValue(ctx, gapKey{}, &f.gap)
	f.watchOnce(context.WithValue(ctx, trustKey{}, &f.trusted), signal, end)
}

// watchOnce runs the source's Watch once, and hands its end to
// watchEnded.
func (f *feed[T]) watchOnce(ctx context.Context, signal func(), end func(noChanges bool)) {
	var caughtUp, ended atomic.Bool
	f.trusted.Store(false) // until this Watch says so
	resume := func(err error) {
		if !ended.Swap(true) {
			f.watchEnded(ctx, err, signal, end)
		}
	}
	dctx, handle := subscription.Detach(ctx, resume)
	f.w.handle.Store(handle)
	err := f.src.Watch(dctx, func() {
		if !caughtUp.Swap(true) {
			f.catchUp.Store(true) // the signal of a watch in place
			f.w.inPlace.Store(true)
			if ended.Load() { // its end came meanwhile (watchEnded cleared it first)
				f.w.inPlace.Store(false)
			}
		}
		signal()
	})
	if !errors.Is(err, subscription.ErrDetached) {
		resume(err)
	}
}

// watchEnded handles the end of one Watch with err: the feed's end, a
// source without change signals, or a failure, after which the feed
// watches again once RetryWatch has passed, its timer holding no
// goroutine meanwhile.
func (f *feed[T]) watchEnded(ctx context.Context, err error, signal func(), end func(noChanges bool)) {
	f.w.inPlace.Store(false)
	if ctx.Err() != nil {
		end(false)
		return
	}
	if errors.Is(err, ErrNoChanges) {
		end(true)
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
	// Whichever of the timer and ctx's end comes first goes on.
	var first atomic.Bool
	var mu sync.Mutex // held until t and stop are set
	var stop func() bool
	mu.Lock()
	defer mu.Unlock()
	t := time.AfterFunc(f.hub.opts.RetryWatch, func() {
		if first.Swap(true) {
			return
		}
		mu.Lock()
		stop() // ctx keeps no callback per retry
		mu.Unlock()
		if ctx.Err() != nil {
			end(false)
			return
		}
		f.catchUp.Store(true)
		signal() // changes may have been missed while not watching
		f.watchOnce(ctx, signal, end)
	})
	stop = context.AfterFunc(ctx, func() {
		if !first.Swap(true) {
			t.Stop()
			end(false)
		}
	})
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

// trustKey carries a feed's trust in its watch's signals in the context
// of its source's Watch.
type trustKey struct{}

// UntrustSignals takes TrustSignals back, from a source whose watch goes
// on but may miss changes for a while (its subscription lost and being
// made again): its feed reads every Interval until TrustSignals again.
func UntrustSignals(ctx context.Context) {
	if t, ok := ctx.Value(trustKey{}).(*atomic.Bool); ok {
		t.Store(false)
	}
}

// TrustSignals says, from a source's Watch, that its change signals tell
// of every change to the answer: while the watch is in place and the
// feed's reads succeed, the feed reads only every Options.Watched, not
// every Interval. A source says it only when it knows (keyspace
// notifications that Redis says are on). Outside a feed's Watch it does
// nothing.
func TrustSignals(ctx context.Context) {
	if t, ok := ctx.Value(trustKey{}).(*atomic.Bool); ok {
		t.Store(true)
	}
}
