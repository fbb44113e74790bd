package share_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kedascalers/kedascalers/libs/scalerkit/share"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
)

// fill takes n places for ns and fails the test if one is refused.
func fill(t *testing.T, p *share.Pool, ns string, n int) []*share.Place {
	t.Helper()
	var places []*share.Place
	for range n {
		pl, ok := p.Take(ns)
		if !ok {
			t.Fatalf("%s: place %d refused, want taken", ns, len(places)+1)
		}
		places = append(places, pl)
	}
	return places
}

func lost(pl *share.Place) bool {
	select {
	case <-pl.Lost():
		return true
	default:
		return false
	}
}

func TestPoolFairShares(t *testing.T) {
	tests := []struct {
		name     string
		capacity int
		before   map[string]int // places taken, in map order it does not matter: all fit
		ask      string
		granted  bool
		victim   string // whose place is lost, "" for none
	}{
		{"free place", 4, map[string]int{"evil": 3}, "good", true, ""},
		{"first place taken from the largest", 4, map[string]int{"evil": 3, "zero": 1}, "good", true, "evil"},
		{"first place even when every namespace holds one", 2, map[string]int{"a": 1, "b": 1}, "good", true, "a|b"},
		{"under its share", 6, map[string]int{"evil": 5, "good": 1}, "good", true, "evil"},
		{"at its share", 6, map[string]int{"evil": 3, "good": 3}, "good", false, ""},
		{"over its share", 6, map[string]int{"evil": 5, "good": 1}, "evil", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := share.New(tc.capacity, share.Options{})
			held := map[string][]*share.Place{}
			for ns, n := range tc.before {
				held[ns] = fill(t, p, ns, n)
			}
			pl, ok := p.Take(tc.ask)
			if ok != tc.granted {
				t.Fatalf("Take(%q) = %v, want %v", tc.ask, ok, tc.granted)
			}
			var gave []string
			for ns, places := range held {
				for _, o := range places {
					if lost(o) {
						gave = append(gave, ns)
					}
				}
			}
			switch {
			case tc.victim == "" && len(gave) > 0:
				t.Fatalf("places lost by %v, want none", gave)
			case tc.victim == "a|b" && (len(gave) != 1 || gave[0] == tc.ask):
				t.Fatalf("places lost by %v, want one of another namespace", gave)
			case tc.victim != "" && tc.victim != "a|b" && (len(gave) != 1 || gave[0] != tc.victim):
				t.Fatalf("places lost by %v, want one of %s", gave, tc.victim)
			}
			if ok {
				if lost(pl) {
					t.Fatal("the new place is lost at once")
				}
				if got := p.Held(tc.ask); got != tc.before[tc.ask]+1 {
					t.Fatalf("%s holds %d, want %d", tc.ask, got, tc.before[tc.ask]+1)
				}
			}
		})
	}
}

// TestPoolLargestHolderGivesUpItsNewest: the namespace holding the most
// loses its newest place, the loss is final, and the pool's figures follow.
func TestPoolLargestHolderGivesUpItsNewest(t *testing.T) {
	var held, largest, taken int
	p := share.New(4, share.Options{Held: func(n int) { held = n }, Largest: func(n int) { largest = n }, Taken: func() { taken++ }})
	evil := fill(t, p, "evil", 4)
	if held != 4 || largest != 4 {
		t.Fatalf("held %d, largest %d; want 4, 4", held, largest)
	}
	good := fill(t, p, "good", 2) // its share: 4 / 2
	for i, pl := range evil {
		if want := i >= 2; lost(pl) != want {
			t.Errorf("evil's place %d lost = %v, want %v", i, lost(pl), want)
		}
	}
	if _, ok := p.Take("good"); ok {
		t.Fatal("good took a third place of 4 shared by 2")
	}
	if _, ok := p.Take("evil"); ok {
		t.Fatal("evil took back a place while at its share")
	}
	if held != 4 || largest != 2 || taken != 2 {
		t.Fatalf("held %d, largest %d, taken %d; want 4, 2, 2", held, largest, taken)
	}
	evil[3].Release() // lost already: nothing to give back
	if held != 4 {
		t.Fatalf("releasing a lost place changed held to %d", held)
	}
	good[0].Release()
	good[0].Release()
	if held != 3 || p.Held("good") != 1 {
		t.Fatalf("after a release: held %d, good %d; want 3, 1", held, p.Held("good"))
	}
	if _, ok := p.Take("evil"); !ok {
		t.Fatal("evil refused a free place")
	}
}

