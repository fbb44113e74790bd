package scalertest

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// Context returns a context that ends after d or when the test ends.
func Context(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// GetMetrics makes KEDA's GetMetrics call for metric and returns the one
// value it must carry (an error when it carries another number of values).
func (s *Scaler) GetMetrics(ctx context.Context, md map[string]string, metric string) (float64, error) {
	res, err := s.Client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: Ref(md), MetricName: metric})
	if err != nil {
		return 0, err
	}
	if n := len(res.GetMetricValues()); n != 1 {
		return 0, fmt.Errorf("GetMetrics returned %d values, want exactly 1", n)
	}
	return res.GetMetricValues()[0].GetMetricValueFloat(), nil
}

// Messages delivers what recv returns (a stream's Recv) until it fails or
// ctx ends; the channel is closed then.
func Messages[T any](ctx context.Context, recv func() (T, error)) <-chan T {
	ch := make(chan T)
	go func() {
		defer close(ch)
		for {
			m, err := recv()
			if err != nil {
				return
			}
			select {
			case ch <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// Next returns the next message of ch, failing the test when none comes
// within d or the stream ends.
func Next[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatalf("%s: stream ended", what)
		}
		return m
	case <-timer.C:
		t.Fatalf("%s: no message within %v", what, d)
	}
	panic("unreachable")
}

// None fails the test when ch delivers a message, or ends, within d.
func None[T any](t testing.TB, ch <-chan T, d time.Duration, what string) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case m, ok := <-ch:
		if ok {
			t.Fatalf("%s: unexpected message %v", what, m)
		}
		t.Fatalf("%s: stream ended", what)
	case <-timer.C:
	}
}

// WantStatus fails the test unless err is a gRPC status with code whose
// message contains every fragment.
func WantStatus(t testing.TB, err error, code codes.Code, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", code)
	}
	st, _ := status.FromError(err)
	if st.Code() != code {
		t.Fatalf("code %v (%v), want %v", st.Code(), st.Message(), code)
	}
	for _, f := range fragments {
		if !strings.Contains(st.Message(), f) {
			t.Errorf("message %q does not contain %q", st.Message(), f)
		}
	}
}

// Unsetenv removes the named variables from the environment for the test
// and restores them when it ends (t.Setenv can only set a variable).
func Unsetenv(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		t.Setenv(name, "") // restores the old value, or its absence
		if err := os.Unsetenv(name); err != nil {
			t.Fatal(err)
		}
	}
}

// UnsetenvPrefix removes every variable whose name starts with prefix, as
// Unsetenv does, so that the settings of the machine running the tests
// (ORACLE_URL_BILLING, say) do not leak into them.
func UnsetenvPrefix(t testing.TB, prefix string) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, prefix) {
			Unsetenv(t, name)
		}
	}
}

// Command runs a service's run function (main's body, taking the
// arguments after the program name and the output streams, returning the
// exit code) in-process with args, and returns its exit code, stdout and
// stderr.
func Command(t testing.TB, run func(args []string, stdout, stderr io.Writer) int, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut strings.Builder
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// Closing fails the test when err is not nil, and otherwise closes v when
// the test ends, reporting an error from Close: for a backend a test
// builds with b, err := New(cfg).
func Closing[T io.Closer](t testing.TB, v T, err error) T {
	t.Helper()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	t.Cleanup(func() {
		if err := v.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return v
}

// BackendCalls returns how many backend calls of kind ("value" or
// "target") s counted with outcome (metrics.Outcome) so far.
func BackendCalls(t testing.TB, s *Scaler, kind, outcome string) uint64 {
	t.Helper()
	var m dto.Metric
	if err := s.Metrics.BackendRequests.WithLabelValues(kind, outcome).(prometheus.Histogram).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}
