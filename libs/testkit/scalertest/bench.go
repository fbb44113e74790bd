package scalertest

import (
	"context"
	"testing"

	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// BenchmarkWarmPoll measures one KEDA poll of md, GetMetrics for metric
// and then IsActive, after a first poll has filled the cache: the hot
// path. Every poll must answer what the first did. allocs/op counts the
// in-memory client's allocations too.
func (s *Scaler) BenchmarkWarmPoll(b *testing.B, md map[string]string, metric string) {
	b.Helper()
	ctx := context.Background()
	ref := Ref(md)
	req := &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: metric}
	poll := func() (float64, bool) {
		res, err := s.Client.GetMetrics(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		act, err := s.Client.IsActive(ctx, ref)
		if err != nil {
			b.Fatal(err)
		}
		return res.GetMetricValues()[0].GetMetricValueFloat(), act.GetResult()
	}
	value, active := poll()
	b.ReportAllocs()
	for b.Loop() {
		if v, a := poll(); v != value || a != active {
			b.Fatalf("poll = %v, %v; the first was %v, %v", v, a, value, active)
		}
	}
}
