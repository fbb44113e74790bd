package scaler_test

import (
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// A panicking probe is recovered once: one Internal status whose message
// says it once, one log line with the stack, one call counted internal.
func TestPanicIsInternalOnce(t *testing.T) {
	f := newFake()
	f.panics["boom"] = true
	logs := &wait.Buffer{}
	s := scalertest.Serve(t, f, scalertest.Options{CacheTTL: -1, Logger: slog.New(slog.NewTextHandler(logs, nil))})

	_, err := s.Client.GetMetrics(ctxT(t), &pb.GetMetricsRequest{ScaledObjectRef: scalertest.Ref(map[string]string{"key": "boom"})})
	st := status.Convert(err)
	if want := "reading value: the backend panicked: fake backend exploded"; st.Code() != codes.Internal || st.Message() != want {
		t.Errorf("GetMetrics = %v %q, want Internal %q", st.Code(), st.Message(), want)
	}
	out := logs.String()
	if n := strings.Count(out, "backend panicked"); n != 1 {
		t.Errorf("%d 'backend panicked' lines, want 1:\n%s", n, out)
	}
	if strings.Contains(out, "rpc panicked") || strings.Contains(out, "backend read failed") {
		t.Errorf("the panic was handled twice:\n%s", out)
	}
	for _, w := range []string{"level=ERROR", "scaledObject.name=so", "stack=", "fake_test.go"} {
		if !strings.Contains(out, w) {
			t.Errorf("panic log lacks %s:\n%s", w, out)
		}
	}
	if n := scalertest.BackendCalls(t, s, "value", "internal"); n != 1 {
		t.Errorf("%d backend calls counted internal, want 1", n)
	}
}

// The outcome of a backend call tells a trigger's mistake from an outage.
func TestBackendOutcomes(t *testing.T) {
	f := newFake()
	f.set("good", 1)
	f.set("nan", math.NaN())
	f.setErr("down", errDown)
	f.setErr("refused", status.Error(codes.FailedPrecondition, "WRONGPASS"))
	f.setErr("denied", status.Error(codes.PermissionDenied, "permission denied for table bookings"))
	f.setErr("full", status.Error(codes.ResourceExhausted, "too many distinct questions held (1000, MAX_QUESTIONS)"))
	f.hold("slow")
	defer f.release("slow")
	s := scalertest.Serve(t, f, scalertest.Options{CacheTTL: -1, BackendTimeout: 100 * time.Millisecond})
	tests := []struct {
		key      string
		wantCode codes.Code
		wantMsg  string
		outcome  string
	}{
		{"good", codes.OK, "", "ok"},
		{"nan", codes.OutOfRange, "value is NaN, want a finite number", "invalid"},
		{"denied", codes.PermissionDenied, "permission denied for table bookings", "invalid"},
		{"refused", codes.FailedPrecondition, "WRONGPASS", "refused"},
		{"down", codes.Unavailable, "reading value: connection refused", "unavailable"},
		{"slow", codes.DeadlineExceeded, "reading value: no answer from the backend within 100ms (BACKEND_TIMEOUT): context deadline exceeded", "timeout"},
		{"full", codes.ResourceExhausted, "too many distinct questions held (1000, MAX_QUESTIONS)", "exhausted"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			before := scalertest.BackendCalls(t, s, "value", tt.outcome)
			_, err := s.Client.GetMetrics(ctxT(t), &pb.GetMetricsRequest{ScaledObjectRef: scalertest.Ref(map[string]string{"key": tt.key})})
			if st := status.Convert(err); st.Code() != tt.wantCode || st.Message() != tt.wantMsg {
				t.Errorf("GetMetrics = %v %q, want %v %q", st.Code(), st.Message(), tt.wantCode, tt.wantMsg)
			}
			if n := scalertest.BackendCalls(t, s, "value", tt.outcome) - before; n != 1 {
				t.Errorf("%d calls counted %q, want 1", n, tt.outcome)
			}
		})
	}
}

// A probe key is clipped in log lines: a trigger's long query or key
// pattern must not make every failure line grow with it.
func TestProbeKeyClippedInLogs(t *testing.T) {
	f := newFake()
	long := strings.Repeat("x", 1000)
	f.setErr(long, errDown)
	logs := &wait.Buffer{}
	s := scalertest.Serve(t, f, scalertest.Options{CacheTTL: -1, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	_, err := s.Client.GetMetrics(ctxT(t), &pb.GetMetricsRequest{ScaledObjectRef: scalertest.Ref(map[string]string{"key": long})})
	scalertest.WantStatus(t, err, codes.Unavailable)
	out := logs.String()
	if !strings.Contains(out, "backend read failed") || !strings.Contains(out, "...(1001 bytes)") || strings.Contains(out, long) {
		t.Errorf("the probe key is not clipped in the log:\n%.600s", out)
	}
}

// A failed read is logged once per ScaledObject, kind and code within
// failEvery (10 s): a trigger polled in a loop, or an outage, does not log
// a line per call.
func TestFailedReadLogRateLimited(t *testing.T) {
	f := newFake()
	f.setErr("down", errDown)
	logs := &wait.Buffer{}
	s := scalertest.Serve(t, f, scalertest.Options{CacheTTL: -1, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	md := map[string]string{"key": "down"}
	for range 5 {
		_, err := s.Client.GetMetrics(ctxT(t), &pb.GetMetricsRequest{ScaledObjectRef: scalertest.Ref(md)})
		scalertest.WantStatus(t, err, codes.Unavailable)
	}
	if n := strings.Count(logs.String(), "backend read failed"); n != 1 {
		t.Errorf("5 failed reads of one ScaledObject logged %d lines, want 1:\n%s", n, logs)
	}
	other := scalertest.Ref(md)
	other.Name = "other"
	_, err := s.Client.GetMetrics(ctxT(t), &pb.GetMetricsRequest{ScaledObjectRef: other})
	scalertest.WantStatus(t, err, codes.Unavailable)
	if n := strings.Count(logs.String(), "backend read failed"); n != 2 {
		t.Errorf("another ScaledObject's failure: %d lines in all, want 2:\n%s", n, logs)
	}
}
