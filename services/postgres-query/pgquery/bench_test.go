package pgquery

import (
	"context"
	"testing"
	"time"

	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// benchmarkGetMetrics measures one GetMetrics through gRPC (in memory)
// for a count over 10,000 bookings.
func benchmarkGetMetrics(b *testing.B, opts scalertest.Options) {
	e := newEnv(b, sharedPostgres(b), nil, opts)
	exec(b, e.db, "insert into bookings (status, seats) select 'confirmed', 1 from generate_series(1, 9994); analyze bookings")
	ctx := context.Background()
	req := &pb.GetMetricsRequest{
		ScaledObjectRef: scalertest.Ref(map[string]string{"query": confirmed, "targetQueryValue": "100"}),
		MetricName:      "query_value",
	}
	if _, err := e.s.Client.GetMetrics(ctx, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		res, err := e.s.Client.GetMetrics(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		if v := res.GetMetricValues()[0].GetMetricValueFloat(); v != 9997 {
			b.Fatalf("value %v, want 9997", v)
		}
	}
}

// BenchmarkGetMetricsCached is the common path: the reading is in the
// cache, PostgreSQL is not asked.
func BenchmarkGetMetricsCached(b *testing.B) {
	benchmarkGetMetrics(b, scalertest.Options{CacheTTL: time.Hour})
}

// BenchmarkGetMetricsUncached asks PostgreSQL on every call: acquire,
// begin read only with the statement timeout, the count, rollback (three
// round trips over loopback, plus the count itself).
func BenchmarkGetMetricsUncached(b *testing.B) {
	benchmarkGetMetrics(b, scalertest.Options{CacheTTL: -1})
}

// BenchmarkQuerier is the querier alone, without gRPC and the cache, on a
// trivial statement: the cost of the guard's round trips.
func BenchmarkQuerier(b *testing.B) {
	e := newEnv(b, sharedPostgres(b), nil, scalertest.Options{})
	q := e.querier(5 * time.Second)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := q.Query(ctx, "select 1", nil, func(any) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
