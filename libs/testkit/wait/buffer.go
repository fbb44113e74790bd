package wait

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// Buffer is a bytes.Buffer safe for concurrent use: a logger or a command
// writes to it while the test reads it. The zero value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p to the buffer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what has been written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// WaitFor waits up to d until the buffer holds every one of subs, and
// fails the test, quoting the buffer, if it does not.
func (b *Buffer) WaitFor(t testing.TB, d time.Duration, subs ...string) {
	t.Helper()
	err := Until(d, func() error {
		out := b.String()
		for _, sub := range subs {
			if !strings.Contains(out, sub) {
				return fmt.Errorf("output never contained %q; got:\n%s", sub, out)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
