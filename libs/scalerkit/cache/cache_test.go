package cache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kedascalers/kedascalers/libs/scalerkit/cache"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
)

// TestMain checks that no shared call outlives the tests: Get runs each
// call in a goroutine of its own.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every wait in these tests; it is a safety net, not a
// performance expectation.
const waitTimeout = 10 * time.Second

// recorder collects the outcomes a Group observes.
type recorder struct {
	mu  sync.Mutex
	got []cache.Outcome
}

func (r *recorder) observe(o cache.Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, o)
}

func (r *recorder) counts() map[cache.Outcome]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := make(map[cache.Outcome]int)
	for _, o := range r.got {
		c[o]++
	}
	return c
}

func (r *recorder) list() []cache.Outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]cache.Outcome(nil), r.got...)
}

// joinCtx is a context that reports when Get has started waiting on it:
// Get calls Done only in its final select, after it has joined (or started)
// the call in flight. This lets tests know that a caller has joined a flight
// without sleeping.
type joinCtx struct {
	context.Context
	once   sync.Once
	joined chan struct{}
}

func newJoinCtx(parent context.Context) *joinCtx {
	return &joinCtx{Context: parent, joined: make(chan struct{})}
}

func (c *joinCtx) Done() <-chan struct{} {
	c.once.Do(func() { close(c.joined) })
	return c.Context.Done()
}

// blockingFetch is a fetch that signals when it starts and returns value once
// released.
type blockingFetch struct {
	calls   atomic.Int32
	started chan struct{}
	release chan struct{}
	value   string
	ctxs    chan context.Context
}

func newBlockingFetch(value string) *blockingFetch {
	return &blockingFetch{started: make(chan struct{}, 100), release: make(chan struct{}), value: value, ctxs: make(chan context.Context, 100)}
}

func (b *blockingFetch) fetch(ctx context.Context) (string, error) {
	b.calls.Add(1)
	b.ctxs <- ctx
	b.started <- struct{}{}
	<-b.release
	return b.value, nil
}

type result struct {
	v   string
	err error
}

func goGet(g *cache.Group[string], ctx context.Context, key string, fetch func(context.Context) (string, error)) <-chan result {
	ch := make(chan result, 1)
	go func() {
		v, err := g.Get(ctx, key, fetch)
		ch <- result{v, err}
	}()
	return ch
}

func recv(t *testing.T, what string, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %s", what)
		return result{}
	}
}

func TestOutcomeString(t *testing.T) {
	tests := []struct {
		o    cache.Outcome
		want string
	}{
		{cache.Hit, "hit"},
		{cache.Shared, "shared"},
		{cache.Miss, "miss"},
	}
	for _, tt := range tests {
		if got := tt.o.String(); got != tt.want {
			t.Errorf("Outcome(%d).String() = %q, want %q", tt.o, got, tt.want)
		}
	}
}

