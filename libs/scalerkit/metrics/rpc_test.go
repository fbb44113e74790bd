package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metrics"
)

// TestRPCSeries checks that the RPC interceptors export the series, and
// values, that go-grpc-middleware's providers/prometheus v1.1.1 exported
// for the same calls (testdata/rpc-series.txt, recorded from it), with the
// methods' table and without one.
func TestRPCSeries(t *testing.T) {
	want, err := os.ReadFile("testdata/rpc-series.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, prepared := range []bool{true, false} {
		t.Run(fmt.Sprint("prepared=", prepared), func(t *testing.T) {
			m := metrics.New()
			if prepared {
				m.GRPC.Prepare(served)
			}
			if got := series(t, m.Registry); got != "\n" {
				t.Fatalf("series before any call:\n%s", got)
			}
			driveRPCs(t, m.GRPC.UnaryServerInterceptor(), m.GRPC.StreamServerInterceptor())
			if got := series(t, m.Registry); got != string(want) {
				t.Errorf("series:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestRPCAllocs checks that a call of a served method allocates nothing in
// the interceptors once its series exist.
func TestRPCAllocs(t *testing.T) {
	m := metrics.New()
	m.GRPC.Prepare(served)
	unary := m.GRPC.UnaryServerInterceptor()
	info := &grpc.UnaryServerInfo{FullMethod: "/externalscaler.ExternalScaler/GetMetrics"}
	handler := func(context.Context, any) (any, error) { return nil, nil }
	call := func() { _, _ = unary(context.Background(), nil, info, handler) }
	call()
	if n := testing.AllocsPerRun(100, call); n != 0 {
		t.Errorf("unary call: %v allocations, want 0", n)
	}
}

// services is what a scaler serves, for RPC.Prepare.
type services map[string]grpc.ServiceInfo

func (s services) GetServiceInfo() map[string]grpc.ServiceInfo { return s }

var served = services{
	"externalscaler.ExternalScaler": {Methods: []grpc.MethodInfo{
		{Name: "GetMetrics"}, {Name: "IsActive"}, {Name: "StreamIsActive", IsServerStream: true},
	}},
	"grpc.reflection.v1.ServerReflection": {Methods: []grpc.MethodInfo{
		{Name: "ServerReflectionInfo", IsClientStream: true, IsServerStream: true},
	}},
}

// stream is a server stream whose sends and receives fail once their
// budget of successes is spent.
type stream struct {
	grpc.ServerStream
	sends, recvs int
}

func (s *stream) Context() context.Context { return context.Background() }

func (s *stream) SendMsg(any) error {
	if s.sends--; s.sends < 0 {
		return status.Error(codes.Unavailable, "gone")
	}
	return nil
}

func (s *stream) RecvMsg(any) error {
	if s.recvs--; s.recvs < 0 {
		return errors.New("EOF")
	}
	return nil
}

// driveRPCs makes unary and streaming calls, successful and failing, through
// the interceptors.
func driveRPCs(t *testing.T, unary grpc.UnaryServerInterceptor, streaming grpc.StreamServerInterceptor) {
	t.Helper()
	unaryCalls := []struct {
		method string
		err    error
	}{
		{"/externalscaler.ExternalScaler/GetMetrics", nil},
		{"/externalscaler.ExternalScaler/GetMetrics", nil},
		{"/externalscaler.ExternalScaler/GetMetrics", status.Error(codes.InvalidArgument, "bad")},
		{"/externalscaler.ExternalScaler/IsActive", fmt.Errorf("wrapped: %w", status.Error(codes.Unavailable, "down"))},
		{"/externalscaler.ExternalScaler/IsActive", errors.New("plain")},
		{"/externalscaler.ExternalScaler/IsActive", context.Canceled},
		{"/externalscaler.ExternalScaler/IsActive", context.DeadlineExceeded},
		{"/other.Service/Call", nil},
		{"malformed", nil},
	}
	for _, c := range unaryCalls {
		_, err := unary(context.Background(), "req", &grpc.UnaryServerInfo{FullMethod: c.method},
			func(context.Context, any) (any, error) { return "resp", c.err })
		if !errors.Is(err, c.err) {
			t.Fatalf("%s: got %v, want %v", c.method, err, c.err)
		}
	}
	streamCalls := []struct {
		method         string
		client, server bool
		sends, recvs   int
		err            error
	}{
		{"/externalscaler.ExternalScaler/StreamIsActive", false, true, 3, 1, nil},
		{"/externalscaler.ExternalScaler/StreamIsActive", false, true, 1, 1, status.Error(codes.Unavailable, "down")},
		{"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", true, true, 2, 2, nil},
		{"/other.Service/Upload", true, false, 1, 4, status.Error(codes.ResourceExhausted, "full")},
	}
	for _, c := range streamCalls {
		info := &grpc.StreamServerInfo{FullMethod: c.method, IsClientStream: c.client, IsServerStream: c.server}
		err := streaming(nil, &stream{sends: c.sends, recvs: c.recvs}, info, func(_ any, ss grpc.ServerStream) error {
			for ss.RecvMsg(nil) == nil {
			}
			for ss.SendMsg(nil) == nil {
			}
			return c.err
		})
		if !errors.Is(err, c.err) {
			t.Fatalf("%s: got %v, want %v", c.method, err, c.err)
		}
	}
}

// series lists reg's grpc_ series one a line, histograms by their count
// (their sums are durations).
func series(t *testing.T, reg prometheus.Gatherer) string {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "grpc_") {
			continue
		}
		lines = append(lines, fmt.Sprintf("# %s %s %s", f.GetName(), f.GetType(), f.GetHelp()))
		for _, m := range f.GetMetric() {
			lines = append(lines, f.GetName()+labels(m)+" "+value(f, m))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}

func labels(m *dto.Metric) string {
	var l []string
	for _, p := range m.GetLabel() {
		l = append(l, p.GetName()+"="+p.GetValue())
	}
	return "{" + strings.Join(l, ",") + "}"
}

func value(f *dto.MetricFamily, m *dto.Metric) string {
	if h := m.GetHistogram(); h != nil {
		var b []string
		for _, bucket := range h.GetBucket() {
			b = append(b, fmt.Sprint(bucket.GetUpperBound()))
		}
		return fmt.Sprintf("count=%d buckets=%s", h.GetSampleCount(), strings.Join(b, ","))
	}
	return fmt.Sprint(m.GetCounter().GetValue())
}
