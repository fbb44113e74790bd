package subscription_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kedascalers/kedascalers/libs/scalerkit/ratelog"
	"github.com/kedascalers/kedascalers/libs/scalerkit/subscription"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// transport records what the Mux asks of it.
type transport struct {
	mu      sync.Mutex
	subbed  []string // subscribed now
	calls   []string // "+a", "-a", in order
	ready   bool
	failSub error
}

func (t *transport) Subscribe(_ context.Context, names []string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failSub != nil {
		return t.failSub
	}
	for _, n := range names {
		t.subbed = append(t.subbed, n)
		t.calls = append(t.calls, "+"+n)
	}
	return nil
}

func (t *transport) Unsubscribe(names []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, n := range names {
		t.subbed = slices.DeleteFunc(t.subbed, func(s string) bool { return s == n })
		t.calls = append(t.calls, "-"+n)
	}
}

func (t *transport) Ready(string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ready
}

func (t *transport) snapshot() (subbed, calls []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Sorted(slices.Values(t.subbed)), slices.Clone(t.calls)
}

// detached says how the test's watches run: on a goroutine each, Watch
// waiting for the end, or detached (subscription.Detach), Watch
// returning at once and the end coming to a callback. bothWays runs a
// test each way.
var detached bool

// stopByHandle counts detached watches: every other one is stopped by its
// Handle instead of its context.
var stopByHandle atomic.Int32

func bothWays(t *testing.T, test func(t *testing.T)) {
	for _, d := range []bool{false, true} {
		t.Run(map[bool]string{false: "waiting", true: "detached"}[d], func(t *testing.T) {
			detached = d
			t.Cleanup(func() { detached = false })
			test(t)
		})
	}
}

// watch runs m.Watch in the background; stop ends it and returns its error.
func watch(m *subscription.Mux[string], names []string, changed func()) (stop func() error, done <-chan error) {
	return watchCtx(context.Background(), m, names, changed)
}

