package stream_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kedascalers/kedascalers/libs/scalerkit/stream"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
)

// bounded returns a Hub of at most max feeds, leased for a long time, and
// what it reports through Evicted and Held.
func bounded(t *testing.T, max int) (h *stream.Hub[int64], evicted *atomic.Int32, held func() int) {
	t.Helper()
	evicted = &atomic.Int32{}
	var mu sync.Mutex
	last := -1
	h = newHub(t, stream.Options{Interval: long, Lease: long, MaxFeeds: max,
		Evicted: func() { evicted.Add(1) },
		Held:    func(n int) { mu.Lock(); last = n; mu.Unlock() }})
	return h, evicted, func() int { mu.Lock(); defer mu.Unlock(); return last }
}

// blocked is a source whose reads last until its feed stops.
func blocked(key string) *counter {
	c := newCounter(key)
	c.blockFrom = 1
	return c
}

func TestMaxFeedsRefusesWhenAllHaveSubscribers(t *testing.T) {
	h, evicted, held := bounded(t, 2)
	a, b, c := newCounter("a"), newCounter("b"), newCounter("c")
	subA, subB := subscribe(t, h, a), subscribe(t, h, b)
	if h.Feeds() != 2 || held() != 2 {
		t.Fatalf("at the limit: Feeds() = %d, Held reported %d; want 2", h.Feeds(), held())
	}
	// At the limit, the feeds held take more subscribers.
	subA2 := subscribe(t, h, a)
	defer subA2.Close()
	// One past it, every feed has subscribers: refused.
	if sub, err := h.Subscribe(c); !errors.Is(err, stream.ErrFull) || sub != nil {
		t.Fatalf("Subscribe(c) past the limit = %v, %v; want nil, ErrFull", sub, err)
	}
	if _, _, err := h.Latest(c); !errors.Is(err, stream.ErrFull) {
		t.Fatalf("Latest(c) past the limit = %v, want ErrFull", err)
	}
	if c.reads.Load() != 0 || h.Feeds() != 2 {
		t.Errorf("a refused source was read %d times; Feeds() = %d, want 2", c.reads.Load(), h.Feeds())
	}
	// A feed whose subscribers all left and whose lease runs makes room.
	subB.Close()
	if _, _, err := h.Latest(b); err != nil {
		t.Fatal(err)
	}
	subC := subscribe(t, h, c)
	defer subC.Close()
	if evicted.Load() != 1 || h.Feeds() != 2 {
		t.Errorf("evictions = %d, Feeds() = %d; want 1 (b) and 2", evicted.Load(), h.Feeds())
	}
	subA.Close()
}

func TestMaxFeedsEvictsIdleLeastRecentlyAsked(t *testing.T) {
	h, evicted, held := bounded(t, 2)
	a, b, c, d := blocked("a"), blocked("b"), blocked("c"), blocked("d")
	latest(t, h, a)
	latest(t, h, b)
	latest(t, h, a) // a asked again: b is now the least recently asked
	wait.For(t, waitTimeout, "b's feed to read", func() bool { return b.active.Load() == 1 })
	latest(t, h, c)
	wait.For(t, waitTimeout, "b's feed to stop", func() bool { return b.active.Load() == 0 })
	if a.active.Load() != 1 {
		t.Error("a's feed stopped although asked for more recently than b")
	}
	if evicted.Load() != 1 || h.Feeds() != 2 || held() != 2 {
		t.Fatalf("evictions = %d, Feeds() = %d, Held reported %d; want 1, 2, 2", evicted.Load(), h.Feeds(), held())
	}
	// A feed with a subscriber is never evicted, however long ago asked.
	sub := subscribe(t, h, a)
	defer sub.Close()
	latest(t, h, d)
	wait.For(t, waitTimeout, "c's feed to stop", func() bool { return c.active.Load() == 0 })
	if a.active.Load() != 1 || evicted.Load() != 2 {
		t.Errorf("a active = %d, evictions = %d; want a kept, 2 evictions", a.active.Load(), evicted.Load())
	}
}

func TestTouchRenewsOnlyRunningFeeds(t *testing.T) {
	h, _, _ := bounded(t, 2)
	a := newCounter("a")
	if h.Touch(a) {
		t.Error("Touch of a source without a feed = true")
	}
	if h.Feeds() != 0 {
		t.Fatalf("Touch started a feed")
	}
	latest(t, h, a)
	if !h.Touch(a) {
		t.Error("Touch of a running feed = false")
	}
}
