package stream

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/kedascalers/kedascalers/libs/scalerkit/share"
)

// feed reads one source for its subscribers.
type feed[T any] struct {
	hub    *Hub[T]
	src    Source[T]
	key    string
	ns     string       // the namespace src is charged to
	place  *share.Place // its Readers place; nil without Readers
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
	polled  bool // counted in Hub.polled
}

func (f *feed[T]) run() {
	defer f.hub.wg.Done()
	defer f.cancel()
	changed := make(chan struct{}, 1)
	w := &watching[T]{f: f, changed: changed}
	defer func() {
		w.stop()
		f.hub.setPolled(f, false)
	}()
	w.start(false)
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
		case <-w.lost():
			w.stop()
			w.poll()
			continue
		case <-ticker.C:
			w.start(true) // a polling feed asks for a watch place again
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
