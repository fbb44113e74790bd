package stream_test

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kedascalers/kedascalers/libs/scalerkit/share"
	"github.com/kedascalers/kedascalers/libs/scalerkit/stream"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
)

// readers returns a Hub whose feeds need one of capacity Readers places,
// leased for a long time, the pool, and what it reports through Evicted
// and the pool's Taken.
func readers(t *testing.T, capacity int) (h *stream.Hub[int64], pool *share.Pool, evicted, taken *atomic.Int32) {
	t.Helper()
	evicted, taken = &atomic.Int32{}, &atomic.Int32{}
	pool = share.New(capacity, share.Options{Taken: func() { taken.Add(1) }})
	h = newHub(t, stream.Options{Interval: long, Lease: long, Readers: pool, Evicted: func() { evicted.Add(1) }})
	return h, pool, evicted, taken
}

// blocked is a source of namespace ns whose reads last until its feed
// stops.
func blocked(key, ns string) *counter {
	c := newCounter(key)
	c.ns = ns
	c.blockFrom = 1
	return c
}

func lostNow(s *stream.Subscription[int64]) bool {
	select {
	case <-s.Lost():
		return true
	default:
		return false
	}
}

func TestReadersNamespaceAtItsShare(t *testing.T) {
	h, pool, _, taken := readers(t, 2)
	a, b, c := blocked("a", "evil"), blocked("b", "evil"), blocked("c", "evil")
	subA, subB := subscribe(t, h, a), subscribe(t, h, b)
	defer subA.Close()
	defer subB.Close()
	if h.Feeds() != 2 || pool.Held("evil") != 2 {
		t.Fatalf("at the bound: Feeds() = %d, evil holds %d; want 2, 2", h.Feeds(), pool.Held("evil"))
	}
	// At the bound, the feeds held take more subscribers.
	subA2 := subscribe(t, h, a)
	defer subA2.Close()
	// evil holds every place, all streamed: a third question waits.
	if sub, err := h.Subscribe(c); !errors.Is(err, stream.ErrNoPlace) || sub != nil {
		t.Fatalf("Subscribe(c) of a namespace at its share = %v, %v; want nil, ErrNoPlace", sub, err)
	}
	if _, _, err := h.Latest(c); !errors.Is(err, stream.ErrNoPlace) {
		t.Fatalf("Latest(c) of a namespace at its share = %v, want ErrNoPlace", err)
	}
	if c.reads.Load() != 0 || taken.Load() != 0 {
		t.Errorf("a source without a place was read %d times; places taken %d, want 0", c.reads.Load(), taken.Load())
	}

	// A second namespace takes its first place from the largest holder:
	// evil's newest feed (b) stops and tells its subscriber.
	g := blocked("g", "good")
	subG := subscribe(t, h, g)
	defer subG.Close()
	wait.For(t, waitTimeout, "b's subscription to see its place lost", func() bool { return lostNow(subB) })
	wait.For(t, waitTimeout, "b's feed to stop", func() bool { return b.active.Load() == 0 && h.Feeds() == 2 })
	wait.For(t, waitTimeout, "g's feed to read", func() bool { return g.active.Load() == 1 })
	if lostNow(subA) || lostNow(subG) || taken.Load() != 1 {
		t.Errorf("a lost %v, g lost %v, places taken %d; want false, false, 1", lostNow(subA), lostNow(subG), taken.Load())
	}
	if pool.Held("evil") != 1 || pool.Held("good") != 1 {
		t.Errorf("evil holds %d, good %d; want 1 each", pool.Held("evil"), pool.Held("good"))
	}
	// Each holds its share now: evil cannot take it back.
	if _, err := h.Subscribe(b); !errors.Is(err, stream.ErrNoPlace) {
		t.Errorf("Subscribe(b) of evil at its share again = %v, want ErrNoPlace", err)
	}
	// A place freed is anyone's.
	subG.Close()
	h.Close() // the lease would keep g's feed
	if pool.Held("good")+pool.Held("evil") != 0 {
		t.Errorf("places held after Close: good %d, evil %d", pool.Held("good"), pool.Held("evil"))
	}
}