func TestGetSequence(t *testing.T) {
	errBackend := errors.New("backend down")
	type step struct {
		key     string
		forget  bool // call Forget(key) instead of Get
		err     error
		wantV   string
		wantErr error
		want    cache.Outcome
		calls   int32 // fetch calls after the step
	}
	tests := []struct {
		name  string
		ttl   time.Duration
		steps []step
	}{
		{"hit within TTL", time.Hour, []step{
			{key: "a", wantV: "a1", want: cache.Miss, calls: 1},
			{key: "a", wantV: "a1", want: cache.Hit, calls: 1},
			{key: "a", wantV: "a1", want: cache.Hit, calls: 1},
		}},
		{"keys are separate", time.Hour, []step{
			{key: "a", wantV: "a1", want: cache.Miss, calls: 1},
			{key: "b", wantV: "b2", want: cache.Miss, calls: 2},
			{key: "a", wantV: "a1", want: cache.Hit, calls: 2},
			{key: "b", wantV: "b2", want: cache.Hit, calls: 2},
		}},
		{"errors are not kept", time.Hour, []step{
			{key: "a", err: errBackend, wantErr: errBackend, want: cache.Miss, calls: 1},
			{key: "a", err: errBackend, wantErr: errBackend, want: cache.Miss, calls: 2},
			{key: "a", wantV: "a3", want: cache.Miss, calls: 3},
			{key: "a", wantV: "a3", want: cache.Hit, calls: 3},
		}},
		{"an error does not replace a kept value", time.Hour, []step{
			{key: "a", wantV: "a1", want: cache.Miss, calls: 1},
			{key: "a", err: errBackend, wantV: "a1", want: cache.Hit, calls: 1},
		}},
		{"TTL 0 keeps nothing", 0, []step{
			{key: "a", wantV: "a1", want: cache.Miss, calls: 1},
			{key: "a", wantV: "a2", want: cache.Miss, calls: 2},
			{key: "a", wantV: "a3", want: cache.Miss, calls: 3},
		}},
		{"negative TTL keeps nothing", -time.Second, []step{
			{key: "a", wantV: "a1", want: cache.Miss, calls: 1},
			{key: "a", wantV: "a2", want: cache.Miss, calls: 2},
		}},
		{"Forget drops a kept value", time.Hour, []step{
			{key: "a", wantV: "a1", want: cache.Miss, calls: 1},
			{key: "b", wantV: "b2", want: cache.Miss, calls: 2},
			{key: "a", forget: true},
			{key: "a", wantV: "a3", want: cache.Miss, calls: 3},
			{key: "b", wantV: "b2", want: cache.Hit, calls: 3},
			{key: "nothing-kept", forget: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			g := cache.New[string](cache.Options{TTL: tt.ttl, Observe: rec.observe})
			var calls atomic.Int32
			for i, s := range tt.steps {
				if s.forget {
					g.Forget(s.key)
					continue
				}
				n0 := len(rec.list())
				v, err := g.Get(context.Background(), s.key, func(context.Context) (string, error) {
					n := calls.Add(1)
					return fmt.Sprintf("%s%d", s.key, n), s.err
				})
				if !errors.Is(err, s.wantErr) {
					t.Fatalf("step %d: Get(%q) error = %v, want %v", i, s.key, err, s.wantErr)
				}
				if v != s.wantV {
					t.Fatalf("step %d: Get(%q) = %q, want %q", i, s.key, v, s.wantV)
				}
				if got := calls.Load(); got != s.calls {
					t.Fatalf("step %d: fetch called %d times, want %d", i, got, s.calls)
				}
				outs := rec.list()
				if len(outs) != n0+1 {
					t.Fatalf("step %d: Observe called %d times for one Get", i, len(outs)-n0)
				}
				if outs[n0] != s.want {
					t.Fatalf("step %d: outcome %v, want %v", i, outs[n0], s.want)
				}
			}
		})
	}
}

func TestTTLZeroKeepsNothing(t *testing.T) {
	g := cache.New[string](cache.Options{})
	for range 3 {
		if _, err := g.Get(context.Background(), "a", func(context.Context) (string, error) { return "v", nil }); err != nil {
			t.Fatal(err)
		}
	}
	if n := g.Len(); n != 0 {
		t.Errorf("Len() = %d with TTL 0, want 0", n)
	}
}

func TestExpiresAfterTTLRealTime(t *testing.T) {
	const ttl = 30 * time.Millisecond
	g := cache.New[int](cache.Options{TTL: ttl})
	var calls atomic.Int32
	fetch := func(context.Context) (int, error) { return int(calls.Add(1)), nil }
	if v, _ := g.Get(context.Background(), "k", fetch); v != 1 {
		t.Fatalf("first Get = %d, want 1", v)
	}
	time.Sleep(2 * ttl)
	if v, _ := g.Get(context.Background(), "k", fetch); v != 2 {
		t.Fatalf("Get after the TTL = %d, want 2 (a new fetch)", v)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("fetch called %d times, want 2", n)
	}
}

func TestConcurrentGetsShareOneCall(t *testing.T) {
	for _, ttl := range []time.Duration{time.Hour, 0} {
		t.Run(fmt.Sprintf("TTL=%v", ttl), func(t *testing.T) {
			const n = 100
			rec := &recorder{}
			g := cache.New[string](cache.Options{TTL: ttl, Observe: rec.observe})
			bf := newBlockingFetch("v")
			ctxs := make([]*joinCtx, n)
			results := make([]<-chan result, n)
			for i := range n {
				ctxs[i] = newJoinCtx(context.Background())
				results[i] = goGet(g, ctxs[i], "k", bf.fetch)
			}
			for i := range n {
				wait.For(t, waitTimeout, fmt.Sprintf("caller %d to join", i), wait.Closed(ctxs[i].joined))
			}
			wait.For(t, waitTimeout, "fetch to start", wait.Closed(bf.started))
			close(bf.release)
			for i := range n {
				r := recv(t, fmt.Sprintf("caller %d", i), results[i])
				if r.err != nil || r.v != "v" {
					t.Errorf("caller %d: Get = %q, %v; want v, nil", i, r.v, r.err)
				}
			}
			if c := bf.calls.Load(); c != 1 {
				t.Errorf("fetch called %d times, want 1", c)
			}
			c := rec.counts()
			if c[cache.Miss] != 1 || c[cache.Shared]+c[cache.Hit] != n-1 {
				t.Errorf("outcomes %v, want 1 miss and %d shared or hit", c, n-1)
			}
			// Every caller joined before the flight ended, so none was a hit.
			if c[cache.Shared] != n-1 {
				t.Errorf("shared = %d, want %d (all callers joined the flight)", c[cache.Shared], n-1)
			}
		})
	}
}

func TestConcurrentGetsUnblockedLateJoinersHit(t *testing.T) {
	// The looser form: 100 goroutines without synchronisation; some may
	// arrive after the flight ended and must then hit the kept value.
	const n = 100
	rec := &recorder{}
	g := cache.New[int](cache.Options{TTL: time.Hour, Observe: rec.observe})
	var calls atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	var failures atomic.Int32
	for range n {
		wg.Go(func() {
			v, err := g.Get(context.Background(), "k", func(context.Context) (int, error) {
				calls.Add(1)
				<-release
				return 7, nil
			})
			if err != nil || v != 7 {
				failures.Add(1)
			}
		})
	}
	time.Sleep(10 * time.Millisecond) // let most goroutines join; not required for correctness
	close(release)
	wg.Wait()
	if f := failures.Load(); f != 0 {
		t.Errorf("%d Gets failed", f)
	}
	if c := calls.Load(); c != 1 {
		t.Errorf("fetch called %d times, want 1", c)
	}
	c := rec.counts()
	if c[cache.Miss] != 1 || c[cache.Shared]+c[cache.Hit] != n-1 {
		t.Errorf("outcomes %v, want 1 miss and %d shared or hit", c, n-1)
	}
}

func TestDifferentKeysDoNotShare(t *testing.T) {
	g := cache.New[string](cache.Options{TTL: time.Hour})
	a, b := newBlockingFetch("A"), newBlockingFetch("B")
	ra := goGet(g, context.Background(), "a", a.fetch)
	wait.For(t, waitTimeout, "fetch of a to start", wait.Closed(a.started))
	// a's call is still in flight; b must start its own.
	rb := goGet(g, context.Background(), "b", b.fetch)
	wait.For(t, waitTimeout, "fetch of b to start while a is in flight", wait.Closed(b.started))
	close(a.release)
	close(b.release)
	if r := recv(t, "a", ra); r.v != "A" || r.err != nil {
		t.Errorf("Get(a) = %q, %v", r.v, r.err)
	}
	if r := recv(t, "b", rb); r.v != "B" || r.err != nil {
		t.Errorf("Get(b) = %q, %v", r.v, r.err)
	}
	if g.Len() != 2 {
		t.Errorf("Len() = %d, want 2", g.Len())
	}
}

func TestErrorSharedButNotKept(t *testing.T) {
	rec := &recorder{}
	g := cache.New[string](cache.Options{TTL: time.Hour, Observe: rec.observe})
	errBackend := errors.New("backend down")
	started, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	fetch := func(context.Context) (string, error) {
		if calls.Add(1) == 1 {
			close(started)
			<-release
		}
		return "", errBackend
	}
	first := goGet(g, context.Background(), "k", fetch)
	wait.For(t, waitTimeout, "fetch to start", wait.Closed(started))
	jc := newJoinCtx(context.Background())
	second := goGet(g, jc, "k", fetch)
	wait.For(t, waitTimeout, "second caller to join", wait.Closed(jc.joined))
	close(release)
	for _, r := range []result{recv(t, "first", first), recv(t, "second", second)} {
		if !errors.Is(r.err, errBackend) {
			t.Errorf("Get error = %v, want %v", r.err, errBackend)
		}
	}
	if c := calls.Load(); c != 1 {
		t.Fatalf("fetch called %d times, want 1 (shared)", c)
	}
	if g.Len() != 0 {
		t.Errorf("Len() = %d after an error, want 0", g.Len())
	}
	if _, err := g.Get(context.Background(), "k", fetch); !errors.Is(err, errBackend) {
		t.Fatalf("third Get error = %v", err)
	}
	if c := calls.Load(); c != 2 {
		t.Errorf("fetch called %d times, want 2: an error must not be kept", c)
	}
	if c := rec.counts(); c[cache.Miss] != 2 || c[cache.Shared] != 1 {
		t.Errorf("outcomes %v, want 2 miss, 1 shared", c)
	}
}

type ctxKey struct{}

func TestSharedCallIsDetachedFromFirstCaller(t *testing.T) {
	g := cache.New[string](cache.Options{TTL: time.Hour})
	bf := newBlockingFetch("v")
	firstCtx, cancelFirst := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "trace-1"))
	defer cancelFirst()
	first := goGet(g, firstCtx, "k", bf.fetch)
	wait.For(t, waitTimeout, "fetch to start", wait.Closed(bf.started))
	fetchCtx := <-bf.ctxs

	other := newJoinCtx(context.Background())
	second := goGet(g, other, "k", bf.fetch)
	wait.For(t, waitTimeout, "second caller to join", wait.Closed(other.joined))

	cancelFirst()
	if r := recv(t, "first caller", first); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("first caller: err = %v, want context.Canceled", r.err)
	}
	if err := fetchCtx.Err(); err != nil {
		t.Errorf("fetch ctx ended with the first caller's: %v", err)
	}
	if got := fetchCtx.Value(ctxKey{}); got != "trace-1" {
		t.Errorf("fetch ctx value = %v, want the first caller's trace-1", got)
	}
	if _, ok := fetchCtx.Deadline(); ok {
		t.Errorf("fetch ctx has a deadline with Timeout 0")
	}
	select {
	case r := <-second:
		t.Fatalf("second caller returned %+v before the fetch ended", r)
	default:
	}

	close(bf.release)
	if r := recv(t, "second caller", second); r.err != nil || r.v != "v" {
		t.Fatalf("second caller: Get = %q, %v; want v, nil", r.v, r.err)
	}
	// The abandoned flight still stored its value.
	if v, err := g.Get(context.Background(), "k", func(context.Context) (string, error) {
		return "", errors.New("must not be called")
	}); err != nil || v != "v" {
		t.Errorf("Get after the flight = %q, %v; want the kept v", v, err)
	}
}

