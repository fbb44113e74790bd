package postgresquery

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
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

// BenchmarkPollWarm is one KEDA poll, GetMetrics then IsActive, with the
// reading in the cache: the hot path (tools/pollbench measures the server
// alone, against a bare gRPC server).
func BenchmarkPollWarm(b *testing.B) {
	e := newEnv(b, sharedPostgres(b), nil, scalertest.Options{CacheTTL: time.Hour})
	e.s.BenchmarkWarmPoll(b, map[string]string{"query": confirmed, "targetQueryValue": "100"}, "query_value")
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

// BenchmarkDistinctQueries runs n distinct one-off queries of size bytes
// each, on a pool of one connection, and reports what they left behind:
// the growth of that PostgreSQL session's memory
// (pg_backend_memory_contexts) and of the scaler's live heap (after a
// GC). "cache_statement" is pgx's default mode with its statement cache,
// for comparison: what the scaler did before.
//
//	go test -run '^$' -bench DistinctQueries -benchtime 1x ./postgresquery
func BenchmarkDistinctQueries(b *testing.B) {
	for _, bc := range []struct {
		name    string
		n, size int
		cached  bool
	}{
		{"200x64KiB", 200, 64 << 10, false},
		{"400x256KiB", 400, 256 << 10, false},
		{"200x64KiB/cache_statement", 200, 64 << 10, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnv(b, sharedPostgres(b), func(c *Config) {
				c.MaxConns = 1
				c.MaxQueryBytes = 1 << 20
			}, scalertest.Options{})
			querier := NewQuerier(e.b.pools.Value[sqlmetric.DefaultConnection], 5*time.Second)
			if bc.cached {
				pc := e.b.pools.Value[sqlmetric.DefaultConnection].Config().Copy()
				pc.ConnConfig.StatementCacheCapacity = 512
				pool := newPool(b, pc)
				querier = NewQuerier(pool, 5*time.Second)
				querier.mode = pgx.QueryExecModeCacheStatement
			}
			ctx := context.Background()
			number := func(sql string) float64 {
				var v float64
				if err := querier.Query(ctx, sql, nil, func(first any) error {
					v, _ = Convert(first)
					return nil
				}); err != nil {
					b.Fatal(err)
				}
				return v
			}
			heap := func() uint64 {
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				return ms.HeapAlloc
			}
			const memory = "select sum(total_bytes) from pg_backend_memory_contexts"
			for b.Loop() {
				pid := number("select pg_backend_pid()")
				backendBefore, heapBefore := number(memory), heap()
				pad := strings.Repeat("x", bc.size)
				for i := range bc.n {
					number(fmt.Sprintf("select %d + 0 -- %s", i, pad))
				}
				backendAfter, heapAfter := number(memory), heap()
				if number("select pg_backend_pid()") != pid {
					b.Fatal("the session changed: the measure means nothing")
				}
				b.ReportMetric((backendAfter-backendBefore)/(1<<20), "backend-MiB-grown")
				b.ReportMetric(float64(int64(heapAfter)-int64(heapBefore))/(1<<20), "heap-MiB-grown")
				b.ReportMetric(number("select count(*) from pg_prepared_statements"), "prepared-left")
			}
		})
	}
}

// BenchmarkHugeValue reads select repeat('x', 60000000) through the
// trigger's path: with MAX_ROW_BYTES at its default (1 MiB) it is refused
// from the message header; at 64 MiB (the largest allowed) the value is
// read whole, for comparison. B/op is what the scaler allocated for it;
// peak-heap-MiB the largest heap seen while it ran.
//
//	go test -run '^$' -bench HugeValue -benchtime 3x ./postgresquery
func BenchmarkHugeValue(b *testing.B) {
	for _, bc := range []struct {
		name string
		max  int
	}{{"MAX_ROW_BYTES=1MiB", 1 << 20}, {"MAX_ROW_BYTES=64MiB", 64 << 20}} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnv(b, sharedPostgres(b), func(c *Config) {
				c.MaxRowBytes = bc.max
				c.QueryTimeout = 30 * time.Second
			}, scalertest.Options{})
			tr, err := e.b.Parse(metadata.NewParser(map[string]string{"query": "select repeat('x', 60000000)", "targetQueryValue": "1"}))
			must(b, err)
			var peak atomic.Uint64
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				t := time.NewTicker(time.Millisecond)
				defer t.Stop()
				for {
					var ms runtime.MemStats
					runtime.ReadMemStats(&ms)
					if ms.HeapAlloc > peak.Load() {
						peak.Store(ms.HeapAlloc)
					}
					select {
					case <-stop:
						return
					case <-t.C:
					}
				}
			}()
			runtime.GC()
			b.ReportAllocs()
			for b.Loop() {
				_, err := tr.Probe.Read(context.Background())
				if bc.max < 60000000 && status.Code(err) != codes.ResourceExhausted {
					b.Fatalf("read = %v, want ResourceExhausted", err)
				}
				if bc.max >= 60000000 && err != nil {
					b.Fatal(err)
				}
			}
			close(stop)
			<-sampled
			b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
		})
	}
}

// BenchmarkPushLatencyNotify measures the scaler's own part of an
// activation by push: from a transaction that inserts a waiting booking
// and sends NOTIFY to StreamIsActive sending true, with a 30 s push
// interval. Each trial starts after a quiet spell longer than the feed's
// throttle. p50-ms and p99-ms are what to read: ns/op is a whole trial,
// its quiet spell and the way back to inactive included, so the default
// -benchtime makes only about ten trials; -benchtime 200x makes enough
// for a p99.
func BenchmarkPushLatencyNotify(b *testing.B) {
	e := newEnv(b, sharedPostgres(b), nil, scalertest.Options{PushInterval: 30 * time.Second})
	ch := e.waitingBookings(b)
	var took []time.Duration
	for b.Loop() {
		time.Sleep(100 * time.Millisecond) // quiet: past the feed's 50 ms throttle
		start := time.Now()
		exec(b, e.db, "insert into bookings (status, seats) values ('waiting', 2); notify bookings")
		if !scalertest.Next(b, ch, 5*time.Second, "after NOTIFY") {
			b.Fatal("false after a waiting booking came")
		}
		took = append(took, time.Since(start))
		exec(b, e.db, "update bookings set status = 'confirmed' where status = 'waiting'; notify bookings")
		if scalertest.Next(b, ch, 5*time.Second, "after the second NOTIFY") {
			b.Fatal("true after the waiting booking left")
		}
	}
	scalertest.ReportLatency(b, took)
}
