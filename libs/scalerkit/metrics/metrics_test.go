package metrics_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/fault"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metrics"
)

func TestOutcome(t *testing.T) {
	want := map[codes.Code]string{
		codes.OK:                 "ok",
		codes.InvalidArgument:    "invalid",
		codes.OutOfRange:         "invalid",
		codes.NotFound:           "invalid",
		codes.PermissionDenied:   "invalid",
		codes.FailedPrecondition: "refused",
		codes.Unauthenticated:    "refused",
		codes.Unavailable:        "unavailable",
		codes.DeadlineExceeded:   "timeout",
		codes.ResourceExhausted:  "exhausted",
		codes.Canceled:           "canceled",
		codes.Internal:           "internal",
		codes.Unknown:            "internal",
		codes.DataLoss:           "internal",
		codes.Unimplemented:      "internal",
		codes.Aborted:            "internal",
		codes.AlreadyExists:      "internal",
	}
	for code := codes.OK; code <= codes.Unauthenticated; code++ {
		if got := metrics.Outcome(status.Error(code, "x")); got != want[code] {
			t.Errorf("Outcome(%v) = %q, want %q", code, got, want[code])
		}
	}
	if got := metrics.Outcome(nil); got != "ok" {
		t.Errorf("Outcome(nil) = %q, want ok", got)
	}
	if got := metrics.Outcome(errors.New("connection refused")); got != "internal" {
		t.Errorf("Outcome(a plain error) = %q, want internal", got)
	}
	// A tenant's mistake of a platform's code is the tenant's.
	wrongType := fault.Tenantf(codes.FailedPrecondition, "the key holds another type: fix the trigger's key or mode")
	if got := metrics.Outcome(wrongType); got != "invalid" {
		t.Errorf("Outcome(a FailedPrecondition marked fault.Tenant) = %q, want invalid", got)
	}
}

func TestBuildInfo(t *testing.T) {
	m := metrics.New()
	m.SetBuild("some-scaler", "v1.2.3")
	want := fmt.Sprintf(`
# HELP kedascalers_build_info 1 for the running build, by service, version and Go version.
# TYPE kedascalers_build_info gauge
kedascalers_build_info{go_version=%q,service="some-scaler",version="v1.2.3"} 1
`, runtime.Version())
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), "kedascalers_build_info"); err != nil {
		t.Error(err)
	}
}

// TestRefusalsShared: a backend's refusals land in the scaler's own
// kedascalers_limit_refusals_total, whoever registers it first.
func TestRefusalsShared(t *testing.T) {
	m := metrics.New()
	backend, err := metrics.Refusals(m.Registry)
	if err != nil {
		t.Fatal(err)
	}
	backend.WithLabelValues("REDIS_MAX_CONNECTIONS").Inc()
	m.LimitRefusals.WithLabelValues("MAX_QUESTIONS").Inc()
	if got := testutil.ToFloat64(m.LimitRefusals.WithLabelValues("REDIS_MAX_CONNECTIONS")); got != 1 {
		t.Errorf("the backend's refusal seen by the scaler's counter: %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(m.Registry, "kedascalers_limit_refusals_total"); err != nil || n != 2 {
		t.Errorf("kedascalers_limit_refusals_total series = %d, %v; want 2 in one metric", n, err)
	}

	// Registered nowhere without a registry.
	alone, err := metrics.Refusals(nil)
	if err != nil || alone == m.LimitRefusals {
		t.Errorf("Refusals(nil) = %p, %v; want a counter of its own", alone, err)
	}

	// A collector of that name but another kind is an error, not a panic.
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "kedascalers_limit_refusals_total", Help: "x"}))
	if _, err := metrics.Refusals(reg); err == nil {
		t.Error("Refusals over a gauge of the same name: no error")
	}
}

// TestSharedOn: a backend's pool reports land in the scaler's own
// kedascalers_held family, found through the registry alone.
func TestSharedOn(t *testing.T) {
	m := metrics.New()
	opts, err := metrics.SharedOn(m.Registry, "watched_keys", 7)
	if err != nil {
		t.Fatal(err)
	}
	opts.Held(3)
	opts.Largest(2)
	opts.Taken()
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"held", testutil.ToFloat64(m.Held.WithLabelValues("watched_keys")), 3},
		{"limit", testutil.ToFloat64(m.HeldLimit.WithLabelValues("watched_keys")), 7},
		{"largest", testutil.ToFloat64(m.HeldLargest.WithLabelValues("watched_keys")), 2},
		{"taken", testutil.ToFloat64(m.PlacesTaken.WithLabelValues("watched_keys")), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if _, err := metrics.SharedOn(nil, "x", 1); err != nil {
		t.Errorf("SharedOn(nil) = %v", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "kedascalers_held", Help: "x"}))
	if _, err := metrics.SharedOn(reg, "x", 1); err == nil {
		t.Error("SharedOn over a gauge of the same name: no error")
	}
}
