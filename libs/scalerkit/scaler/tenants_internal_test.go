package scaler

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kedascalers/kedascalers/libs/testkit/wait"
)

func TestTenants(t *testing.T) {
	var running int
	ts := newTenants(2, 1, func(n int) { running = n })
	ctx := context.Background()

	// At the limit: two calls of namespace a run, one waits.
	r1, err := ts.acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := ts.acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	var r3 func()
	go func() {
		var err error
		r3, err = ts.acquire(ctx, "a")
		got <- err
	}()
	wait.For(t, 5*time.Second, "a waiter queued", func() bool { ts.mu.Lock(); defer ts.mu.Unlock(); return len(ts.byName["a"].waiters) == 1 })

	// One past it: refused at once. Another namespace is not held back.
	if _, err := ts.acquire(ctx, "a"); !errors.Is(err, errTenantFull) {
		t.Fatalf("a 4th call of a: %v, want errTenantFull", err)
	}
	rb, err := ts.acquire(ctx, "b")
	if err != nil {
		t.Fatalf("namespace b while a is full: %v", err)
	}
	if running != 3 {
		t.Errorf("running = %d, want 3", running)
	}

	// A release hands the place to the waiter; running stays.
	r1()
	r1() // a second call changes nothing
	if err := <-got; err != nil {
		t.Fatalf("the waiter: %v", err)
	}
	if running != 3 {
		t.Errorf("running after the hand-over = %d, want 3", running)
	}
	r2()
	r3()
	rb()
	if running != 0 {
		t.Errorf("running once all released = %d, want 0", running)
	}
	if n := len(ts.byName); n != 0 {
		t.Errorf("%d namespaces remembered once idle, want 0", n)
	}
}

func TestTenantsWaitEndsWithContext(t *testing.T) {
	ts := newTenants(1, 4, nil)
	r1, err := ts.acquire(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := ts.acquire(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting past the deadline: %v, want DeadlineExceeded", err)
	}
	r1()
	if n := len(ts.byName); n != 0 {
		t.Errorf("%d namespaces remembered once idle, want 0", n)
	}
	// No waiting allowed: refused at once.
	ts = newTenants(1, 0, nil)
	r1, _ = ts.acquire(context.Background(), "a")
	defer r1()
	if _, err := ts.acquire(context.Background(), "a"); !errors.Is(err, errTenantFull) {
		t.Fatalf("with no queue: %v, want errTenantFull", err)
	}
}
