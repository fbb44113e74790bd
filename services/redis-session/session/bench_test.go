package session

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// benchmarkGetMetrics measures one GetMetrics through gRPC (in memory)
// for a set of 1000 sessions.
func benchmarkGetMetrics(b *testing.B, opts scalertest.Options) {
	e := newEnv(b, opts)
	ctx := context.Background()
	members := make([]any, 1000)
	for i := range members {
		members[i] = i
	}
	must(b, e.rdb.SAdd(ctx, "sessions", members...).Err())
	req := &pb.GetMetricsRequest{
		ScaledObjectRef: scalertest.Ref(map[string]string{"mode": "set", "key": "sessions", "sessionSize": "100"}),
		MetricName:      "session_size",
	}
	if _, err := e.s.Client.GetMetrics(ctx, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res, err := e.s.Client.GetMetrics(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		if v := res.GetMetricValues()[0].GetMetricValueFloat(); v != 1000 {
			b.Fatalf("value %v, want 1000", v)
		}
	}
}

// BenchmarkGetMetricsCached is the common path: the reading is in the
// cache, Redis is not asked.
func BenchmarkGetMetricsCached(b *testing.B) {
	benchmarkGetMetrics(b, scalertest.Options{CacheTTL: time.Hour})
}

// BenchmarkGetMetricsUncached asks Redis on every call (SCARD over
// loopback).
func BenchmarkGetMetricsUncached(b *testing.B) {
	benchmarkGetMetrics(b, scalertest.Options{CacheTTL: -1})
}

// BenchmarkScanPatternUncached walks 10,000 keys (1,000 of them matching)
// with SCAN on every call: the cost of mode=pattern without the cache.
func BenchmarkScanPatternUncached(b *testing.B) {
	e := newEnv(b, scalertest.Options{CacheTTL: -1})
	ctx := context.Background()
	pipe := e.rdb.Pipeline()
	for i := range 10000 {
		key := "other:" + strconv.Itoa(i)
		if i%10 == 0 {
			key = "sess:" + strconv.Itoa(i)
		}
		pipe.Set(ctx, key, "{}", time.Hour)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	req := &pb.GetMetricsRequest{
		ScaledObjectRef: scalertest.Ref(map[string]string{"mode": "pattern", "keyPattern": "sess:*"}),
		MetricName:      "session_size",
	}
	b.ReportAllocs()
	for b.Loop() {
		res, err := e.s.Client.GetMetrics(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		if v := res.GetMetricValues()[0].GetMetricValueFloat(); v != 1000 {
			b.Fatalf("value %v, want 1000", v)
		}
	}
}
