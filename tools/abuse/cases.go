package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// mb is one mebibyte.
const mb = 1 << 20

// cases are the attacks of issue 8, at ten times its counts where that
// still runs in a few minutes on two cores.
func cases() []*abuseCase {
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

// distinctQueries is a case asking count distinct queries (query(i)), 8 at
// a time for at most 60 s, checking that PostgreSQL's server processes do
// not grow by more than 64 MB after the first 40 queries, and counting the
// queries refused as too large.
func distinctQueries(name, what string, count int, query func(i int) string) *abuseCase {
	return &abuseCase{
		name: name, service: "postgres-query", what: what,
		count: count, limit: 60 * time.Second,
		attack: func(ctx context.Context, a *attack) {
			call := func(ctx context.Context, i int) error {
				return a.getMetrics(ctx, i, map[string]string{"query": query(i), "targetQueryValue": "1"})
			}
			warm := max(1, min(40, a.n/10))
			sent := a.fanout(ctx, warm, 8, call)
			a.mark(ctx, "warm")
			a.value("warmQueries", float64(sent))
			sent += a.fanout(ctx, a.n-warm, 8, func(ctx context.Context, i int) error { return call(ctx, warm+i) })
			a.sent(sent)
			a.res.note("refused as too large (InvalidArgument, or ResourceExhausted from the transport): %d of %d",
				a.res.codes[codes.InvalidArgument]+a.res.codes[codes.ResourceExhausted], sent)
		},
		checks: []func(*result) string{func(r *result) string {
			warm, ok := r.marks["warm"]
			if !ok {
				return ""
			}
			if grew := r.endMem - warm; grew > 64*mb {
				return fmt.Sprintf("PostgreSQL backends grew %d MB after the first %.0f queries", grew/mb, r.values["warmQueries"])
			}
			return ""
		}},
	}
}

// badMetadata is a case sending a 1 MB invalid value for key.
func badMetadata(name, service string, base map[string]string, key string) *abuseCase {
	return &abuseCase{
		name: name, service: service,
		what:  fmt.Sprintf("GetMetrics with a 1 MB invalid %s (status message and log must stay small)", key),
		count: 20, limit: 30 * time.Second,
		attack: func(ctx context.Context, a *attack) {
			before := a.scaler.logSize()
			var longest atomic.Int64
			sent := a.fanout(ctx, a.n, 2, func(ctx context.Context, i int) error {
				md := map[string]string{key: strings.Repeat("x", mb)}
				for k, v := range base {
					md[k] = v
				}
				err := a.getMetrics(ctx, i, md)
				if l := int64(len(status.Convert(err).Message())); l > longest.Load() {
					longest.Store(l)
				}
				return err
			})
			a.sent(sent)
			time.Sleep(200 * time.Millisecond) // let the log reach the file
			grew := a.scaler.logSize() - before
			a.value("longestMessage", float64(longest.Load()))
			a.value("logPerCall", float64(grew)/float64(max(1, sent)))
			a.res.note("longest status message %d bytes; log grew %d bytes over %d calls", longest.Load(), grew, sent)
		},
		checks: []func(*result) string{
			// A megabyte may be refused by the transport before the metadata
			// check (GRPC_MAX_RECV_MSG_BYTES): ResourceExhausted.
			allCodes(codes.InvalidArgument, codes.ResourceExhausted),
			func(r *result) string {
				if l := r.values["longestMessage"]; l > 1024 {
					return fmt.Sprintf("status message %.0f bytes > 1 KiB", l)
				}
				return ""
			},
			func(r *result) string {
				if l := r.values["logPerCall"]; l > 4096 {
					return fmt.Sprintf("log grew %.0f bytes per call > 4 KiB", l)
				}
				return ""
			},
		},
	}
}

// allCodes is a check that every call got one of the codes want.
func allCodes(want ...codes.Code) func(*result) string {
	return func(r *result) string {
		for c, n := range r.codes {
			if n > 0 && !slices.Contains(want, c) {
				names := make([]string, len(want))
				for i, w := range want {
					names[i] = w.String()
				}
				return fmt.Sprintf("want every call %s, got %s", strings.Join(names, " or "), codeString(r.codes))
			}
		}
		return ""
	}
}

// messagesContain is a check that every error message sampled contains s.
func messagesContain(s string) func(*result) string {
	return func(r *result) string {
		for c, m := range r.codeSamples {
			if !strings.Contains(m, s) {
				return fmt.Sprintf("the %s message does not name %s: %q", c, s, clip(m, 100))
			}
		}
		return ""
	}
}

// sent records how many calls the attack made.
func (a *attack) sent(n int) { a.value("sent", float64(n)) }

// streams opens a.n StreamIsActive streams, 64 at a time, each with the
// metadata md(i), waits up to 20 s for each one's first message, holds them
// for a.hold, and counts WARN and ERROR lines in the scaler's log during the second
// half of the hold (value warnPerSec).
func (a *attack) streams(ctx context.Context, md func(i int) map[string]string) {
	const firstWithin = 20 * time.Second
	var readers sync.WaitGroup
	defer readers.Wait() // runs last: after closeAll
	holdCtx, closeAll := context.WithCancel(ctx)
	defer closeAll()
	var opened atomic.Int64
	open := func(ctx context.Context, i int) error {
		// The stream is opened in the reader too: past a server's cap on
		// concurrent streams, opening itself waits.
		sctx, cancel := context.WithCancel(holdCtx)
		first := make(chan error, 1)
		readers.Add(1)
		go func() {
			defer readers.Done()
			defer cancel()
			st, err := a.client.StreamIsActive(sctx, ref(i, md(i)))
			if err == nil {
				_, err = st.Recv()
			}
			first <- err
			for err == nil {
				_, err = st.Recv()
			}
		}()
		select {
		case err := <-first:
			if err == nil {
				opened.Add(1)
			}
			return err
		case <-time.After(firstWithin):
			cancel()
			return status.Errorf(codes.DeadlineExceeded, "no first message within %v", firstWithin)
		case <-ctx.Done():
			cancel()
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	openCtx, stopOpening := context.WithTimeout(ctx, a.limit/2)
	a.sent(a.fanout(openCtx, a.n, 64, open))
	stopOpening()
	a.value("opened", float64(opened.Load()))
	a.res.note("%d of %d streams got their first message", opened.Load(), a.n)
	// Each half of the hold spans more than a PUSH_INTERVAL (5 s), also in
	// a quick run, so that a warning repeated per re-check shows.
	half := max(a.hold/2, 6*time.Second)
	sleep(ctx, half)
	w0 := warnLines(a.scaler.logBytes())
	t0 := time.Now()
	sleep(ctx, half)
	w1 := warnLines(a.scaler.logBytes())
	rate := float64(w1-w0) / max(time.Since(t0).Seconds(), 0.001)
	a.value("warnPerSec", rate)
	a.res.note("WARN and ERROR lines in the log: %d by the middle of the hold, %.1f/s after", w0, rate)
}

// rawConnections opens a.n TCP connections to the gRPC port that never
// send anything, and counts how many the server closes within 25 s.
func rawConnections(ctx context.Context, a *attack) {
	const hold = 25 * time.Second
	var (
		mu     sync.Mutex
		conns  []net.Conn
		dialEr int
		sample string
	)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dialCtx, stop := context.WithTimeout(ctx, 20*time.Second)
	var wg sync.WaitGroup
	next := make(chan struct{})
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: 2 * time.Second}
			for range next {
				c, err := d.DialContext(dialCtx, "tcp", a.scaler.grpcAddr)
				mu.Lock()
				if err != nil {
					dialEr++
					if sample == "" {
						sample = err.Error()
					}
				} else {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		}()
	}
dial:
	for range a.n {
		select {
		case next <- struct{}{}:
		case <-dialCtx.Done():
			break dial
		}
	}
	close(next)
	wg.Wait()
	stop()
	a.sent(len(conns) + dialEr)
	// Read until the server closes (the server sends its SETTINGS first).
	end := time.Now().Add(hold)
	var closed atomic.Int64
	var readers sync.WaitGroup
	for _, c := range conns {
		readers.Add(1)
		go func() {
			defer readers.Done()
			_ = c.SetReadDeadline(end)
			_, err := io.Copy(io.Discard, c)
			var ne net.Error
			if !(errors.As(err, &ne) && ne.Timeout()) {
				closed.Add(1)
			}
		}()
	}
	readers.Wait()
	dialed := float64(len(conns))
	a.value("dialed", dialed)
	a.value("held", dialed-float64(closed.Load()))
	a.res.note("%d connections dialed (%d dial errors%s); %d closed by the server within %v",
		len(conns), dialEr, map[bool]string{true: ": " + sample}[sample != ""], closed.Load(), hold)
}

// dblinkWrite asks, as a superuser's scaler, a query whose dblink_exec
// writes through another session, and says whether the write got through.
func dblinkWrite(ctx context.Context, a *attack) {
	pg := a.backend.(*pgBackend)
	q := fmt.Sprintf(`select * from dblink_exec('host=127.0.0.1 port=%s dbname=postgres user=postgres', 'create table abuse_dblink_wrote (x int)')`,
		pg.srv.Addr()[strings.LastIndexByte(pg.srv.Addr(), ':')+1:])
	a.sent(a.fanout(ctx, 1, 1, func(ctx context.Context, i int) error {
		return a.getMetrics(ctx, i, map[string]string{"query": q, "targetQueryValue": "1"})
	}))
	if wrote, err := pg.tableExists(ctx, "abuse_dblink_wrote"); err == nil {
		a.res.note("dblink_exec from the read-only transaction created a table: %v", wrote)
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
