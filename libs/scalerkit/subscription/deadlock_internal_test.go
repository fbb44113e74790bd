package subscription

import (
	"context"
	"sync"
	"testing"
	"time"
)

// nopTransport subscribes to anything, at once.
type nopTransport struct{}

func (nopTransport) Subscribe(context.Context, []string) error { return nil }
func (nopTransport) Unsubscribe([]string)                      {}
func (nopTransport) Ready(string) bool                         { return true }

// TestAwaitRoomBindUnderMu: a Handle stopped before its watch waits for
// room (Stop sets h.cancel, then cancels) ends the watch when awaitRoom
// binds it; that end locks m.mu, so awaitRoom must bind without it.
func TestAwaitRoomBindUnderMu(t *testing.T) {
	m := New[string](nopTransport{}, Options{Limit: 1})
	hctx, hcancel := context.WithCancel(context.Background())
	defer hcancel()
	go func() { _ = m.Watch(hctx, []string{"a"}, func() {}) }() // holds the only place
	for m.Len() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var endedOnce sync.WaitGroup
	endedOnce.Add(1)
	dctx, h := Detach(ctx, func(error) { endedOnce.Done() })
	h.mu.Lock()
	h.cancel = cancel // Stop's state between its h.mu.Unlock and cancel()
	h.mu.Unlock()
	ret := make(chan error, 1)
	go func() { ret <- m.Watch(dctx, []string{"b"}, func() {}) }()
	select {
	case err := <-ret:
		t.Logf("Watch returned %v", err)
		endedOnce.Wait()
		m.Close()
	case <-time.After(3 * time.Second):
		t.Fatal("Watch stuck: awaitRoom's bind ended the watch under m.mu (self-deadlock)")
	}
}

// TestWaitersLeaveWhenTheyEnd: detached watches that end while they wait
// for room (streams opened and closed at a full Mux) leave nothing in
// m.waiters, whether their context ends or their Handle stops them.
func TestWaitersLeaveWhenTheyEnd(t *testing.T) {
	m := New[string](nopTransport{}, Options{Limit: 1})
	defer m.Close()
	hctx, hcancel := context.WithCancel(context.Background())
	defer hcancel()
	go func() { _ = m.Watch(hctx, []string{"a"}, func() {}) }() // holds the only place
	for m.Len() == 0 {
		time.Sleep(time.Millisecond)
	}
	var ended sync.WaitGroup
	for i := range 200 {
		ctx, cancel := context.WithCancel(context.Background())
		ended.Add(1)
		dctx, h := Detach(ctx, func(error) { ended.Done() })
		if err := m.Watch(dctx, []string{"b"}, func() {}); err != ErrDetached {
			t.Fatalf("Watch = %v, want ErrDetached (waiting for room)", err)
		}
		if i%2 == 0 {
			cancel()
		} else {
			h.Stop(cancel)
		}
	}
	ended.Wait()
	m.mu.Lock()
	n := len(m.waiters)
	m.mu.Unlock()
	if n != 0 {
		t.Errorf("%d watches still waiting for room after all 200 ended, want 0", n)
	}
}
