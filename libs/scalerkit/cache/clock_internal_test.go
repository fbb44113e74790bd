package cache

import (
	"context"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for Group.now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClockedGroup(t *testing.T, ttl time.Duration) (*Group[int], *fakeClock, *[]Outcome) {
	t.Helper()
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	var outcomes []Outcome
	g := New[int](Options{TTL: ttl, Observe: func(o Outcome) { outcomes = append(outcomes, o) }})
	g.now = clock.now
	return g, clock, &outcomes
}

func TestExpiryWithClock(t *testing.T) {
	const ttl = 10 * time.Second
	tests := []struct {
		name    string
		advance time.Duration // after the first Get
		want    Outcome
	}{
		{"immediately", 0, Hit},
		{"just before the TTL", ttl - time.Nanosecond, Hit},
		{"at the TTL", ttl, Miss},
		{"after the TTL", ttl + time.Second, Miss},
		{"long after", time.Hour, Miss},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, clock, outcomes := newClockedGroup(t, ttl)
			calls := 0
			fetch := func(context.Context) (int, error) { calls++; return calls, nil }
			if v, err := g.Get(context.Background(), "k", fetch); err != nil || v != 1 {
				t.Fatalf("first Get = %d, %v", v, err)
			}
			clock.advance(tt.advance)
			v, err := g.Get(context.Background(), "k", fetch)
			if err != nil {
				t.Fatal(err)
			}
			if got := (*outcomes)[1]; got != tt.want {
				t.Errorf("outcome = %v, want %v", got, tt.want)
			}
			wantV := 1
			if tt.want == Miss {
				wantV = 2
			}
			if v != wantV || calls != wantV {
				t.Errorf("Get = %d after %d fetches, want %d", v, calls, wantV)
			}
		})
	}
}

func TestRefetchRenewsTTL(t *testing.T) {
	const ttl = 10 * time.Second
	g, clock, _ := newClockedGroup(t, ttl)
	calls := 0
	fetch := func(context.Context) (int, error) { calls++; return calls, nil }
	get := func() int {
		t.Helper()
		v, err := g.Get(context.Background(), "k", fetch)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	get()
	clock.advance(ttl)
	if v := get(); v != 2 {
		t.Fatalf("Get after the TTL = %d, want 2", v)
	}
	clock.advance(ttl / 2)
	if v := get(); v != 2 {
		t.Fatalf("Get within the renewed TTL = %d, want 2", v)
	}
}

func TestExpiredEntriesAreSwept(t *testing.T) {
	const ttl = 10 * time.Second
	g, clock, _ := newClockedGroup(t, ttl)
	put := func(key string) {
		t.Helper()
		if _, err := g.Get(context.Background(), key, func(context.Context) (int, error) { return 1, nil }); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		advance time.Duration
		put     string
		wantLen int
		why     string
	}{
		{0, "a", 1, "a kept"},
		{0, "b", 2, "b kept"},
		{0, "c", 3, "c kept"},
		{ttl + time.Second, "", 3, "expired entries stay until the next store"},
		{0, "d", 1, "the store of d sweeps a, b, c (t=11s)"},
		{5 * time.Second, "e", 2, "t=16s: no sweep within one TTL of the last"},
		{5 * time.Second, "", 2, "t=21s: d expired but nothing stored"},
		{0, "f", 2, "t=21s: sweep drops d (expired at 21s), keeps e and f"},
	}
	for i, s := range steps {
		clock.advance(s.advance)
		if s.put != "" {
			put(s.put)
		}
		if got := g.Len(); got != s.wantLen {
			t.Fatalf("step %d (%s): Len() = %d, want %d", i, s.why, got, s.wantLen)
		}
	}
	// A swept entry is really gone: the next Get misses.
	calls := 0
	if _, err := g.Get(context.Background(), "a", func(context.Context) (int, error) { calls++; return 2, nil }); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("Get(a) after the sweep did not fetch")
	}
}

func TestExpiredEntryIsNotReturnedBeforeSweep(t *testing.T) {
	g, clock, outcomes := newClockedGroup(t, time.Second)
	_, _ = g.Get(context.Background(), "k", func(context.Context) (int, error) { return 1, nil })
	clock.advance(2 * time.Second)
	if g.Len() != 1 {
		t.Fatalf("Len() = %d, want the unswept 1", g.Len())
	}
	v, _ := g.Get(context.Background(), "k", func(context.Context) (int, error) { return 2, nil })
	if v != 2 || (*outcomes)[1] != Miss {
		t.Errorf("Get of an expired entry = %d (%v), want 2 (miss)", v, (*outcomes)[1])
	}
}

func TestExpiredEntryMakesRoomWithoutEviction(t *testing.T) {
	const ttl = 10 * time.Second
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	evicted := 0
	g := New[int](Options{TTL: ttl, MaxEntries: 1, Evicted: func() { evicted++ }})
	g.now = clock.now
	fetch := func(context.Context) (int, error) { return 1, nil }
	if _, err := g.Get(context.Background(), "a", fetch); err != nil {
		t.Fatal(err)
	}
	clock.advance(ttl)
	if _, err := g.Get(context.Background(), "b", fetch); err != nil {
		t.Fatal(err)
	}
	if evicted != 0 {
		t.Errorf("an expired value counted as %d evictions, want 0", evicted)
	}
	if g.Held() != 1 {
		t.Errorf("Held() = %d, want 1", g.Held())
	}
}
