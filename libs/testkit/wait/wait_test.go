package wait_test

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kedascalers/kedascalers/libs/testkit/wait"
)

// TestUntil: f is called until it succeeds; after d its last error is
// returned.
func TestUntil(t *testing.T) {
	tests := []struct {
		name      string
		failFirst int32
		d         time.Duration
		wantErr   bool
	}{
		{"at once", 0, time.Second, false},
		{"after three tries", 3, time.Second, false},
		{"never", 1 << 30, 20 * time.Millisecond, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			err := wait.Until(tt.d, func() error {
				if calls.Add(1) <= tt.failFirst {
					return errors.New("not yet")
				}
				return nil
			})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v after %d calls: want an error %v", err, calls.Load(), tt.wantErr)
			}
			if !tt.wantErr && calls.Load() != tt.failFirst+1 {
				t.Errorf("%d calls: want %d (none after success)", calls.Load(), tt.failFirst+1)
			}
		})
	}
}

// TestClosed: a closed channel, or one holding a value, is a condition
// that holds; an empty one does not.
func TestClosed(t *testing.T) {
	empty, full, closed := make(chan int), make(chan int, 1), make(chan struct{})
	full <- 1
	close(closed)
	if wait.Closed(empty)() || !wait.Closed(full)() || !wait.Closed(closed)() {
		t.Error("Closed: want false for an empty channel, true for a full or closed one")
	}
	ch := make(chan struct{})
	time.AfterFunc(10*time.Millisecond, func() { close(ch) })
	wait.For(t, time.Second, "the channel closed", wait.Closed(ch))
}

// TestBuffer: a writer in another goroutine and a test waiting for its
// lines share the buffer safely.
func TestBuffer(t *testing.T) {
	var b wait.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			fmt.Fprintf(&b, "line %d\n", i)
		}
	}()
	b.WaitFor(t, 5*time.Second, "line 0\n", "line 49\n")
	<-done
	if n := strings.Count(b.String(), "\n"); n != 50 {
		t.Errorf("%d lines, want 50", n)
	}
}
