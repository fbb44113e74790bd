package cache_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kedascalers/kedascalers/libs/scalerkit/cache"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
)

// counts records what a bounded Group reports through Evicted and Held.
type counts struct {
	evicted atomic.Int32
	mu      sync.Mutex
	held    []int
}

func (c *counts) options(max int) cache.Options {
	return cache.Options{TTL: time.Hour, MaxEntries: max, Evicted: func() { c.evicted.Add(1) },
		Held: func(n int) { c.mu.Lock(); c.held = append(c.held, n); c.mu.Unlock() }}
}

func (c *counts) lastHeld() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.held) == 0 {
		return -1
	}
	return c.held[len(c.held)-1]
}

func TestMaxEntriesEvictsLeastRecentlyUsed(t *testing.T) {
	var c counts
	g := cache.New[string](c.options(3))
	fetched := map[string]int{}
	get := func(key string) {
		t.Helper()
		v, err := g.Get(context.Background(), key, func(context.Context) (string, error) { fetched[key]++; return key, nil })
		if err != nil || v != key {
			t.Fatalf("Get(%s) = %q, %v", key, v, err)
		}
	}
	steps := []struct {
		get         string
		wantFetches int // of this key so far
		wantEvicted int32
		why         string
	}{
		{"a", 1, 0, "a kept"},
		{"b", 1, 0, "b kept"},
		{"c", 1, 0, "c kept: at the limit of 3"},
		{"a", 1, 0, "a is a hit and becomes the most recently used"},
		{"d", 1, 1, "one past the limit: b, the least recently used, makes room"},
		{"a", 1, 1, "a survived"},
		{"c", 1, 1, "c survived"},
		{"b", 2, 2, "b was dropped: fetched again, evicting d"},
		{"d", 2, 3, "d was dropped"},
	}
	for i, s := range steps {
		get(s.get)
		if fetched[s.get] != s.wantFetches {
			t.Fatalf("step %d (%s): %s fetched %d times, want %d", i, s.why, s.get, fetched[s.get], s.wantFetches)
		}
		if got := c.evicted.Load(); got != s.wantEvicted {
			t.Fatalf("step %d (%s): %d evictions, want %d", i, s.why, got, s.wantEvicted)
		}
		if g.Held() > 3 || g.Len() > 3 {
			t.Fatalf("step %d: Held() = %d, Len() = %d, past the limit of 3", i, g.Held(), g.Len())
		}
	}
	if got := c.lastHeld(); got != 3 {
		t.Errorf("Held reported %d last, want 3", got)
	}
}

func TestMaxEntriesRefusesWhenAllInFlight(t *testing.T) {
	var c counts
	g := cache.New[string](c.options(2))
	a, b := newBlockingFetch("a"), newBlockingFetch("b")
	ra := goGet(g, context.Background(), "a", a.fetch)
	rb := goGet(g, context.Background(), "b", b.fetch)
	wait.For(t, waitTimeout, "a to start", wait.Closed(a.started))
	wait.For(t, waitTimeout, "b to start", wait.Closed(b.started))
	if g.Held() != 2 || c.lastHeld() != 2 {
		t.Fatalf("at the limit: Held() = %d, reported %d; want 2", g.Held(), c.lastHeld())
	}

	// At the limit, the questions held are still answered: a joins a's call.
	joined := newJoinCtx(context.Background())
	ra2 := goGet(g, joined, "a", a.fetch)
	wait.For(t, waitTimeout, "the second Get of a to join", wait.Closed(joined.joined))

	// One past it, with nothing idle to drop: refused at once, no call made.
	called := false
	_, err := g.Get(context.Background(), "c", func(context.Context) (string, error) { called = true; return "c", nil })
	if !errors.Is(err, cache.ErrFull) {
		t.Fatalf("Get(c) past the limit = %v, want ErrFull", err)
	}
	if called {
		t.Error("a refused Get called fetch")
	}
	if g.Held() != 2 {
		t.Errorf("Held() = %d after a refusal, want 2", g.Held())
	}

	close(a.release)
	if r := recv(t, "a", ra); r.v != "a" || r.err != nil {
		t.Fatalf("Get(a) = %q, %v", r.v, r.err)
	}
	if r := recv(t, "a joined", ra2); r.v != "a" || r.err != nil {
		t.Fatalf("joined Get(a) = %q, %v", r.v, r.err)
	}
	// a's value is idle now: c takes its place.
	v, err := g.Get(context.Background(), "c", func(context.Context) (string, error) { return "c", nil })
	if err != nil || v != "c" {
		t.Fatalf("Get(c) once a is idle = %q, %v", v, err)
	}
	if c.evicted.Load() != 1 {
		t.Errorf("evictions = %d, want 1 (a)", c.evicted.Load())
	}
	close(b.release)
	recv(t, "b", rb)
	if a.calls.Load() != 1 {
		t.Errorf("a fetched %d times, want 1", a.calls.Load())
	}
}

