package scaler_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// poll is KEDA's GetMetrics for ScaledObject so-key of namespace ns, whose
// trigger reads key.
func poll(s *scalertest.Scaler, t *testing.T, ns, key string) (*pb.GetMetricsResponse, error) {
	t.Helper()
	return s.Client.GetMetrics(ctxT(t), &pb.GetMetricsRequest{MetricName: "fake_value",
		ScaledObjectRef: &pb.ScaledObjectRef{Name: "so-" + key, Namespace: ns, ScalerMetadata: map[string]string{"key": key}}})
}

// burst polls n distinct questions of namespace ns at once and returns
// the errors by code once all are answered.
func burst(s *scalertest.Scaler, t *testing.T, ns string, n int, answered *atomic.Int64) map[codes.Code][]error {
	t.Helper()
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		out = map[codes.Code][]error{}
	)
	for i := range n {
		wg.Go(func() {
			_, err := poll(s, t, ns, fmt.Sprintf("%s-%d", ns, i))
			if answered != nil {
				answered.Add(1)
			}
			mu.Lock()
			out[status.Code(err)] = append(out[status.Code(err)], err)
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// TestBurstOfOneNamespace: one namespace's distinct questions, all asked
// at once (as after a KEDA restart), wait their turn against a slow
// backend and are all answered, at most MAX_CALLS_PER_NAMESPACE reading at
// once; the defaults take the 500.
func TestBurstOfOneNamespace(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		questions int
		delay     time.Duration
		perNS     int64
	}{
		{"defaults, 500 questions", nil, 500, 2 * time.Millisecond, 2},
		{"200 questions, 4 at once", map[string]string{"MAX_CALLS_PER_NAMESPACE": "4"}, 200, 5 * time.Millisecond, 4},
		{"one backend call in all", map[string]string{"MAX_BACKEND_CALLS": "2", "MAX_CALLS_PER_NAMESPACE": "1"}, 200, time.Millisecond, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			f := newFake()
			f.slow(tc.delay)
			s := scalertest.Serve(t, f, scalertest.Options{})
			got := burst(s, t, "tenant-a", tc.questions, nil)
			if n := len(got[codes.OK]); n != tc.questions {
				t.Errorf("%d of %d questions answered; the others: %v", n, tc.questions, got)
			}
			if m := f.maxRan.Load(); m > tc.perNS {
				t.Errorf("%d reads ran at once, want at most %d (MAX_CALLS_PER_NAMESPACE)", m, tc.perNS)
			}
			if got := gaugeValue(t, s.Metrics.Waiting.WithLabelValues("backend_calls")); got != 0 {
				t.Errorf("calls waiting after the burst = %v, want 0", got)
			}
		})
	}
}

// TestBurstPastTheQueue: a namespace with MAX_CALLS_PER_NAMESPACE calls
// running and MAX_WAITING_PER_NAMESPACE waiting is refused at once, naming
// the namespace and the variable; what was admitted is answered.
func TestBurstPastTheQueue(t *testing.T) {
	tests := []struct {
		name             string
		perNS, waiting   int
		questions, admit int
	}{
		{"a queue of 10", 2, 10, 40, 12},
		{"no queue", 1, 0, 5, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("MAX_CALLS_PER_NAMESPACE", fmt.Sprint(tc.perNS))
			t.Setenv("MAX_WAITING_PER_NAMESPACE", fmt.Sprint(tc.waiting))
			f := newFake()
			for i := range tc.questions {
				f.hold(fmt.Sprintf("tenant-a-%d", i))
			}
			s := scalertest.Serve(t, f, scalertest.Options{BackendTimeout: 30 * time.Second})
			var answered atomic.Int64
			done := make(chan map[codes.Code][]error)
			go func() { done <- burst(s, t, "tenant-a", tc.questions, &answered) }()
			refused := int64(tc.questions - tc.admit)
			wait.For(t, 10*time.Second, "the calls past the queue refused", func() bool { return answered.Load() == refused })
			for i := range tc.questions {
				f.release(fmt.Sprintf("tenant-a-%d", i))
			}
			got := <-done
			if n := len(got[codes.OK]); n != tc.admit {
				t.Errorf("%d answered, want %d (running and waiting)", n, tc.admit)
			}
			if n := len(got[codes.ResourceExhausted]); int64(n) != refused {
				t.Fatalf("%d refused, want %d: %v", n, refused, got)
			}
			wantRefused(t, "a call past the queue", got[codes.ResourceExhausted][0], codes.ResourceExhausted,
				`namespace "tenant-a"`, fmt.Sprintf("(%d, MAX_WAITING_PER_NAMESPACE)", tc.waiting))
		})
	}
}