func TestWaiterCtxEndsWhileFlightContinues(t *testing.T) {
	tests := []struct {
		name      string
		ctx       func() (context.Context, context.CancelFunc)
		cancelNow bool
		wantErr   error
	}{
		{"cancelled", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, true, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 20*time.Millisecond)
		}, false, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			g := cache.New[string](cache.Options{TTL: time.Hour, Observe: rec.observe})
			bf := newBlockingFetch("v")
			first := goGet(g, context.Background(), "k", bf.fetch)
			wait.For(t, waitTimeout, "fetch to start", wait.Closed(bf.started))
			fetchCtx := <-bf.ctxs

			ctx, cancel := tt.ctx()
			defer cancel()
			jc := newJoinCtx(ctx)
			waiter := goGet(g, jc, "k", bf.fetch)
			wait.For(t, waitTimeout, "the waiter to join", wait.Closed(jc.joined))
			if tt.cancelNow {
				cancel()
			}
			if r := recv(t, "the waiter", waiter); !errors.Is(r.err, tt.wantErr) {
				t.Fatalf("waiter: err = %v, want %v", r.err, tt.wantErr)
			}
			if fetchCtx.Err() != nil {
				t.Errorf("fetch ctx ended with a waiter's: %v", fetchCtx.Err())
			}
			select {
			case r := <-first:
				t.Fatalf("first caller returned %+v while the fetch is blocked", r)
			default:
			}
			close(bf.release)
			if r := recv(t, "first caller", first); r.err != nil || r.v != "v" {
				t.Fatalf("first caller: %q, %v", r.v, r.err)
			}
			if c := bf.calls.Load(); c != 1 {
				t.Errorf("fetch called %d times, want 1", c)
			}
		})
	}
}