func TestMaxEntriesWithoutTTL(t *testing.T) {
	// TTL 0 keeps nothing, so only calls in flight count.
	g := cache.New[string](cache.Options{MaxEntries: 1})
	a := newBlockingFetch("a")
	ra := goGet(g, context.Background(), "a", a.fetch)
	wait.For(t, waitTimeout, "a to start", wait.Closed(a.started))
	if _, err := g.Get(context.Background(), "b", func(context.Context) (string, error) { return "b", nil }); !errors.Is(err, cache.ErrFull) {
		t.Fatalf("Get(b) while a is in flight = %v, want ErrFull", err)
	}
	close(a.release)
	recv(t, "a", ra)
	if v, err := g.Get(context.Background(), "b", func(context.Context) (string, error) { return "b", nil }); err != nil || v != "b" {
		t.Fatalf("Get(b) after a = %q, %v", v, err)
	}
	if g.Held() != 0 {
		t.Errorf("Held() = %d with TTL 0 and nothing in flight, want 0", g.Held())
	}
}

func TestCloseCancelsCallsInFlight(t *testing.T) {
	g := cache.New[string](cache.Options{TTL: time.Hour, Timeout: time.Hour})
	started := make(chan struct{})
	r := goGet(g, context.Background(), "k", func(ctx context.Context) (string, error) {
		close(started)
		<-ctx.Done()
		return "", ctx.Err()
	})
	wait.For(t, waitTimeout, "the call to start", wait.Closed(started))
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := g.Close(ctx); err != nil {
		t.Fatalf("Close = %v, want nil: the call honours its context", err)
	}
	if res := recv(t, "Get", r); !errors.Is(res.err, context.Canceled) {
		t.Errorf("Get = %q, %v; want context.Canceled", res.v, res.err)
	}
	if _, err := g.Get(context.Background(), "other", func(context.Context) (string, error) { return "x", nil }); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("Get after Close = %v, want ErrClosed", err)
	}
}

func TestCloseDoesNotWaitForACallIgnoringCancellation(t *testing.T) {
	g := cache.New[string](cache.Options{TTL: time.Hour})
	bf := newBlockingFetch("v") // ignores its context
	r := goGet(g, context.Background(), "k", bf.fetch)
	wait.For(t, waitTimeout, "the call to start", wait.Closed(bf.started))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := g.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want DeadlineExceeded", err)
	}
	close(bf.release) // the call ends after all, so nothing leaks
	recv(t, "Get", r)
}

// BenchmarkGetEvicting asks a new question on every call at the bound of
// 1000: each Get is a miss that drops the least recently used value.
func BenchmarkGetEvicting(b *testing.B) {
	g := cache.New[int](cache.Options{TTL: time.Hour, MaxEntries: 1000})
	ctx := context.Background()
	fetch := func(context.Context) (int, error) { return 1, nil }
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = "question-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := g.Get(ctx, keys[i%len(keys)], fetch); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// TestMaxBytes: the keys of the kept values weigh at most MaxBytes; the
// least recently used make room, the newest is always kept.
func TestMaxBytes(t *testing.T) {
	tests := []struct {
		name        string
		keys        []string
		wantKept    []string
		wantEvicted int32
	}{
		{"under", []string{"aaaa", "bbbb"}, []string{"aaaa", "bbbb"}, 0},
		{"at", []string{"aaaaa", "bbbbb"}, []string{"aaaaa", "bbbbb"}, 0},
		{"past", []string{"aaaa", "bbbb", "cccc"}, []string{"bbbb", "cccc"}, 1},
		{"one larger than the bound", []string{"aaaa", "bbbbbbbbbbbb"}, []string{"bbbbbbbbbbbb"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c counts
			opts := c.options(100)
			opts.MaxBytes = 10
			g := cache.New[string](opts)
			for _, k := range tc.keys {
				if _, err := g.Get(context.Background(), k, func(context.Context) (string, error) { return k, nil }); err != nil {
					t.Fatal(err)
				}
			}
			if g.Len() != len(tc.wantKept) || c.evicted.Load() != tc.wantEvicted {
				t.Errorf("kept %d, evicted %d; want %d, %d", g.Len(), c.evicted.Load(), len(tc.wantKept), tc.wantEvicted)
			}
			for _, k := range tc.wantKept {
				if _, ok := g.Hit(k); !ok {
					t.Errorf("%s was not kept", k)
				}
			}
		})
	}
}
