// Package ratelog keeps a repeated log line from flooding the log: an
// event with the same key is logged at most once per interval, and the
// next line that is logged says how many were suppressed in between.
//
// Keys often come from what triggers ask for, so the number of keys
// remembered is bounded too: past the bound the least recently logged key
// is forgotten (its next event is logged at once).
package ratelog

import (
	"container/list"
	"context"
	"log/slog"
	"sync"
	"time"
)

// Limiter rate-limits log lines by key. The zero value is not usable:
// create one with New. It is safe for concurrent use.
type Limiter struct {
	every   time.Duration
	maxKeys int
	now     func() time.Time

	mu    sync.Mutex
	order *list.List // of *state, most recently logged at the front
	keys  map[string]*list.Element
}

type state struct {
	key        string
	last       time.Time
	suppressed int
}

// New returns a Limiter that logs each key at most once per every, and
// remembers at most maxKeys keys (at least 1).
func New(every time.Duration, maxKeys int) *Limiter {
	if maxKeys < 1 {
		maxKeys = 1
	}
	return &Limiter{every: every, maxKeys: maxKeys, now: time.Now, order: list.New(), keys: map[string]*list.Element{}}
}

// Allow reports whether an event with key may be logged now, and how many
// events of that key were suppressed since the last one logged.
func (l *Limiter) Allow(key string) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if e, found := l.keys[key]; found {
		st := e.Value.(*state)
		if now.Sub(st.last) < l.every {
			st.suppressed++
			return false, 0
		}
		suppressed = st.suppressed
		st.last, st.suppressed = now, 0
		l.order.MoveToFront(e)
		return true, suppressed
	}
	l.keys[key] = l.order.PushFront(&state{key: key, last: now})
	for l.order.Len() > l.maxKeys {
		oldest := l.order.Back()
		l.order.Remove(oldest)
		delete(l.keys, oldest.Value.(*state).key)
	}
	return true, 0
}

// Log logs msg at level with attrs on log, unless an event with the same
// key was logged less than the interval ago. A logged line carries
// "suppressed" when earlier events of its key were dropped.
func (l *Limiter) Log(ctx context.Context, log *slog.Logger, level slog.Level, key, msg string, attrs ...slog.Attr) {
	if !log.Enabled(ctx, level) {
		return
	}
	ok, suppressed := l.Allow(key)
	if !ok {
		return
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("suppressed", suppressed))
	}
	log.LogAttrs(ctx, level, msg, attrs...)
}