func TestWaiterDeadlineWithoutCancel(t *testing.T) {
	// A caller whose deadline passes gets DeadlineExceeded, not Canceled.
	g := cache.New[string](cache.Options{TTL: time.Hour})
	bf := newBlockingFetch("v")
	defer close(bf.release)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := g.Get(ctx, "k", bf.fetch)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get err = %v, want DeadlineExceeded", err)
	}
}

func TestTimeoutBoundsFetch(t *testing.T) {
	const timeout = 50 * time.Millisecond
	g := cache.New[string](cache.Options{TTL: time.Hour, Timeout: timeout})
	var deadline time.Time
	var hasDeadline bool
	before := time.Now()
	_, err := g.Get(context.Background(), "k", func(ctx context.Context) (string, error) {
		deadline, hasDeadline = ctx.Deadline()
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(waitTimeout):
			return "", errors.New("the fetch ctx never ended")
		}
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get err = %v, want DeadlineExceeded", err)
	}
	if !hasDeadline {
		t.Fatal("fetch ctx has no deadline")
	}
	if d := deadline.Sub(before); d <= 0 || d > timeout+time.Second {
		t.Errorf("fetch deadline is %v after the call, want about %v", d, timeout)
	}
	if g.Len() != 0 {
		t.Errorf("a timed-out fetch was kept")
	}
}