func TestReadersIdleGiveWayFirst(t *testing.T) {
	h, pool, evicted, taken := readers(t, 2)
	idle, streamed := blocked("idle", "a"), blocked("streamed", "a")
	latest(t, h, idle)
	sub := subscribe(t, h, streamed)
	defer sub.Close()
	// b's first place comes from a's idle feed, not from its streamed one.
	b := blocked("b", "b")
	latest(t, h, b)
	wait.For(t, waitTimeout, "b's feed to read", func() bool { return b.active.Load() == 1 })
	wait.For(t, waitTimeout, "the idle feed to stop", func() bool { return idle.active.Load() == 0 })
	if lostNow(sub) || evicted.Load() != 1 || taken.Load() != 0 {
		t.Errorf("streamed feed lost %v, evictions %d, places taken %d; want false, 1, 0", lostNow(sub), evicted.Load(), taken.Load())
	}
	// An idle feed of a namespace holding no more than the asker stays:
	// a (1 place) cannot evict b's idle feed (1 place).
	if _, _, err := h.Latest(blocked("other", "a")); !errors.Is(err, stream.ErrNoPlace) {
		t.Errorf("Latest of a at its share with another's idle feed = %v, want ErrNoPlace", err)
	}
	if b.active.Load() != 1 || pool.Held("b") != 1 {
		t.Errorf("b's idle feed stopped for a namespace holding as many places")
	}
}

func TestReadersIdleLeastRecentlyAskedMakesRoom(t *testing.T) {
	h, _, evicted, _ := readers(t, 2)
	a, b, c, d := blocked("a", ""), blocked("b", ""), blocked("c", ""), blocked("d", "")
	latest(t, h, a)
	latest(t, h, b)
	latest(t, h, a) // a asked again: b is now the least recently asked
	wait.For(t, waitTimeout, "b's feed to read", func() bool { return b.active.Load() == 1 })
	latest(t, h, c)
	wait.For(t, waitTimeout, "b's feed to stop", func() bool { return b.active.Load() == 0 })
	if a.active.Load() != 1 {
		t.Error("a's feed stopped although asked for more recently than b")
	}
	if evicted.Load() != 1 || h.Feeds() != 2 {
		t.Fatalf("evictions = %d, Feeds() = %d; want 1, 2", evicted.Load(), h.Feeds())
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
	h, _, _, _ := readers(t, 2)
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

// watched returns a Hub whose watches need one of capacity Watches places,
// and the namespaces NoWatch reported.
func watched(t *testing.T, capacity int, interval time.Duration) (h *stream.Hub[int64], pool *share.Pool, noWatch func() []string) {
	t.Helper()
	var mu sync.Mutex
	var reported []string
	pool = share.New(capacity, share.Options{})
	h = newHub(t, stream.Options{Interval: interval, Throttle: time.Millisecond, Watches: pool,
		NoWatch: func(key, ns string) { mu.Lock(); reported = append(reported, ns+"/"+key); mu.Unlock() }})
	return h, pool, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), reported...) }
}

func nsWatcher(key, ns string) *watcher {
	w := newWatcher(key)
	w.ns = ns
	return w
}

func TestWatchesFeedWithoutPlacePolls(t *testing.T) {
	h, pool, noWatch := watched(t, 1, 10*time.Millisecond)
	e1, e2 := nsWatcher("e1", "evil"), nsWatcher("e2", "evil")
	sub1 := subscribe(t, h, e1)
	defer sub1.Close()
	waitWatching(t, e1)
	// evil holds its share: its second feed runs, never refused, but polls.
	sub2 := subscribe(t, h, e2)
	defer sub2.Close()
	for range 3 {
		if u := next(t, sub2); u.Err != nil {
			t.Fatalf("update of the polled feed: %v", u.Err)
		}
	}
	if e2.watches.Load() != 0 || h.Polled() != 1 || pool.Held("evil") != 1 {
		t.Errorf("polled feed: %d watches, Polled() = %d, evil holds %d; want 0, 1, 1", e2.watches.Load(), h.Polled(), pool.Held("evil"))
	}
	if got := noWatch(); len(got) != 1 || got[0] != "evil/e2" {
		t.Errorf("NoWatch reported %q, want once evil/e2 (once per spell, not per interval)", got)
	}
}

