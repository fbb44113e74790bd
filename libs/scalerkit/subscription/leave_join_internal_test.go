package subscription

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// gateTransport records unsubscriptions and holds the Subscribe of "y"
// until gate is closed.
type gateTransport struct {
	mu      sync.Mutex
	unsubs  []string
	gate    chan struct{} // Subscribe of "y" waits on it
	entered chan struct{}
}

func (t *gateTransport) Subscribe(_ context.Context, names []string) error {
	for _, n := range names {
		if n == "y" {
			close(t.entered)
			<-t.gate
		}
	}
	return nil
}
func (t *gateTransport) Unsubscribe(names []string) {
	t.mu.Lock()
	t.unsubs = append(t.unsubs, names...)
	t.mu.Unlock()
}

func (t *gateTransport) Ready(string) bool { return true }

// TestLeaveDuringJoin: B joins [x y] while A, x's only watcher, leaves
// during B's Subscribe(y) (leave does not wait for m.ops): x stays
// subscribed while B watches it, and B's hold of x has a place.
func TestLeaveDuringJoin(t *testing.T) {
	tr := &gateTransport{gate: make(chan struct{}), entered: make(chan struct{})}
	m := New[string](tr, Options{Limit: 10})
	actx, acancel := context.WithCancel(context.Background())
	aret := make(chan error, 1)
	go func() { aret <- m.Watch(actx, []string{"x"}, func() {}) }()
	for m.Len() == 0 {
		time.Sleep(time.Millisecond)
	}
	bctx, bcancel := context.WithCancel(context.Background())
	bret := make(chan error, 1)
	go func() { bret <- m.Watch(bctx, []string{"x", "y"}, func() {}) }()
	<-tr.entered
	acancel()
	<-aret
	close(tr.gate)
	time.Sleep(200 * time.Millisecond) // B in place; background unsubscribe ran
	m.mu.Lock()
	h := m.names["x"][""]
	nilPlace := h != nil && h.place == nil
	m.mu.Unlock()
	tr.mu.Lock()
	unsubs := append([]string(nil), tr.unsubs...)
	tr.mu.Unlock()
	t.Logf("B watches x: %v; x's hold has a nil place: %v; unsubscribed: %v", h != nil && len(h.watchers) == 1, nilPlace, unsubs)
	var panicked any
	func() {
		defer func() { panicked = recover() }()
		bcancel()
		if err := <-bret; !errors.Is(err, context.Canceled) {
			t.Logf("B: %v", err)
		}
	}()
	if len(unsubs) > 0 || nilPlace || panicked != nil {
		t.Fatalf("x unsubscribed while B watches it (%v), nil place %v, panic on leave: %v", unsubs, nilPlace, panicked)
	}
	m.Close()
}
