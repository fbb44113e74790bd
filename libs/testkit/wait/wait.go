// Package wait polls a condition until it holds or a time runs out: the one
// wait helper of the tests, tools and demo.
package wait

import (
	"errors"
	"testing"
	"time"
)

// Interval is how often a condition is polled: short beside the waits of
// the tests (seconds), long enough not to spin.
const Interval = 5 * time.Millisecond

// Until calls f every Interval until it returns nil or d has passed, and
// returns f's last error.
func Until(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(Interval)
	}
}

// For fails the test at once unless cond holds within d; what names what
// was awaited.
func For(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	err := Until(d, func() error {
		if !cond() {
			return errors.New("timed out after " + d.String() + " waiting for " + what)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Closed reports whether ch is closed or holds a value (taking it): a
// condition for For over a channel.
func Closed[T any](ch <-chan T) func() bool {
	return func() bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
}
