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

// BenchmarkPollWarm is one KEDA poll, GetMetrics then IsActive, with the
// reading in the cache: the hot path (tools/pollbench measures the server
// alone, against a bare gRPC server).
func BenchmarkPollWarm(b *testing.B) {
	e := newEnv(b, scalertest.Options{CacheTTL: time.Hour})
	must(b, e.rdb.SAdd(context.Background(), "sessions", "a", "b", "c").Err())
	e.s.BenchmarkWarmPoll(b, map[string]string{"mode": "set", "key": "sessions", "sessionSize": "100"}, "session_size")
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

// BenchmarkPushLatencyKeyspace measures the scaler's own part of an
// activation by push: from a write to Redis (SADD to an empty set) to
// StreamIsActive sending true, with keyspace notifications and a 30 s
// push interval. Each trial starts after a quiet spell longer than the
// feed's throttle, as a first session after an idle night does. p50-ms
// and p99-ms are what to read: ns/op is a whole trial, its quiet spell
// and the way back to inactive included, so the default -benchtime makes
// only about ten trials; -benchtime 200x makes enough for a p99.
func BenchmarkPushLatencyKeyspace(b *testing.B) {
	e := newEnv(b, scalertest.Options{PushInterval: 30 * time.Second, CacheTTL: 30 * time.Second},
		"--notify-keyspace-events", "KEA")
	ctx := scalertest.Context(b, 10*time.Minute)
	ch := e.streamIsActive(b, map[string]string{"mode": "set", "key": "s"})
	if scalertest.Next(b, ch, 5*time.Second, "first message") {
		b.Fatal("first message is true for an empty set")
	}
	waitSubscribed(b, e.rdb, "__keyspace@0__:s")
	var took []time.Duration
	for b.Loop() {
		time.Sleep(100 * time.Millisecond) // quiet: past the feed's 50 ms throttle
		start := time.Now()
		must(b, e.rdb.SAdd(ctx, "s", "a").Err())
		if !scalertest.Next(b, ch, 5*time.Second, "after SADD") {
			b.Fatal("false after SADD")
		}
		took = append(took, time.Since(start))
		must(b, e.rdb.Del(ctx, "s").Err())
		if scalertest.Next(b, ch, 5*time.Second, "after DEL") {
			b.Fatal("true after DEL")
		}
	}
	scalertest.ReportLatency(b, took)
}
