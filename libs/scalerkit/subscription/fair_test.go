package subscription_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/kedascalers/kedascalers/libs/scalerkit/share"
	"github.com/kedascalers/kedascalers/libs/scalerkit/subscription"
)

// nsKey carries a test watcher's namespace.
type nsKey struct{}

func namespaceOf(ctx context.Context) string { ns, _ := ctx.Value(nsKey{}).(string); return ns }

// watchAs is watch for a watcher of namespace ns.
func watchAs(m *subscription.Mux[string], ns string, names ...string) (stop func() error, done <-chan error) {
	return watchCtx(context.WithValue(context.Background(), nsKey{}, ns), m, names, func() {})
}

// TestFairShares: a namespace may fill a free Mux; a second namespace
// takes its first place from it, and more up to its share, each time from
// the namespace holding the most, whose watcher of that name ends with
// ErrPlaceLost; past its share a namespace waits; the watcher that lost
// its place watches again once there is room.
func TestFairShares(t *testing.T) { bothWays(t, testFairShares) }

func testFairShares(t *testing.T) {
	tr := &transport{ready: true}
	var refused, taken, largest atomic.Int32
	m := subscription.New[string](tr, subscription.Options{Limit: 4, Namespace: namespaceOf,
		Refused: func() { refused.Add(1) },
		Shared:  share.Options{Taken: func() { taken.Add(1) }, Largest: func(n int) { largest.Store(int32(n)) }}})
	defer m.Close()

	evil := map[string]func() error{}
	evilDone := map[string]<-chan error{}
	for _, n := range []string{"e1", "e2", "e3", "e4"} {
		evil[n], evilDone[n] = watchAs(m, "evil", n)
		eventually(t, n+" subscribed", func() bool { return slices.Contains(subscribed(tr), n) })
	}
	if m.Held("evil") != 4 || largest.Load() != 4 {
		t.Fatalf("evil holds %d (largest %d), want the whole Mux of 4", m.Held("evil"), largest.Load())
	}

	// good's first place: taken from evil, whose newest watcher ends.
	stopG1, _ := watchAs(m, "good", "g1")
	eventually(t, "g1 subscribed", func() bool { return slices.Contains(subscribed(tr), "g1") })
	if err := <-evilDone["e4"]; !errors.Is(err, subscription.ErrPlaceLost) {
		t.Fatalf("evil's newest watch ended with %v, want ErrPlaceLost", err)
	}
	if got := subscribed(tr); slices.Contains(got, "e4") || len(got) != 4 {
		t.Errorf("subscribed %v: want e4 given up for g1, 4 in all", got)
	}
	// Up to its share (2 of 4 for two namespaces), from the largest.
	stopG2, _ := watchAs(m, "good", "g2")
	if err := <-evilDone["e3"]; !errors.Is(err, subscription.ErrPlaceLost) {
		t.Fatalf("evil's watch of e3 ended with %v, want ErrPlaceLost", err)
	}
	eventually(t, "g2 subscribed", func() bool { return slices.Contains(subscribed(tr), "g2") })
	if m.Held("good") != 2 || m.Held("evil") != 2 || taken.Load() != 2 || largest.Load() != 2 {
		t.Errorf("good %d, evil %d, taken %d, largest %d: want 2, 2, 2, 2", m.Held("good"), m.Held("evil"), taken.Load(), largest.Load())
	}

	// At their shares both wait: evil's feed watches e4 again, good a third name.
	stopE4, e4Again := watchAs(m, "evil", "e4")
	stopG3, _ := watchAs(m, "good", "g3")
	eventually(t, "both counted as waiting", func() bool { return refused.Load() == 2 })
	if got := subscribed(tr); len(got) != 4 || slices.Contains(got, "e4") || slices.Contains(got, "g3") {
		t.Errorf("subscribed %v past the shares", got)
	}
	select {
	case err := <-evilDone["e1"]:
		t.Fatalf("evil's e1 ended (%v) while at its share", err)
	case err := <-e4Again:
		t.Fatalf("evil's watch of e4 ended (%v) while waiting", err)
	default:
	}

	// good gives up its waiting watch and a place: evil's lost watcher
	// resumes in the place freed.
	must(t, stopG3())
	must(t, stopG1())
	eventually(t, "e4 watched again", func() bool {
		got := subscribed(tr)
		return slices.Contains(got, "e4") && len(got) == 4
	})
	if m.Held("evil") != 3 || m.Held("good") != 1 {
		t.Errorf("evil %d, good %d after good left one place, want 3 and 1", m.Held("evil"), m.Held("good"))
	}
	for _, stop := range []func() error{stopE4, stopG2, evil["e1"], evil["e2"]} {
		must(t, stop())
	}
	if m.Len() != 0 || m.Held("evil")+m.Held("good") != 0 {
		t.Errorf("after everyone left: Len %d, held %d", m.Len(), m.Held("evil")+m.Held("good"))
	}
}

// TestSharedNameAcrossNamespaces: two namespaces watching one name hold a
// place each and share its one subscription; when one loses its place
// the name stays subscribed for the other.
func TestSharedNameAcrossNamespaces(t *testing.T) { bothWays(t, testSharedNameAcrossNamespaces) }

func testSharedNameAcrossNamespaces(t *testing.T) {
	tr := &transport{ready: true}
	m := subscription.New[string](tr, subscription.Options{Limit: 3, Namespace: namespaceOf})
	defer m.Close()
	var a, b atomic.Int32
	ctxA, cancelA := context.WithCancel(context.WithValue(context.Background(), nsKey{}, "a"))
	defer cancelA()
	doneA := make(chan error, 1)
	go func() { doneA <- m.Watch(ctxA, []string{"x", "y"}, func() { a.Add(1) }) }()
	eventually(t, "a watches x and y", func() bool { return m.Held("a") == 2 })
	ctxB, cancelB := context.WithCancel(context.WithValue(context.Background(), nsKey{}, "b"))
	doneB := make(chan error, 1)
	go func() { doneB <- m.Watch(ctxB, []string{"x"}, func() { b.Add(1) }) }()
	eventually(t, "b watches x", func() bool { return m.Held("b") == 1 })
	m.Notify("x")
	if a.Load() != 2 || b.Load() != 2 { // once in place, once notified
		t.Errorf("signals a=%d b=%d, want 2 each", a.Load(), b.Load())
	}
	if _, calls := tr.snapshot(); !slices.Equal(calls, []string{"+x", "+y"}) {
		t.Errorf("transport calls %v, want x and y subscribed once", calls)
	}
	// c's first place is taken from a (the largest); a's watch of x and y ends.
	stopC, _ := watchAs(m, "c", "z")
	if err := <-doneA; !errors.Is(err, subscription.ErrPlaceLost) {
		t.Fatalf("a's watch ended with %v, want ErrPlaceLost", err)
	}
	eventually(t, "z subscribed, y given up, x kept for b", func() bool {
		return slices.Equal(subscribed(tr), []string{"x", "z"})
	})
	cancelB()
	if err := <-doneB; !errors.Is(err, context.Canceled) {
		t.Errorf("b's watch = %v", err)
	}
	must(t, stopC())
	eventually(t, "nothing subscribed after everyone left", func() bool { return len(subscribed(tr)) == 0 })
}

func subscribed(tr *transport) []string {
	s, _ := tr.snapshot()
	return s
}