// TestPoolManyNamespacesEachGetAPlace: more namespaces than places, each
// asking once: every ask is granted, and no namespace ever holds more
// than one place while another asked.
func TestPoolManyNamespacesEachGetAPlace(t *testing.T) {
	p := share.New(10, share.Options{})
	fill(t, p, "big", 10)
	for i := range 30 {
		ns := fmt.Sprintf("ns%d", i)
		fill(t, p, ns, 1)
		if i >= 9 && p.Held("big") > 1 {
			t.Fatalf("after %d namespaces asked, big still holds %d", i+1, p.Held("big"))
		}
	}
}

// TestQueueTurnsAcrossNamespaces: a namespace that asks while another's
// burst waits runs next, not after the burst.
func TestQueueTurnsAcrossNamespaces(t *testing.T) {
	var running, waiting atomic.Int64
	q := share.NewQueueWith(1, 1, 100, share.QueueOptions{
		Running: func(n int) { running.Store(int64(n)) },
		Waiting: func(n int) { waiting.Store(int64(n)) },
	})
	ctx := context.Background()
	first, err := q.Acquire(ctx, "burst")
	if err != nil {
		t.Fatal(err)
	}
	order := make(chan string, 10)
	var wg sync.WaitGroup
	ask := func(ns string) {
		defer wg.Done()
		release, err := q.Acquire(ctx, ns)
		if err != nil {
			order <- "error " + err.Error()
			return
		}
		order <- ns
		time.Sleep(time.Millisecond)
		release()
	}
	for i := range 3 {
		wg.Add(1)
		go ask("burst")
		wait.For(t, 5*time.Second, "burst's calls queued in order", func() bool { return waiting.Load() == int64(i+1) })
	}
	wg.Add(1)
	go ask("other")
	wait.For(t, 5*time.Second, "other's call queued", func() bool { return waiting.Load() == 4 })
	first()
	var got []string
	for range 4 {
		got = append(got, <-order)
	}
	if want := []string{"burst", "other", "burst", "burst"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("turns %v, want %v", got, want)
	}
	wg.Wait()
	if n := running.Load(); n != 0 {
		t.Fatalf("running = %d after every call ended, want 0", n)
	}
}

func TestQueueBounds(t *testing.T) {
	var waiting atomic.Int64
	q := share.NewQueueWith(4, 1, 1, share.QueueOptions{Waiting: func(n int) { waiting.Store(int64(n)) }})
	ctx := context.Background()
	release, err := q.Acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	queued, cancel := context.WithCancel(ctx)
	defer cancel()
	waited := make(chan error, 1)
	go func() {
		_, err := q.Acquire(queued, "a")
		waited <- err
	}()
	wait.For(t, 5*time.Second, "a's second call to wait", func() bool { return waiting.Load() == 1 })
	if _, err := q.Acquire(ctx, "a"); !errors.Is(err, share.ErrQueueFull) {
		t.Fatalf("a second waiter of a: %v, want ErrQueueFull", err)
	}
	if r, err := q.Acquire(ctx, "b"); err != nil {
		t.Fatalf("b while a is at its bound: %v, want a place", err)
	} else {
		r()
	}
	cancel()
	if err := <-waited; !errors.Is(err, context.Canceled) {
		t.Fatalf("a's waiter: %v, want its context's end", err)
	}
	release()
	release()
	if r, err := q.Acquire(ctx, "a"); err != nil {
		t.Fatalf("a after its call ended: %v", err)
	} else {
		r()
	}
}

