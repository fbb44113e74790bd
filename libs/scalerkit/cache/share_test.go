package cache_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kedascalers/kedascalers/libs/scalerkit/cache"
	"github.com/kedascalers/kedascalers/libs/scalerkit/share"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
)

type nsKey struct{}

func inNamespace(ns string) context.Context {
	return context.WithValue(context.Background(), nsKey{}, ns)
}

// TestCallsInFlightShared: when every key held has a call in flight, a
// namespace under its fair share of MaxEntries takes the place of the
// newest call of the namespace holding the most (that call is cancelled
// and its callers get ErrFull); a namespace at its share gets ErrFull.
func TestCallsInFlightShared(t *testing.T) {
	tests := []struct {
		name     string
		held     []string // the namespace of each call in flight, oldest first
		ns       string   // asks a new key
		wantErr  bool     // ns is refused
		wantLost int      // index in held of the call that loses its place, or -1
	}{
		{"first place from the largest holder", []string{"a", "a", "a", "a"}, "b", false, 3},
		{"under its share, from the largest", []string{"a", "b", "a", "a"}, "b", false, 3},
		{"at its share", []string{"a", "a", "b", "b"}, "b", true, -1},
		{"over its share", []string{"a", "a", "a", "b"}, "a", true, -1},
		{"a free place", []string{"a", "a", "a"}, "b", false, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var taken int
			g := cache.New[string](cache.Options{TTL: time.Hour, MaxEntries: 4,
				Namespace: func(ctx context.Context) string { ns, _ := ctx.Value(nsKey{}).(string); return ns },
				Shares:    share.Options{Taken: func() { taken++ }}})
			release := make(chan struct{})
			fetch := func(ctx context.Context) (string, error) {
				select {
				case <-release:
					return "v", nil
				case <-ctx.Done():
					return "", ctx.Err()
				}
			}
			var results []<-chan result
			for i, ns := range tc.held {
				results = append(results, goGet(g, inNamespace(ns), fmt.Sprint(i), fetch))
				wait.For(t, waitTimeout, "the call in flight", func() bool { return g.Held() == i+1 })
			}
			called := false
			_, err := g.Get(inNamespace(tc.ns), "new", func(context.Context) (string, error) { called = true; return "new", nil })
			switch {
			case tc.wantErr && !errors.Is(err, cache.ErrFull):
				t.Fatalf("namespace %s: Get = %v, want ErrFull", tc.ns, err)
			case tc.wantErr && called:
				t.Error("a refused Get called fetch")
			case !tc.wantErr && (err != nil || !called):
				t.Fatalf("namespace %s: Get = %v (fetch called: %v), want its value", tc.ns, err, called)
			}
			if tc.wantLost >= 0 {
				if r := recv(t, "the call that lost its place", results[tc.wantLost]); !errors.Is(r.err, cache.ErrFull) {
					t.Errorf("the newest call of the largest holder = %q, %v, want ErrFull", r.v, r.err)
				}
				if taken != 1 {
					t.Errorf("places taken = %d, want 1", taken)
				}
			}
			close(release)
			for i, ch := range results {
				if i == tc.wantLost {
					continue
				}
				if r := recv(t, "a call", ch); r.err != nil {
					t.Errorf("call %d of %s = %v", i, tc.held[i], r.err)
				}
			}
			if n := g.Held(); n > 4 {
				t.Errorf("Held() = %d once every call ended, want at most 4", n)
			}
		})
	}
}
