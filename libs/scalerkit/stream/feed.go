package stream

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kedascalers/kedascalers/libs/scalerkit/share"
)

// feed reads one source for its subscribers. It holds no goroutine while
// it waits: what it waits for (its interval, a change signal, a change
// read delayed, its watch place lost, its end) posts an event, and one
// goroutine at a time handles the events pending, then returns (see
// post). A feed that only polls thus costs a timer, not a goroutine.
type feed[T any] struct {
	hub    *Hub[T]
	src    Source[T]
	key    string
	ns     string       // the namespace src is charged to
	place  *share.Place // its Readers place; nil without Readers
	ctx    context.Context
	cancel context.CancelFunc
	gap    atomic.Int64 // a change gap the source asked for (SetChangeGap)
	// trusted says that the watch's signals tell of every change
	// (TrustSignals).
	trusted atomic.Bool
	// catchUp says that the pending signal is a Watch catching up (in
	// place, or back after a failure), not a change: it opens no gap.
	catchUp atomic.Bool

	evMu    sync.Mutex
	events  event // pending, guarded by evMu
	running bool  // a goroutine handles events, guarded by evMu
	ended   bool  // the end was handled, guarded by evMu

	// Owned by the goroutine handling events.
	w          *watching[T]
	tick       *time.Timer // every Interval: read, and ask for a watch place again
	delay      *time.Timer // a change read that must wait (Throttle, the source's gap)
	delayed    bool        // delay is armed
	last       time.Time   // the last read
	lastOK     bool        // the last read succeeded
	lastChange time.Time   // the last read a change caused

	// Guarded by hub.mu.
	subs    map[*Subscription[T]]struct{}
	used    time.Time // last asked for: the order in which idle feeds make room
	lease   time.Time
	good    T
	hasGood bool
	polled  bool // counted in Hub.polled
}

// event is a set of things a feed must handle.
type event uint8

const (
	evStart   event = 1 << iota // the first read
	evTick                      // the interval elapsed
	evChanged                   // the source signalled a change
	evDelayed                   // a delayed change read is due
	evLost                      // the watch place may have been taken
	evEnd                       // the feed's context ended
)

// start starts f: its first read, then its events until its context ends.
// The Hub's WaitGroup counts f until its end is handled.
func (f *feed[T]) start() {
	f.w = &watching[T]{f: f}
	f.hub.wg.Add(1)
	f.post(evStart) // the Hub posts its end (see stopLocked)
}

// post adds e to f's pending events and starts a goroutine to handle them
// unless one runs or f has ended.
func (f *feed[T]) post(e event) {
	if f.claim(e) {
		go f.handleEvents()
	}
}

// postHere is post from a goroutine of its own (a timer's, a context's
// AfterFunc): it handles the events itself instead of starting another,
// so that thousands of feeds ending or ticking at once start half the
// goroutines.
func (f *feed[T]) postHere(e event) {
	if f.claim(e) {
		f.handleEvents()
	}
}

// claim adds e to f's pending events and reports whether the caller is
// to handle them: none does, and f has not ended.
func (f *feed[T]) claim(e event) bool {
	f.evMu.Lock()
	defer f.evMu.Unlock()
	f.events |= e
	if f.running || f.ended {
		return false
	}
	f.running = true
	f.hub.wg.Add(1) // f's own count is held until its end: Close waits for this too
	return true
}

// handleEvents handles f's pending events one set at a time until none is
// left, or f's end.
func (f *feed[T]) handleEvents() {
	defer f.hub.wg.Done()
	for {
		f.evMu.Lock()
		e := f.events
		f.events = 0
		if e == 0 {
			f.running = false
		}
		if e&evEnd != 0 {
			f.ended = true
		}
		f.evMu.Unlock()
		switch {
		case e == 0:
			return
		case e&evEnd != 0:
			f.end()
			return
		}
		f.handle(e)
	}
}

// end stops f's watch and timers once its context ended.
func (f *feed[T]) end() {
	defer f.hub.wg.Done()
	f.w.stop()
	f.hub.setPolled(f, false)
	if f.tick != nil {
		f.tick.Stop()
	}
	if f.delay != nil {
		f.delay.Stop()
	}
}

// handle handles one set of events: at most one read.
func (f *feed[T]) handle(e event) {
	if e&evStart != 0 {
		f.w.start(false)
		f.read()
		f.last = time.Now()
		f.tick = time.AfterFunc(f.hub.interval(), func() { f.postHere(evTick) })
	}
	if e&evLost != 0 && f.w.placeLost() {
		f.w.stop()
		f.w.poll()
	}
	byChange := false
	switch {
	case e&evTick != 0:
		f.tick.Reset(f.hub.interval())
		f.w.start(true) // a polling feed asks for a watch place again
		if e&(evChanged|evDelayed) == 0 && f.quiet() {
			return
		}
	case e&evDelayed != 0 && f.delayed:
		f.delayed = false
		byChange = true
	case e&evChanged != 0:
		wait := max(time.Until(f.last.Add(f.hub.opts.Throttle)), time.Until(f.lastChange.Add(time.Duration(f.gap.Load()))))
		if wait > 0 {
			if !f.delayed {
				if f.delay == nil {
					f.delay = time.AfterFunc(wait, func() { f.postHere(evDelayed) })
				} else {
					f.delay.Reset(wait)
				}
				f.delayed = true
			}
			return
		}
		byChange = true
		e &^= evChanged // the signal this read is for
	default:
		return
	}
	// This read covers every change signalled before it.
	if f.delayed && !byChange {
		f.delay.Stop()
		f.delayed = false
	}
	f.evMu.Lock()
	pending := e&evChanged != 0 || f.events&evChanged != 0
	f.events &^= evChanged
	f.evMu.Unlock()
	if pending && !byChange {
		f.catchUp.Store(false) // a catch-up this read covers
	}
	f.read()
	f.last = time.Now()
	if byChange && !f.catchUp.Swap(false) {
		f.lastChange = f.last
	}
	f.retire()
}

// quiet reports whether f may skip its interval read: its watch is in
// place and trusted (TrustSignals), its last read succeeded and is
// younger than Options.Watched.
func (f *feed[T]) quiet() bool {
	watched := f.hub.opts.Watched
	return watched > f.hub.opts.Interval && f.lastOK && f.w.inPlace.Load() && f.trusted.Load() &&
		time.Since(f.last) < watched-f.hub.opts.Interval/2
}

// retire stops f when it has no subscribers and no lease left.
func (f *feed[T]) retire() {
	f.hub.mu.Lock()
	f.hub.retireLocked(f)
	f.hub.unlock()
}

// read asks the source once and hands the reading to every subscriber.
func (f *feed[T]) read() {
	v, err := f.src.Read(f.ctx)
	if f.ctx.Err() != nil {
		return // stopping: a read cut short is no news
	}
	f.lastOK = err == nil
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