// TestQueueReports: a Queue reports the calls running, waiting, and
// running of the namespace running the most, as they change.
func TestQueueReports(t *testing.T) {
	var running, waiting, largest atomic.Int64
	q := share.NewQueueWith(3, 2, 10, share.QueueOptions{
		Running: func(n int) { running.Store(int64(n)) },
		Waiting: func(n int) { waiting.Store(int64(n)) },
		Largest: func(n int) { largest.Store(int64(n)) },
	})
	ctx := context.Background()
	want := func(step string, r, w, l int64) {
		t.Helper()
		if running.Load() != r || waiting.Load() != w || largest.Load() != l {
			t.Errorf("%s: running %d, waiting %d, largest %d; want %d, %d, %d", step, running.Load(), waiting.Load(), largest.Load(), r, w, l)
		}
	}
	a1, _ := q.Acquire(ctx, "a")
	a2, _ := q.Acquire(ctx, "a")
	want("a at its bound", 2, 0, 2)
	b1, _ := q.Acquire(ctx, "b")
	want("every place taken", 3, 0, 2)
	got := make(chan func(), 2)
	for _, ns := range []string{"a", "b"} {
		go func() { r, _ := q.Acquire(ctx, ns); got <- r }()
	}
	wait.For(t, 5*time.Second, "two waiting", func() bool { return waiting.Load() == 2 })
	a1() // to b (in turn, and a is at its bound only if it got it back first)
	r := <-got
	want("one handed on", 3, 1, 2)
	a2()
	r2 := <-got
	want("both handed on", 3, 0, 2)
	for _, release := range []func(){b1, r, r2} {
		release()
	}
	want("all released", 0, 0, 0)
}

func TestPoolFree(t *testing.T) {
	p := share.New(3, share.Options{})
	if p.Free() != 3 {
		t.Fatalf("Free() of a new pool = %d, want 3", p.Free())
	}
	a := fill(t, p, "a", 3)
	if p.Free() != 0 {
		t.Errorf("Free() of a full pool = %d, want 0", p.Free())
	}
	fill(t, p, "b", 1) // taken from a: still full
	if p.Free() != 0 {
		t.Errorf("Free() after a place was taken = %d, want 0", p.Free())
	}
	a[0].Release()
	a[0].Release()
	if p.Free() != 1 {
		t.Errorf("Free() after one release (twice) = %d, want 1", p.Free())
	}
}

// TestPlaceAfterLost: the func runs once the place is taken (at once when
// it already was), never after Release or stop, and nothing waits
// meanwhile.
func TestPlaceAfterLost(t *testing.T) {
	p := share.New(2, share.Options{})
	a := fill(t, p, "a", 2)
	ran := make(chan string, 4)
	a[1].AfterLost(func() { ran <- "taken" })
	stopped := a[1].AfterLost(func() { ran <- "stopped" })
	if !stopped() {
		t.Fatal("stop before the loss = false, want true")
	}
	a[0].AfterLost(func() { ran <- "released" })
	fill(t, p, "b", 1) // takes a's newest, a[1]
	if got := <-ran; got != "taken" {
		t.Fatalf("ran %q, want taken", got)
	}
	a[0].Release()
	fill(t, p, "c", 1) // the place a[0] freed
	a[1].AfterLost(func() { ran <- "late" })
	if got := <-ran; got != "late" {
		t.Fatalf("ran %q, want late (registered after the loss)", got)
	}
	select {
	case got := <-ran:
		t.Errorf("ran %q as well", got)
	case <-time.After(50 * time.Millisecond): // a safety net: a func never started shows nothing
	}
}

// TestPoolTakeAtMost: a namespace at its own bound is refused even with
// places free, however many ask at once; others are not.
func TestPoolTakeAtMost(t *testing.T) {
	p := share.New(100, share.Options{})
	var wg sync.WaitGroup
	var got atomic.Int64
	for range 50 {
		wg.Go(func() {
			if _, ok := p.TakeAtMost("a", 3); ok {
				got.Add(1)
			}
		})
	}
	wg.Wait()
	if got.Load() != 3 || p.Held("a") != 3 {
		t.Fatalf("50 concurrent asks under a bound of 3: %d taken, %d held", got.Load(), p.Held("a"))
	}
	if _, ok := p.TakeAtMost("b", 3); !ok {
		t.Fatal("b refused while a is at its own bound")
	}
}
