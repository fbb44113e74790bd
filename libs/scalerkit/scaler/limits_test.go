package scaler_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

func gaugeValue(t testing.TB, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// wantRefused checks that err is code with a message naming every want.
func wantRefused(t *testing.T, what string, err error, code codes.Code, want ...string) {
	t.Helper()
	st := status.Convert(err)
	if err == nil || st.Code() != code {
		t.Fatalf("%s = %v, want %v", what, err, code)
	}
	for _, w := range want {
		if !strings.Contains(st.Message(), w) {
			t.Errorf("%s: message %q does not name %q", what, st.Message(), w)
		}
	}
}

func getMetrics(s *scalertest.Scaler, t *testing.T, md map[string]string) (*pb.GetMetricsResponse, error) {
	return s.Client.GetMetrics(ctxT(t), &pb.GetMetricsRequest{ScaledObjectRef: scalertest.Ref(md), MetricName: "fake_value"})
}

func TestMaxQuestions(t *testing.T) {
	t.Setenv("MAX_QUESTIONS", "2")
	f := newFake()
	f.set("c", 3)
	s := scalertest.Serve(t, f, scalertest.Options{CacheTTL: time.Hour, BackendTimeout: 10 * time.Second})
	m := s.Metrics
	// At the limit: two questions, both with a backend call in flight.
	f.hold("a")
	f.hold("b")
	var wg sync.WaitGroup
	for _, k := range []string{"a", "b"} {
		wg.Go(func() {
			if _, err := getMetrics(s, t, map[string]string{"key": k}); err != nil {
				t.Errorf("GetMetrics(%s) at the limit: %v", k, err)
			}
		})
	}
	wait.For(t, 5*time.Second, "both reads to start", func() bool { return f.readCount("a") == 1 && f.readCount("b") == 1 })
	if got := gaugeValue(t, m.Held.WithLabelValues("questions")); got != 2 {
		t.Errorf("held questions = %v, want 2", got)
	}
	if got := gaugeValue(t, m.HeldLimit.WithLabelValues("questions")); got != 2 {
		t.Errorf("held questions limit = %v, want 2", got)
	}
	// One past it: refused, whatever the trigger's error policy.
	for _, md := range []map[string]string{{"key": "c"}, {"key": "c", "onError": "inactive"}} {
		_, err := getMetrics(s, t, md)
		wantRefused(t, "GetMetrics(c) past the limit", err, codes.ResourceExhausted, "(2, MAX_QUESTIONS)")
		_, err = s.Client.IsActive(ctxT(t), scalertest.Ref(md))
		wantRefused(t, "IsActive(c) past the limit", err, codes.ResourceExhausted, "MAX_QUESTIONS")
	}
	if n := f.readCount("c"); n != 0 {
		t.Errorf("a refused question was read %d times", n)
	}
	if got := counterValue(t, m.LimitRefusals.WithLabelValues("MAX_QUESTIONS")); got != 4 {
		t.Errorf("refusals = %v, want 4", got)
	}
	f.release("a")
	f.release("b")
	wg.Wait()
	// The readings are idle now: a new question takes the place of the
	// least recently used.
	if r, err := getMetrics(s, t, map[string]string{"key": "c"}); err != nil || r.MetricValues[0].MetricValueFloat != 3 {
		t.Fatalf("GetMetrics(c) once a and b are idle = %v, %v", r, err)
	}
	if got := counterValue(t, m.Evictions.WithLabelValues("questions")); got != 1 {
		t.Errorf("evictions = %v, want 1", got)
	}
	if got := gaugeValue(t, m.Held.WithLabelValues("questions")); got != 2 {
		t.Errorf("held questions = %v, want 2", got)
	}
}

func TestTargetReaderIdle(t *testing.T) {
	const idle = 1500 * time.Millisecond // wide: calls may be slow on a loaded machine
	t.Setenv("TARGET_READER_IDLE", idle.String())
	f := newFake()
	f.set("cap", 20)
	s := scalertest.Serve(t, f, scalertest.Options{PushInterval: 20 * time.Millisecond})
	held := func() float64 { return gaugeValue(t, s.Metrics.Held.WithLabelValues("target_readers")) }
	md := map[string]string{"key": "v", "targetKey": "cap"}
	if _, err := s.Client.GetMetricSpec(ctxT(t), scalertest.Ref(md)); err != nil {
		t.Fatal(err)
	}
	if held() != 1 {
		t.Fatalf("held readers = %v after GetMetricSpec, want 1", held())
	}
	// GetMetrics needs the target too: it keeps the reader.
	for end := time.Now().Add(2 * idle); time.Now().Before(end); time.Sleep(idle / 10) {
		if _, err := getMetrics(s, t, md); err != nil {
			t.Fatal(err)
		}
		if held() != 1 {
			t.Fatalf("the reader stopped although GetMetrics asked within %v", idle)
		}
	}
	// Nobody asks: released soon after the idle time.
	start := time.Now()
	wait.For(t, 5*time.Second, "the idle reader to stop", func() bool { return held() == 0 })
	if elapsed := time.Since(start); elapsed < idle-idle/5 {
		t.Errorf("reader stopped %v after the last call, before TARGET_READER_IDLE=%v", elapsed, idle)
	}
	reads := f.readCount("cap")
	time.Sleep(100 * time.Millisecond)
	if f.readCount("cap") != reads {
		t.Error("a stopped reader still reads the backend")
	}
}

func TestMaxMetadataBytes(t *testing.T) {
	t.Setenv("MAX_METADATA_BYTES", "64")
	f := newFake()
	f.set("v", 7)
	s := scalertest.Serve(t, f, scalertest.Options{})
	pad := func(total int) map[string]string {
		return map[string]string{"key": "v", "pad": strings.Repeat("x", total-len("key")-len("v")-len("pad"))}
	}
	tests := []struct {
		name    string
		md      map[string]string
		wantErr bool
	}{
		{"at the limit", pad(64), false},
		{"one past it", pad(65), true},
		// (A megabyte never reaches this check: the transport refuses a
		// request over GRPC_MAX_RECV_MSG_BYTES, see server/limits_test.go.)
		{"32 KiB", pad(32 << 10), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := counterValue(t, s.Metrics.LimitRefusals.WithLabelValues("MAX_METADATA_BYTES"))
			_, err := s.Poll(ctxT(t), tt.md)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("poll = %v", err)
				}
				return
			}
			wantRefused(t, "poll", err, codes.InvalidArgument, "limit of 64", "MAX_METADATA_BYTES", `"pad"`)
			if n := len(status.Convert(err).Message()); n > 512 {
				t.Errorf("message is %d bytes: the value is echoed", n)
			}
			if got := counterValue(t, s.Metrics.LimitRefusals.WithLabelValues("MAX_METADATA_BYTES")) - before; got != 1 {
				t.Errorf("refusals counted %v, want 1 (GetMetricSpec)", got)
			}
		})
	}
}