func TestWatchesLostPlacePollsAndComesBack(t *testing.T) {
	h, pool, noWatch := watched(t, 1, 10*time.Millisecond)
	e := nsWatcher("e", "evil")
	subE := subscribe(t, h, e)
	defer subE.Close()
	waitWatching(t, e)
	// good's first watch takes evil's place: e stops watching and polls.
	g := nsWatcher("g", "good")
	subG := subscribe(t, h, g)
	waitWatching(t, g)
	wait.For(t, waitTimeout, "e's watch to stop", func() bool { return e.returned.Load() == 1 })
	wait.For(t, waitTimeout, "e to count as polled", func() bool { return h.Polled() == 1 })
	if pool.Held("good") != 1 || pool.Held("evil") != 0 {
		t.Errorf("good holds %d, evil %d; want 1, 0", pool.Held("good"), pool.Held("evil"))
	}
	if got := noWatch(); len(got) != 1 || got[0] != "evil/e" {
		t.Errorf("NoWatch reported %q, want evil/e", got)
	}
	// e keeps its readings coming meanwhile, and takes nothing back from
	// good, which holds a single place: no place goes round.
	before := e.reads.Load()
	waitRead(t, e.counter, before+3)
	if g.returned.Load() != 0 || h.Polled() != 1 {
		t.Errorf("g's watch returned %d times, Polled() = %d; want g watching, e polling", g.returned.Load(), h.Polled())
	}
	// good leaves: e takes the place back at its next interval and is
	// watched again, a signal read at once.
	subG.Close()
	waitWatching(t, e)
	wait.For(t, waitTimeout, "e to stop counting as polled", func() bool { return h.Polled() == 0 })
	if pool.Held("evil") != 1 {
		t.Errorf("evil holds %d, want 1", pool.Held("evil"))
	}
	before = e.reads.Load()
	e.signal()
	wait.For(t, waitTimeout, "a read after the signal", func() bool { return e.reads.Load() > before })
}

func TestWatchesSourceWithoutChangesHoldsNoPlace(t *testing.T) {
	h, pool, noWatch := watched(t, 1, 10*time.Millisecond)
	src := newCounter("polled")
	src.ns = "ns"
	sub := subscribe(t, h, src)
	defer sub.Close()
	for range 3 {
		next(t, sub)
	}
	wait.For(t, waitTimeout, "its place to be given back", func() bool { return pool.Held("ns") == 0 })
	if h.Polled() != 0 || len(noWatch()) != 0 {
		t.Errorf("a source without change signals: Polled() = %d, NoWatch %q; want 0, none", h.Polled(), noWatch())
	}
}

func TestReadersResubscribeTakesNoSinglePlace(t *testing.T) {
	h, pool, _, taken := readers(t, 1)
	a := blocked("a", "a")
	subA := subscribe(t, h, a)
	defer subA.Close()
	// b's first place is a's single one.
	subB := subscribe(t, h, blocked("b", "b"))
	wait.For(t, waitTimeout, "a's subscription to see its place lost", func() bool { return lostNow(subA) })
	// a asks again: it would take b's single place, so it waits.
	if sub, err := h.Resubscribe(a); !errors.Is(err, stream.ErrNoPlace) || sub != nil {
		t.Fatalf("Resubscribe(a) while b holds the single place = %v, %v; want nil, ErrNoPlace", sub, err)
	}
	if lostNow(subB) || taken.Load() != 1 {
		t.Errorf("b lost %v, places taken %d; want false, 1", lostNow(subB), taken.Load())
	}
	// A freed place is taken again.
	subB.Close()
	sub, err := h.Resubscribe(a)
	if err != nil {
		t.Fatalf("Resubscribe(a) with a free place: %v", err)
	}
	defer sub.Close()
	if pool.Held("a") != 1 {
		t.Errorf("a holds %d, want 1", pool.Held("a"))
	}
}

// TestFeedsHoldNoGoroutineWhileWaiting: 500 polling feeds (their sources
// have no change signals) are read on their interval but hold no
// goroutine between reads: a timer each.
func TestFeedsHoldNoGoroutineWhileWaiting(t *testing.T) {
	const feeds = 500
	h := newHub(t, stream.Options{Interval: 100 * time.Millisecond})
	before := runtime.NumGoroutine()
	sources := make([]*counter, feeds)
	for i := range sources {
		sources[i] = newCounter(fmt.Sprint("k", i))
		defer subscribe(t, h, sources[i]).Close()
	}
	wait.For(t, waitTimeout, "every feed read on its interval", func() bool {
		for _, c := range sources {
			if c.reads.Load() < 3 {
				return false
			}
		}
		return true
	})
	// Goroutines handling a read come and go: the fewest seen over a few
	// samples is what the feeds hold while they wait.
	least := feeds
	for range 20 {
		least = min(least, runtime.NumGoroutine()-before)
		time.Sleep(7 * time.Millisecond)
	}
	if least > feeds/10 {
		t.Errorf("%d feeds hold %d goroutines, want about none between reads", feeds, least)
	}
}