// watchCtx is watch under ctx, each way (see detached).
func watchCtx(ctx context.Context, m *subscription.Mux[string], names []string, changed func()) (stop func() error, done <-chan error) {
	ctx, cancel := context.WithCancel(ctx)
	ch := make(chan error, 1)
	if detached {
		var ends atomic.Int32
		ctx, h := subscription.Detach(ctx, func(err error) {
			if ends.Add(1) > 1 {
				err = errors.New("ended twice")
			}
			ch <- err
		})
		if err := m.Watch(ctx, names, changed); !errors.Is(err, subscription.ErrDetached) {
			ch <- err
		}
		// Half the watches end by their Handle, on this goroutine.
		if stopByHandle.Add(1)%2 == 0 {
			return func() error {
				h.Stop(cancel)
				select {
				case err := <-ch:
					return err
				default:
					return errors.New("Handle.Stop returned before the watch ended")
				}
			}, ch
		}
	} else {
		go func() { ch <- m.Watch(ctx, names, changed) }()
	}
	return func() error { cancel(); return <-ch }, ch
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	if err := wait.Until(5*time.Second, func() error {
		if !ok() {
			return errors.New(what)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestCounted: a name is subscribed once, for its first watcher, and
// unsubscribed after its last; Notify reaches each watcher of the name.
func TestCounted(t *testing.T) { bothWays(t, testCounted) }

func testCounted(t *testing.T) {
	tr := &transport{ready: true}
	var held atomic.Int32
	m := subscription.New[string](tr, subscription.Options{Limit: 10, Held: func(n int) { held.Store(int32(n)) }})
	defer m.Close()
	var a, b atomic.Int32
	stopA, _ := watch(m, []string{"x", "y"}, func() { a.Add(1) })
	stopB, _ := watch(m, []string{"x"}, func() { b.Add(1) })
	eventually(t, "each watcher signalled once subscribed", func() bool { return a.Load() == 1 && b.Load() == 1 })
	if subbed, _ := tr.snapshot(); !slices.Equal(subbed, []string{"x", "y"}) || held.Load() != 2 || m.Len() != 2 {
		t.Errorf("subscribed %v, held %d, Len %d; want x and y once", subbed, held.Load(), m.Len())
	}
	m.Notify("x")
	m.Notify("y")
	m.Notify("z") // nobody's
	if a.Load() != 3 || b.Load() != 2 {
		t.Errorf("signals a=%d b=%d after NOTIFY x and y, want 3 and 2", a.Load(), b.Load())
	}
	if err := stopA(); !errors.Is(err, context.Canceled) {
		t.Errorf("Watch = %v, want context.Canceled", err)
	}
	// Unsubscribing runs in the background.
	eventually(t, "after a left: subscribed x only (b watches it)", func() bool {
		subbed, _ := tr.snapshot()
		return slices.Equal(subbed, []string{"x"})
	})
	must(t, stopB())
	eventually(t, "after both left: nothing subscribed, 2 subscriptions and 2 ends", func() bool {
		subbed, calls := tr.snapshot()
		return len(subbed) == 0 && len(calls) == 4 && held.Load() == 0
	})
}

// TestWatchedAgainBeforeUnsubscribed: a name watched again before its
// unsubscription ran keeps its subscription: not subscribed twice, never
// unsubscribed while watched.
func TestWatchedAgainBeforeUnsubscribed(t *testing.T) {
	bothWays(t, testWatchedAgainBeforeUnsubscribed)
}

func testWatchedAgainBeforeUnsubscribed(t *testing.T) {
	tr := &transport{ready: true}
	m := subscription.New[string](tr, subscription.Options{Limit: 10})
	defer m.Close()
	for range 50 {
		stop, _ := watch(m, []string{"x"}, func() {})
		must(t, stop())
	}
	stop, _ := watch(m, []string{"x"}, func() {})
	eventually(t, "x subscribed once, last", func() bool {
		subbed, calls := tr.snapshot()
		return slices.Equal(subbed, []string{"x"}) && calls[len(calls)-1] == "+x"
	})
	time.Sleep(20 * time.Millisecond) // an unsubscription still queued would run now
	if subbed, calls := tr.snapshot(); !slices.Equal(subbed, []string{"x"}) || calls[len(calls)-1] != "+x" {
		t.Errorf("x watched: subscribed %v, last calls %v", subbed, calls[max(0, len(calls)-3):])
	}
	must(t, stop())
	eventually(t, "x unsubscribed once nobody watches it", func() bool {
		subbed, _ := tr.snapshot()
		return len(subbed) == 0
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch = %v, want context.Canceled", err)
	}
}

// TestLimit: a watcher whose names would pass the limit waits, counted
// once and warned about once, and subscribes when a name is freed.
func TestLimit(t *testing.T) { bothWays(t, testLimit) }

func testLimit(t *testing.T) {
	tr := &transport{ready: true}
	var logs wait.Buffer
	var refused atomic.Int32
	m := subscription.New[string](tr, subscription.Options{Limit: 1, Variable: "MAX_NAMES", Full: "at the limit",
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), Limiter: ratelog.New(time.Minute, 1), Refused: func() { refused.Add(1) }})
	defer m.Close()
	stopA, _ := watch(m, []string{"a"}, func() {})
	eventually(t, "a subscribed", func() bool { return m.Len() == 1 })
	var b atomic.Int32
	stopB, _ := watch(m, []string{"b"}, func() { b.Add(1) })
	stopC, _ := watch(m, []string{"c"}, func() {})
	logs.WaitFor(t, 5*time.Second, `msg="at the limit" limit=1 variable=MAX_NAMES channel=`)
	time.Sleep(50 * time.Millisecond)
	if n := strings.Count(logs.String(), "at the limit"); n != 1 || refused.Load() != 2 {
		t.Errorf("%d warnings and %d refusals for two watchers waiting, want 1 and 2:\n%s", n, refused.Load(), logs.String())
	}
	must(t, stopA())
	eventually(t, "a waiting watcher subscribed once a was freed", func() bool {
		subbed, _ := tr.snapshot()
		return len(subbed) == 1 && subbed[0] != "a"
	})
	must(t, stopB())
	must(t, stopC())
}

// TestNotReady: a watcher of a name whose subscription is not in place
// yet is signalled when the transport says it is (Notify), not at once.
func TestNotReady(t *testing.T) { bothWays(t, testNotReady) }

func testNotReady(t *testing.T) {
	tr := &transport{}
	m := subscription.New[string](tr, subscription.Options{Limit: 1})
	defer m.Close()
	var n atomic.Int32
	stop, _ := watch(m, []string{"a"}, func() { n.Add(1) })
	eventually(t, "a subscribed", func() bool { return m.Len() == 1 })
	time.Sleep(20 * time.Millisecond)
	if n.Load() != 0 {
		t.Fatal("signalled before the subscription was in place")
	}
	m.Notify("a")
	if n.Load() != 1 {
		t.Errorf("%d signals once in place, want 1", n.Load())
	}
	must(t, stop())
}

// TestFailAndClose: Fail ends every watch with its error and forgets the
// names (no Unsubscribe: the transport lost them); Close ends the rest
// with ErrClosed, and a later Watch fails at once. A Subscribe error is
// the watch's.
func TestFailAndClose(t *testing.T) { bothWays(t, testFailAndClose) }

func testFailAndClose(t *testing.T) {
	tr := &transport{ready: true}
	m := subscription.New[string](tr, subscription.Options{Limit: 5})
	_, a := watch(m, []string{"a"}, func() {})
	_, b := watch(m, []string{"a", "b"}, func() {})
	eventually(t, "a and b subscribed", func() bool { return m.Len() == 2 })
	lost := errors.New("connection reset")
	m.Fail(lost)
	for _, done := range []<-chan error{a, b} {
		if err := <-done; !errors.Is(err, lost) {
			t.Errorf("Watch after Fail = %v, want %v", err, lost)
		}
	}
	if _, calls := tr.snapshot(); m.Len() != 0 || slices.ContainsFunc(calls, func(c string) bool { return c[0] == '-' }) {
		t.Errorf("after Fail: Len %d, calls %v; want nothing held and no Unsubscribe", m.Len(), calls)
	}

	tr.failSub = errors.New("refused")
	if err := m.Watch(context.Background(), []string{"c"}, func() {}); !errors.Is(err, tr.failSub) {
		t.Errorf("Watch with Subscribe failing = %v", err)
	}
	tr.failSub = nil
	_, c := watch(m, []string{"c"}, func() {})
	eventually(t, "c subscribed", func() bool { return m.Len() == 1 })
	m.Close()
	if err := <-c; !errors.Is(err, subscription.ErrClosed) {
		t.Errorf("Watch after Close = %v, want ErrClosed", err)
	}
	if err := m.Watch(context.Background(), []string{"d"}, func() {}); !errors.Is(err, subscription.ErrClosed) {
		t.Errorf("Watch on a closed Mux = %v, want ErrClosed", err)
	}
}

// TestDetachedHoldsNoGoroutine: detached watches, in place or waiting for
// room, hold no goroutine; each still hears its name, the waiting ones
// take the places freed, and each ends once, with its context's error.
func TestDetachedHoldsNoGoroutine(t *testing.T) {
	const places, waiting = 300, 100
	detached = true
	t.Cleanup(func() { detached = false })
	tr := &transport{ready: true}
	m := subscription.New[string](tr, subscription.Options{Limit: places})
	defer m.Close()
	before := runtime.NumGoroutine()
	var heard atomic.Int32
	stops := make([]func() error, places+waiting)
	for i := range stops {
		stops[i], _ = watch(m, []string{fmt.Sprint("n", i)}, func() { heard.Add(1) })
	}
	if n := runtime.NumGoroutine() - before; n > 10 {
		t.Errorf("%d goroutines for %d detached watches, want none", n, len(stops))
	}
	if m.Len() != places {
		t.Fatalf("%d names subscribed, want the limit %d", m.Len(), places)
	}
	heard.Store(0)
	m.Notify("n0")
	if heard.Load() != 1 {
		t.Errorf("Notify of a detached watch's name heard %d times, want 1", heard.Load())
	}
	for i := range waiting { // the first ones leave: the waiting ones take their places
		must(t, stops[i]())
	}
	eventually(t, "the waiting watches subscribed", func() bool {
		subbed, _ := tr.snapshot()
		return len(subbed) == places && slices.Contains(subbed, fmt.Sprint("n", places+waiting-1))
	})
	for _, stop := range stops[waiting:] {
		must(t, stop())
	}
	eventually(t, "every name unsubscribed", func() bool { return m.Len() == 0 })
}