// TestMaxCallsPerNamespace: one namespace's backend calls run at most
// MAX_CALLS_PER_NAMESPACE at once and MAX_WAITING_PER_NAMESPACE wait their
// turn; past that they are refused, naming the namespace and the
// variable, while another namespace is answered at once and a call
// joining one in flight takes no place.
func TestMaxCallsPerNamespace(t *testing.T) {
	t.Setenv("MAX_CALLS_PER_NAMESPACE", "1")
	t.Setenv("MAX_WAITING_PER_NAMESPACE", "1")
	f := newFake()
	f.set("b", 7)
	s := scalertest.Serve(t, f, scalertest.Options{BackendTimeout: 10 * time.Second})
	ref := func(ns, key string) *pb.GetMetricsRequest {
		return &pb.GetMetricsRequest{MetricName: "fake_value",
			ScaledObjectRef: &pb.ScaledObjectRef{Name: "so-" + key, Namespace: ns, ScalerMetadata: map[string]string{"key": key}}}
	}
	f.hold("a1")
	f.hold("a2")
	var wg sync.WaitGroup
	call := func(k string) {
		wg.Go(func() {
			if _, err := s.Client.GetMetrics(ctxT(t), ref("tenant-a", k)); err != nil {
				t.Errorf("GetMetrics(%s) at the limit: %v", k, err)
			}
		})
	}
	call("a1")
	wait.For(t, 5*time.Second, "a1 to run", func() bool { return f.readCount("a1") == 1 })
	call("a2")
	time.Sleep(100 * time.Millisecond) // a2 waits for a place; it must not run
	if n := f.readCount("a2"); n != 0 {
		t.Fatalf("a2 ran %d times while a1 held the namespace's only place", n)
	}
	call("a1") // joins the call in flight: takes no place, is not refused
	time.Sleep(100 * time.Millisecond)
	// One past it: refused at once, naming the limit.
	_, err := s.Client.GetMetrics(ctxT(t), ref("tenant-a", "a3"))
	wantRefused(t, "GetMetrics(a3) past the limit", err, codes.ResourceExhausted,
		`namespace "tenant-a"`, "waiting their turn (1, MAX_WAITING_PER_NAMESPACE)")
	if got := counterValue(t, s.Metrics.LimitRefusals.WithLabelValues("MAX_WAITING_PER_NAMESPACE")); got != 1 {
		t.Errorf("refusals = %v, want 1", got)
	}
	if got := gaugeValue(t, s.Metrics.Waiting.WithLabelValues("backend_calls")); got != 1 {
		t.Errorf("calls waiting = %v, want 1 (a2)", got)
	}
	// Another tenant is not held back.
	start := time.Now()
	r, err := s.Client.GetMetrics(ctxT(t), ref("tenant-b", "b"))
	if err != nil || r.MetricValues[0].MetricValueFloat != 7 {
		t.Fatalf("tenant-b while tenant-a is full: %v, %v", r, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("tenant-b waited %v", d)
	}
	if got := gaugeValue(t, s.Metrics.Held.WithLabelValues("backend_calls")); got != 1 {
		t.Errorf("backend calls running = %v, want 1 (a1)", got)
	}
	if got := gaugeValue(t, s.Metrics.HeldLargest.WithLabelValues("backend_calls")); got != 1 {
		t.Errorf("backend calls of the largest namespace = %v, want 1 (tenant-a)", got)
	}
	f.release("a1")
	wait.For(t, 5*time.Second, "a2 to run once a1 is done", func() bool { return f.readCount("a2") == 1 })
	f.release("a2")
	wg.Wait()
	if got := counterValue(t, s.Metrics.CacheRequests.WithLabelValues("shared")); got != 1 {
		t.Errorf("calls that joined one in flight = %v, want 1 (the second a1)", got)
	}
	for _, g := range []prometheus.Gauge{s.Metrics.Held.WithLabelValues("backend_calls"), s.Metrics.Waiting.WithLabelValues("backend_calls"),
		s.Metrics.HeldLargest.WithLabelValues("backend_calls")} {
		if got := gaugeValue(t, g); got != 0 {
			t.Errorf("backend calls running, waiting or of the largest namespace at the end = %v, want 0", got)
		}
	}
}
