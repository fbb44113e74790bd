package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
)

// mb is one mebibyte.
const mb = 1 << 20

// cases are the attacks of issue 8, then the cross-tenant cases of issue 14.
func cases() []*abuseCase {
	return append(hostileCases(), crossTenantCases()...)
}

// hostileCases are the attacks of issue 8, at ten times its counts where
// that still runs in a few minutes on two cores.
func hostileCases() []*abuseCase {
	return []*abuseCase{
		{
			name: "redis-databaseindex", service: "redis-session",
			what:  "GetMetrics (mode dbsize) with a distinct databaseIndex each, 64 at a time",
			count: 100_000, limit: 30 * time.Second,
			attack: func(ctx context.Context, a *attack) {
				a.sent(a.fanout(ctx, a.n, 64, func(ctx context.Context, i int) error {
					return a.getMetrics(ctx, i, map[string]string{"mode": "dbsize", "databaseIndex": strconv.Itoa(i)})
				}))
			},
		},
		{
			name: "redis-sessionsizekey", service: "redis-session",
			what:  "GetMetricSpec with a distinct sessionSizeKey each (a background target reader each), then a hold",
			count: 100_000, limit: 30 * time.Second,
			attack: func(ctx context.Context, a *attack) {
				a.sent(a.fanout(ctx, a.n, 64, func(ctx context.Context, i int) error {
					_, err := a.client.GetMetricSpec(ctx, ref(i, map[string]string{
						"mode": "set", "key": "hostile:sessions", "sessionSizeKey": fmt.Sprintf("hostile:target:%d", i),
					}))
					return err
				}))
				sleep(ctx, a.hold)
				if ops, err := a.backend.(*redisBackend).opsPerSec(context.Background()); err == nil {
					a.res.note("Redis ops/s %v after the last call: %d", a.hold.Round(time.Second), ops)
				}
			},
		},
		{
			name: "redis-streams", service: "redis-session",
			what:  "StreamIsActive streams with a distinct question each (mode set, key hostile:N), held open",
			count: 10_000, limit: 60 * time.Second,
			attack: func(ctx context.Context, a *attack) {
				a.streams(ctx, func(i int) map[string]string {
					return map[string]string{"mode": "set", "key": fmt.Sprintf("hostile:stream:%d", i)}
				})
				if ops, err := a.backend.(*redisBackend).opsPerSec(context.Background()); err == nil {
					a.res.note("Redis ops/s with the streams open: %d", ops)
				}
			},
		},
		badMetadata("redis-bad-metadata", "redis-session", map[string]string{"mode": "set", "key": "k"}, "sessionSize"),
		{
			name: "grpc-raw-tcp", service: "redis-session",
			what:  "raw TCP connections to GRPC_ADDR that never send the HTTP/2 preface, held 25 s",
			count: 10_000, limit: 60 * time.Second,
			attack: rawConnections,
			checks: []func(*result) string{func(r *result) string {
				if held, dialed := r.values["held"], r.values["dialed"]; dialed > 0 && held > dialed/10 {
					return fmt.Sprintf("%.0f of %.0f raw connections still held after 25s", held, dialed)
				}
				return ""
			}},
		},
		{
			name: "pg-slow-targets", service: "postgres-query",
			what:  "GetMetricSpec with a distinct slow targetQuery each (select pg_sleep(3.9), N), then a hold",
			count: 200, limit: 30 * time.Second,
			attack: func(ctx context.Context, a *attack) {
				a.sent(a.fanout(ctx, a.n, 16, func(ctx context.Context, i int) error {
					_, err := a.client.GetMetricSpec(ctx, ref(i, map[string]string{
						"query": fmt.Sprintf("select %d", i), "targetQueryValue": "1",
						"targetQuery": fmt.Sprintf("select pg_sleep(3.9), %d", i),
					}))
					return err
				}))
				sleep(ctx, a.hold)
			},
		},
		distinctQueries("pg-big-queries",
			"GetMetrics with a distinct ~1 MB query each (select length('x...') + N), 8 at a time",
			4_000, func(i int) string {
				return fmt.Sprintf("select length('%s') + %d", strings.Repeat("x", mb-64), i)
			}),
		distinctQueries("pg-distinct-queries",
			"GetMetrics with a distinct ~7 KB query each (select N union all select 1 ... x 370: a large plan), 8 at a time",
			4_000, func(i int) string {
				return fmt.Sprintf("select sum(x) from (select %d as x%s) t", i, strings.Repeat(" union all select 1", 370))
			}),
		{
			name: "pg-huge-value", service: "postgres-query",
			what:  "GetMetrics select repeat('x', 60000000 + N), all at once",
			count: 10, limit: 60 * time.Second,
			attack: func(ctx context.Context, a *attack) {
				a.sent(a.fanout(ctx, a.n, a.n, func(ctx context.Context, i int) error {
					return a.getMetrics(ctx, i, map[string]string{
						"query": fmt.Sprintf("select repeat('x', 60000000 + %d)", i), "targetQueryValue": "1",
					})
				}))
			},
		},
		{
			name: "pg-big-values", service: "postgres-query",
			what:  "GetMetrics select repeat(repeat('x', 10000), 1000 + N): ~10 MB values, cheap to make, 10 at a time",
			count: 100, limit: 60 * time.Second,
			attack: func(ctx context.Context, a *attack) {
				a.sent(a.fanout(ctx, a.n, 10, func(ctx context.Context, i int) error {
					return a.getMetrics(ctx, i, map[string]string{
						"query": fmt.Sprintf("select repeat(repeat('x', 10000), 1000 + %d)", i), "targetQueryValue": "1",
					})
				}))
			},
		},
		badMetadata("pg-bad-metadata", "postgres-query", map[string]string{"query": "select 1"}, "targetQueryValue"),
		{
			name: "pg-metadata-over-limit", service: "postgres-query",
			what:  "GetMetrics with a distinct 40 KB query each: over MAX_METADATA_BYTES (16 KiB), under the gRPC message limit",
			count: 100, limit: 30 * time.Second,
			attack: func(ctx context.Context, a *attack) {
				a.sent(a.fanout(ctx, a.n, 4, func(ctx context.Context, i int) error {
					return a.getMetrics(ctx, i, map[string]string{
						"query": fmt.Sprintf("select %d + length('%s')", i, strings.Repeat("x", 40<<10)), "targetQueryValue": "1",
					})
				}))
			},
			checks: []func(*result) string{allCodes(codes.InvalidArgument), messagesContain("MAX_METADATA_BYTES")},
		},
		{
			name: "pg-nul-byte", service: "postgres-query",
			what:  "GetMetrics with a NUL byte in query (select 1 -- \\x00 N)",
			count: 100, limit: 30 * time.Second,
			attack: func(ctx context.Context, a *attack) {
				a.sent(a.fanout(ctx, a.n, 4, func(ctx context.Context, i int) error {
					return a.getMetrics(ctx, i, map[string]string{
						"query": fmt.Sprintf("select %d -- \x00", i), "targetQueryValue": "1",
					})
				}))
			},
			checks: []func(*result) string{allCodes(codes.InvalidArgument)},
		},
		{
			name: "pg-listen-channels", service: "postgres-query",
			what:  "StreamIsActive with a distinct notifyChannel each, more than POSTGRES_MAX_LISTEN_CHANNELS (8), held open",
			count: 100, limit: 60 * time.Second,
			min: 20, // past POSTGRES_MAX_LISTEN_CHANNELS in a quick run too
			attack: func(ctx context.Context, a *attack) {
				a.streams(ctx, func(i int) map[string]string {
					return map[string]string{
						"query": fmt.Sprintf("select %d", i), "targetQueryValue": "1",
						"notifyChannel": fmt.Sprintf("hostile_%d", i),
					}
				})
			},
			checks: []func(*result) string{func(r *result) string {
				if rate := r.values["warnPerSec"]; rate > 1 {
					return fmt.Sprintf("%.1f WARN or ERROR lines/s in the second half of the hold", rate)
				}
				return ""
			}},
		},
		{
			name: "pg-shutdown", service: "postgres-query",
			what: "SIGTERM with pg_sleep(60) queries in flight; SHUTDOWN_TIMEOUT=2s BACKEND_TIMEOUT=60s QUERY_TIMEOUT=30s",
			env:  []string{"SHUTDOWN_TIMEOUT=2s", "BACKEND_TIMEOUT=60s", "QUERY_TIMEOUT=30s"},
			// Not the default settings, and the sleeps hold the pool: the
			// innocent's aim does not apply; the exit time does.
			noInnocentAim: true,
			count:         10, limit: 10 * time.Second,
			attack: func(ctx context.Context, a *attack) {
				for i := range a.n {
					a.wg.Add(1)
					go func() {
						defer a.wg.Done()
						// Outlives the attack on purpose: in flight at SIGTERM.
						cctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
						defer cancel()
						a.record(a.getMetrics(cctx, i, map[string]string{
							"query": fmt.Sprintf("select pg_sleep(60), %d", i), "targetQueryValue": "1",
						}))
					}()
				}
				a.sent(a.n)
				sleep(ctx, 2*time.Second)
				conns, _, _ := a.backend.sample(ctx)
				a.res.note("%d scaler sessions in PostgreSQL at SIGTERM", conns)
			},
		},
		{
			name: "pg-superuser", service: "postgres-query",
			what:      "start as the superuser without POSTGRES_ALLOW_SUPERUSER (want a refusal); if it starts, dblink_exec a write",
			superuser: true, expectRefusal: true,
			count: 1, limit: 20 * time.Second,
			attack: dblinkWrite,
			checks: []func(*result) string{func(r *result) string {
				if r.values["refused"] != 1 {
					return "started as a superuser without POSTGRES_ALLOW_SUPERUSER=true"
				}
				return ""
			}},
		},
		{
			name: "pg-superuser-allowed", service: "postgres-query",
			what:      "POSTGRES_ALLOW_SUPERUSER=true as the superuser: does READ ONLY stop dblink_exec? (informative)",
			env:       []string{"POSTGRES_ALLOW_SUPERUSER=true"},
			superuser: true,
			count:     1, limit: 20 * time.Second,
			attack: dblinkWrite,
		},
	}
}