func TestTimeoutKeepsEarlierCallerDeadline(t *testing.T) {
	// The caller's own deadline is not passed on (the call is detached), but
	// the Group's Timeout is.
	g := cache.New[string](cache.Options{Timeout: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _ = g.Get(ctx, "k", func(fctx context.Context) (string, error) {
		d, ok := fctx.Deadline()
		if !ok {
			t.Error("fetch ctx has no deadline")
		} else if time.Until(d) < 30*time.Minute {
			t.Errorf("fetch deadline in %v: the caller's deadline leaked into the detached call", time.Until(d))
		}
		return "", nil
	})
}

func TestNilObserve(t *testing.T) {
	g := cache.New[int](cache.Options{TTL: time.Hour})
	for range 2 {
		if v, err := g.Get(context.Background(), "k", func(context.Context) (int, error) { return 1, nil }); err != nil || v != 1 {
			t.Fatalf("Get = %d, %v", v, err)
		}
	}
}

func TestForgetDoesNotAffectFlight(t *testing.T) {
	g := cache.New[string](cache.Options{TTL: time.Hour})
	bf := newBlockingFetch("v")
	r := goGet(g, context.Background(), "k", bf.fetch)
	wait.For(t, waitTimeout, "fetch to start", wait.Closed(bf.started))
	g.Forget("k")
	close(bf.release)
	if res := recv(t, "Get", r); res.v != "v" || res.err != nil {
		t.Fatalf("Get = %q, %v", res.v, res.err)
	}
	if g.Len() != 1 {
		t.Errorf("Len() = %d: the flight's value should be kept (documented)", g.Len())
	}
}

func BenchmarkGetHit(b *testing.B) {
	g := cache.New[int](cache.Options{TTL: time.Hour})
	ctx := context.Background()
	fetch := func(context.Context) (int, error) { return 1, nil }
	if _, err := g.Get(ctx, "k", fetch); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Get(ctx, "k", fetch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetParallelHit(b *testing.B) {
	g := cache.New[int](cache.Options{TTL: time.Hour})
	ctx := context.Background()
	fetch := func(context.Context) (int, error) { return 1, nil }
	keys := make([]string, 16)
	for i := range keys {
		keys[i] = fmt.Sprint(i)
		if _, err := g.Get(ctx, keys[i], fetch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := g.Get(ctx, keys[i%len(keys)], fetch); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