// TestSecondNamespaceDuringBurst: namespaces take turns for the backend
// calls. With one value read in flight at a time, a second namespace's
// question asked during the first one's burst is answered before the
// burst ends: it waits for one call, not for the burst.
func TestSecondNamespaceDuringBurst(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
	}{
		{"one call in all", map[string]string{"MAX_BACKEND_CALLS": "2", "MAX_CALLS_PER_NAMESPACE": "1"}},
		{"the defaults", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			const questions = 200
			f := newFake()
			f.slow(10 * time.Millisecond)
			f.set("b", 7)
			s := scalertest.Serve(t, f, scalertest.Options{BackendTimeout: time.Minute})
			var answered atomic.Int64
			done := make(chan map[codes.Code][]error)
			go func() { done <- burst(s, t, "tenant-a", questions, &answered) }()
			wait.For(t, 10*time.Second, "the burst under way", func() bool { return answered.Load() >= 2 })
			r, err := poll(s, t, "tenant-b", "b")
			if err != nil || r.MetricValues[0].MetricValueFloat != 7 {
				t.Fatalf("tenant-b during tenant-a's burst: %v, %v", r, err)
			}
			if n := answered.Load(); n >= questions {
				t.Errorf("tenant-b was answered after all %d of tenant-a's questions: first come, first served", n)
			}
			if got := <-done; len(got[codes.OK]) != questions {
				t.Errorf("%d of tenant-a's %d questions answered: %v", len(got[codes.OK]), questions, got)
			}
		})
	}
}

// TestQuestionsShared: when every question held has a backend call in
// flight, a namespace under its share of MAX_QUESTIONS still gets its new
// question in, by taking the place of the newest call of the namespace
// holding the most, which is refused; that namespace, at its share, is
// refused a new question.
func TestQuestionsShared(t *testing.T) {
	t.Setenv("MAX_QUESTIONS", "4")
	t.Setenv("MAX_CALLS_PER_NAMESPACE", "4")
	f := newFake()
	keys := []string{"a0", "a1", "a2", "a3"}
	for _, k := range keys {
		f.hold(k)
	}
	f.set("b", 7)
	s := scalertest.Serve(t, f, scalertest.Options{BackendTimeout: 30 * time.Second})
	errs := make(chan error, len(keys))
	for i, k := range keys {
		go func() { _, err := poll(s, t, "tenant-a", k); errs <- err }()
		wait.For(t, 5*time.Second, k+" in flight", func() bool { return f.readCount(keys[i]) == 1 })
	}

	// tenant-b's first question gets in; tenant-a's newest call gives up its place.
	r, err := poll(s, t, "tenant-b", "b")
	if err != nil || r.MetricValues[0].MetricValueFloat != 7 {
		t.Fatalf("tenant-b while tenant-a holds every question: %v, %v", r, err)
	}
	wantRefused(t, "tenant-a's newest call", <-errs, codes.ResourceExhausted, "MAX_QUESTIONS", `namespace "tenant-a"`)
	if got := counterValue(t, s.Metrics.PlacesTaken.WithLabelValues("questions_in_flight")); got != 1 {
		t.Errorf("places taken = %v, want 1", got)
	}

	// Now tenant-b holds none and tenant-a 3 of 4: another of tenant-b's
	// takes the free place.
	f.hold("b2")
	go func() { _, err := poll(s, t, "tenant-b", "b2"); errs <- err }()
	wait.For(t, 5*time.Second, "b2 in flight", func() bool { return f.readCount("b2") == 1 })
	// tenant-a (3 held) and tenant-b (1 held) share 4 places, 2 each:
	// tenant-a's fifth question is refused, naming the limit.
	_, err = poll(s, t, "tenant-a", "a4")
	wantRefused(t, "tenant-a over its share", err, codes.ResourceExhausted, "(4, MAX_QUESTIONS)", `namespace "tenant-a"`)
	if got := gaugeValue(t, s.Metrics.HeldLargest.WithLabelValues("questions_in_flight")); got != 3 {
		t.Errorf("questions in flight of the largest namespace = %v, want 3", got)
	}
	for _, k := range append(keys, "b2") {
		f.release(k)
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("a call admitted: %v", err)
		}
	}
}

// TestWaitEndsAtBackendTimeout: a call still waiting its turn when
// BACKEND_TIMEOUT ends is refused, naming the namespace and the
// variables that made it wait. The place is held by a read that ignores
// its cancellation, so that it outlives the wait.
func TestWaitEndsAtBackendTimeout(t *testing.T) {
	t.Setenv("MAX_CALLS_PER_NAMESPACE", "1")
	f := newFake()
	f.stick("a1")
	s := scalertest.Serve(t, f, scalertest.Options{BackendTimeout: 300 * time.Millisecond})
	first := make(chan error, 1)
	go func() { _, err := poll(s, t, "tenant-a", "a1"); first <- err }()
	wait.For(t, 5*time.Second, "a1 to run", func() bool { return f.readCount("a1") == 1 })
	_, err := poll(s, t, "tenant-a", "a2")
	wantRefused(t, "a2 still waiting at BACKEND_TIMEOUT", err, codes.ResourceExhausted,
		`namespace "tenant-a"`, "BACKEND_TIMEOUT (300ms)", "MAX_CALLS_PER_NAMESPACE", "MAX_BACKEND_CALLS")
	if n := f.readCount("a2"); n != 0 {
		t.Errorf("a2 read the backend %d times, want 0", n)
	}
	if got := counterValue(t, s.Metrics.LimitRefusals.WithLabelValues("MAX_CALLS_PER_NAMESPACE")); got != 1 {
		t.Errorf("refusals = %v, want 1", got)
	}
	f.release("a1")
	if err := <-first; err != nil {
		t.Errorf("a1, answered once released: %v", err)
	}
}
