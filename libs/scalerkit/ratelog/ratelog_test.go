package ratelog

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestAllow(t *testing.T) {
	l := New(time.Second, 10)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }

	steps := []struct {
		advance    time.Duration
		key        string
		ok         bool
		suppressed int
	}{
		{0, "a", true, 0},
		{100 * time.Millisecond, "a", false, 0},
		{100 * time.Millisecond, "a", false, 0},
		{0, "b", true, 0}, // another key is not held back
		{time.Second, "a", true, 2},
		{0, "a", false, 0},
		{time.Second, "a", true, 1},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		ok, suppressed := l.Allow(s.key)
		if ok != s.ok || suppressed != s.suppressed {
			t.Errorf("step %d (%q): Allow = %v, %d; want %v, %d", i, s.key, ok, suppressed, s.ok, s.suppressed)
		}
	}
}

func TestKeysAreBounded(t *testing.T) {
	const max = 3
	l := New(time.Hour, max)
	for i := range 1000 {
		l.Allow(strings.Repeat("k", i+1))
	}
	if n := len(l.keys); n != max {
		t.Fatalf("remembered %d keys, want the bound %d", n, max)
	}
	if n := l.order.Len(); n != max {
		t.Fatalf("order holds %d keys, want %d", n, max)
	}
	// The most recent keys are kept (and held back); the oldest is forgotten.
	if ok, _ := l.Allow(strings.Repeat("k", 1000)); ok {
		t.Error("a recent key was not held back")
	}
	if ok, _ := l.Allow("k"); !ok {
		t.Error("a forgotten key was held back")
	}
}

func TestLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	l := New(time.Hour, 10)
	ctx := context.Background()
	for range 5 {
		l.Log(ctx, log, slog.LevelWarn, "channels", "too many channels", slog.Int("limit", 64))
	}
	if got := strings.Count(buf.String(), "too many channels"); got != 1 {
		t.Fatalf("logged %d lines, want 1:\n%s", got, buf.String())
	}
	l.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	l.Log(ctx, log, slog.LevelWarn, "channels", "too many channels")
	if !strings.Contains(buf.String(), "suppressed=4") {
		t.Fatalf("the next line does not count the 4 suppressed:\n%s", buf.String())
	}
	// A level the logger does not log is not counted either.
	buf.Reset()
	l.Log(ctx, log, slog.LevelDebug, "debug", "hidden")
	if buf.Len() != 0 {
		t.Fatalf("a disabled level was logged: %s", buf.String())
	}
}
