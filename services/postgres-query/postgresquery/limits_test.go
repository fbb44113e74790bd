package postgresquery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"

	"github.com/kedascalers/kedascalers/libs/scalerkit"
	"github.com/kedascalers/kedascalers/libs/scalerkit/config"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
)

// padded returns a query of exactly n bytes: select 1, then a comment.
func padded(n int) string {
	q := "select 1 --"
	return q + strings.Repeat("x", n-len(q))
}

// TestMaxQueryBytes: a query of MAX_QUERY_BYTES runs, one byte more is
// InvalidArgument naming the key, the limit and the variable; so is a
// parameter value.
func TestMaxQueryBytes(t *testing.T) {
	t.Parallel()
	const limit = 1000
	e := newEnv(t, sharedPostgres(t), func(c *Config) {
		c.MaxQueryBytes = limit
		c.Queries = `{"byStatus": {"sql": "select count(*) from bookings where status = $1", "params": ["status"]}}`
	}, scalertest.Options{})
	ctx := scalertest.Context(t, 20*time.Second)

	v, err := e.s.GetMetrics(ctx, map[string]string{"query": padded(limit), "targetQueryValue": "1"}, "query_value")
	if err != nil || v != 1 {
		t.Errorf("query of %d bytes = %v, %v; want 1", limit, v, err)
	}
	_, err = e.s.GetMetrics(ctx, map[string]string{"query": padded(limit + 1), "targetQueryValue": "1"}, "query_value")
	scalertest.WantStatus(t, err, codes.InvalidArgument, `"query"`, "at most 1000 bytes (MAX_QUERY_BYTES), not 1001")
	if len(err.Error()) > 600 {
		t.Errorf("the error echoes %d bytes: %s", len(err.Error()), err)
	}
	_, err = e.s.Client.GetMetricSpec(ctx, scalertest.Ref(map[string]string{"query": "select 1", "targetQuery": padded(limit + 1), "targetQueryValue": "1"}))
	scalertest.WantStatus(t, err, codes.InvalidArgument, `"targetQuery"`, "MAX_QUERY_BYTES")

	status := strings.Repeat("z", limit)
	v, err = e.s.GetMetrics(ctx, map[string]string{"queryName": "byStatus", "param.status": status, "targetQueryValue": "1"}, "query_value")
	if err != nil || v != 0 {
		t.Errorf("parameter of %d bytes = %v, %v; want 0 (no such status)", limit, v, err)
	}
	_, err = e.s.GetMetrics(ctx, map[string]string{"queryName": "byStatus", "param.status": status + "z", "targetQueryValue": "1"}, "query_value")
	scalertest.WantStatus(t, err, codes.InvalidArgument, `"param.status"`, "MAX_QUERY_BYTES")
}

// TestUnsendableText: a NUL byte in a query or a parameter is
// InvalidArgument before it reaches PostgreSQL, and no connection is
// dropped for it. (Invalid UTF-8 cannot come through gRPC, whose strings
// are UTF-8: sqlmetric's tests cover it.)
func TestUnsendableText(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPostgres(t), func(c *Config) {
		c.Queries = `{"byStatus": {"sql": "select count(*) from bookings where status = $1", "params": ["status"]}}`
		c.MaxConns = 1
	}, scalertest.Options{})
	ctx := scalertest.Context(t, 20*time.Second)
	pid := func() int {
		v, err := e.s.GetMetrics(ctx, map[string]string{"query": "select pg_backend_pid()", "targetQueryValue": "1"}, "query_value")
		must(t, err)
		return int(v)
	}
	before := pid()
	tests := []struct {
		name string
		md   map[string]string
		want []string
	}{
		{"NUL in query", map[string]string{"query": "select 1 \x00 from bookings"}, []string{`"query"`, `\x00`, "NUL"}},
		{"NUL in parameter", map[string]string{"queryName": "byStatus", "param.status": "con\x00firmed"}, []string{`"param.status"`, "NUL"}},
		{"NUL in targetQuery", map[string]string{"query": "select 1", "targetQuery": "select 2\x00"}, []string{`"targetQuery"`, "NUL"}},
	}
	for _, tt := range tests {
		tt.md["targetQueryValue"] = "1"
		_, err := e.s.GetMetrics(ctx, tt.md, "query_value")
		scalertest.WantStatus(t, err, codes.InvalidArgument, tt.want...)
	}
	if after := pid(); after != before {
		t.Errorf("the connection was replaced (backend %d, then %d)", before, after)
	}
}

// TestMaxRowBytes: a row of MAX_ROW_BYTES is read, one byte more is
// ResourceExhausted naming the variable, refused from the message's
// header; the connection is replaced and the next query works.
func TestMaxRowBytes(t *testing.T) {
	t.Parallel()
	const limit = 4096
	e := newEnv(t, sharedPostgres(t), func(c *Config) {
		c.MaxRowBytes = limit
		c.QueryTimeout = 20 * time.Second // repeat('x', 60000000) takes seconds on a busy machine
	}, scalertest.Options{BackendTimeout: 30 * time.Second})
	ctx := scalertest.Context(t, 60*time.Second)
	// A DataRow of one column: 2 bytes of column count, 4 of length, then
	// the value.
	row := func(n int) map[string]string {
		return map[string]string{"query": fmt.Sprintf("select repeat('x', %d)", n-6), "targetQueryValue": "1"}
	}
	v, err := e.s.GetMetrics(ctx, row(limit), "query_value")
	if err != nil || v != 1 {
		t.Errorf("row of %d bytes = %v, %v; want 1 (one row, not a number)", limit, v, err)
	}
	_, err = e.s.GetMetrics(ctx, row(limit+1), "query_value")
	scalertest.WantStatus(t, err, codes.ResourceExhausted, "4097 bytes", "MAX_ROW_BYTES=4096")
	// BenchmarkHugeValue measures 60 MB against the default; 10 MB here
	// spares the shared server.
	_, err = e.s.GetMetrics(ctx, map[string]string{"query": "select repeat('x', 10000000)", "targetQueryValue": "1"}, "query_value")
	scalertest.WantStatus(t, err, codes.ResourceExhausted, "MAX_ROW_BYTES")
	v, err = e.s.GetMetrics(ctx, map[string]string{"query": confirmed, "targetQueryValue": "1"}, "query_value")
	if err != nil || v != 3 {
		t.Errorf("the next query = %v, %v; want 3", v, err)
	}
}

// TestTargetPoolIsolation: twenty slow target queries wait for their own
// pool (POSTGRES_MAX_TARGET_CONNS) and never delay another tenant's value
// read.
func TestTargetPoolIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPostgres(t), func(c *Config) {
		c.MaxConns = 2
		c.MaxTargetConns = 1
		c.QueryTimeout = 3 * time.Second
	}, scalertest.Options{})
	ctx := scalertest.Context(t, 60*time.Second)
	for i := range 20 {
		md := map[string]string{"query": "select 1", "targetQuery": fmt.Sprintf("select pg_sleep(1.5), %d", i), "targetQueryValue": "1"}
		if _, err := e.s.Client.GetMetricSpec(ctx, scalertest.Ref(md)); err != nil {
			t.Fatalf("GetMetricSpec %d: %v", i, err)
		}
	}
	sleeping := func() int {
		return count(t, e.db, "select count(*) from pg_stat_activity where query like 'select pg_sleep(1.5)%' and state = 'active'")
	}
	if err := wait.Until(5*time.Second, func() error {
		if sleeping() == 0 {
			return errors.New("no target query running yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		start := time.Now()
		v, err := e.s.GetMetrics(ctx, map[string]string{"query": fmt.Sprintf("select %d + 0", i), "targetQueryValue": "1"}, "query_value")
		if d := time.Since(start); err != nil || v != float64(i) || d > time.Second {
			t.Errorf("value read %d while target reads wait: %v, %v after %v; want %d within 1s", i, v, err, d, i)
		}
		if n := sleeping(); n > 1 {
			t.Errorf("%d target queries run at once, want at most POSTGRES_MAX_TARGET_CONNS (1)", n)
		}
	}
	if n := count(t, e.db, "select count(*) from pg_stat_activity where application_name = $1", AppName+TargetSuffix); n > 1 {
		t.Errorf("%d target sessions, want at most 1", n)
	}
}

// TestSuperuserRefused: a superuser or BYPASSRLS role stops the start
// with the reason, unless POSTGRES_ALLOW_SUPERUSER is set; a plain role
// starts.
func TestSuperuserRefused(t *testing.T) {
	t.Parallel()
	pg := sharedPostgres(t)
	url := newDatabase(t, pg)
	db := connect(t, url)
	suffix := strings.TrimPrefix(url[strings.LastIndex(url, "/")+1:], "test_")
	suffix = strings.TrimSuffix(suffix, "?sslmode=disable")
	bypass, plain := "ks_bypass_"+suffix, "ks_plain_"+suffix
	exec(t, db, fmt.Sprintf("create role %s login bypassrls; create role %s login", bypass, plain))
	t.Cleanup(func() {
		admin := connect(t, pg.URL())
		exec(t, admin, fmt.Sprintf("drop owned by %s, %s cascade", bypass, plain))
	})
	as := func(role string) string {
		return strings.Replace(url, "postgres://postgres@", "postgres://"+role+"@", 1)
	}

	tests := []struct {
		name  string
		url   string
		allow bool
		want  string // "" starts
	}{
		{"superuser", url, false, `role "postgres" is a superuser`},
		{"bypassrls", as(bypass), false, "bypasses row security"},
		{"superuser allowed", url, true, ""},
		{"bypassrls allowed (no warning: no query when allowed)", as(bypass), true, ""},
		{"plain role", as(plain), false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(tt.url)
			cfg.AllowSuperuser = tt.allow
			b, err := New(context.Background(), settings(t, cfg), scalerkit.Env{Log: quiet})
			if err == nil {
				_ = b.Close()
			}
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("New = %v, want it to start", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) ||
				!strings.Contains(err.Error(), "POSTGRES_ALLOW_SUPERUSER") || !strings.Contains(err.Error(), "POSTGRES_URL")):
				t.Errorf("New = %v, want a refusal saying %q and naming POSTGRES_URL and POSTGRES_ALLOW_SUPERUSER", err, tt.want)
			case tt.want != "" && !errors.As(err, new(*config.InvalidError)):
				t.Errorf("New = %v: want a configuration error (exit status 2)", err)
			}
		})
	}
}

// TestSuperuserRefusedAfterStart: a database that was down at start is
// checked on its first connection: a superuser is FailedPrecondition.
func TestSuperuserRefusedAfterStart(t *testing.T) {
	t.Parallel()
	pg := sharedPostgres(t)
	url := newDatabase(t, pg)
	cfg := testConfig(url)
	cfg.AllowSuperuser = false
	// A pool as New builds it, without the start check, as if the
	// database had been down then.
	pc := settings(t, cfg).pools[sqlmetric.DefaultConnection].config.Copy()
	pc.AfterConnect = checkRole(false, quiet)
	pool := newPool(t, pc)
	q := NewQuerier(pool, cfg.QueryTimeout)
	err := q.Query(scalertest.Context(t, 10*time.Second), "select 1", nil, func(any) error { return nil })
	scalertest.WantStatus(t, err, codes.FailedPrecondition, "is a superuser", "POSTGRES_ALLOW_SUPERUSER")
}

// TestMissingRoleOrDatabase: a role or a database that does not exist is
// FailedPrecondition, its reason said once.
func TestMissingRoleOrDatabase(t *testing.T) {
	t.Parallel()
	pg := sharedPostgres(t)
	for _, tt := range []struct{ name, url, want string }{
		{"role", "postgres://nosuchrole@" + pg.Addr() + "/postgres?sslmode=disable", `role "nosuchrole" does not exist`},
		{"database", "postgres://postgres@" + pg.Addr() + "/nosuchdb?sslmode=disable", `database "nosuchdb" does not exist`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(tt.url)
			cfg.ConnectTimeout = 5 * time.Second // a busy machine
			s := scalertest.Serve(t, newBackend(t, cfg), scalertest.Options{})
			_, err := s.GetMetrics(scalertest.Context(t, 10*time.Second), map[string]string{"query": "select 1", "targetQueryValue": "1"}, "query_value")
			scalertest.WantStatus(t, err, codes.FailedPrecondition, tt.want)
			if n := strings.Count(err.Error(), tt.want); n != 1 {
				t.Errorf("the reason is said %d times: %v", n, err)
			}
		})
	}
}

// TestQueryTimeoutBelowBackendTimeout: QUERY_TIMEOUT at or above
// BACKEND_TIMEOUT stops the start.
func TestQueryTimeoutBelowBackendTimeout(t *testing.T) {
	t.Parallel()
	cfg := testConfig("postgres://postgres@127.0.0.1:1/none?sslmode=disable")
	for _, bt := range []time.Duration{cfg.QueryTimeout, cfg.QueryTimeout - time.Millisecond} {
		_, err := cfg.Resolve(config.Config{BackendTimeout: bt})
		if err == nil || !strings.Contains(err.Error(), "QUERY_TIMEOUT=2s is not below BACKEND_TIMEOUT") {
			t.Errorf("BACKEND_TIMEOUT=%v: Resolve = %v, want a refusal naming both", bt, err)
		}
	}
	if _, err := cfg.Resolve(config.Config{BackendTimeout: cfg.QueryTimeout + time.Millisecond}); err != nil {
		t.Errorf("Resolve = %v", err)
	}
}

// TestCloseCancelsQueries: Close does not wait for a query in flight; the
// query ends Unavailable (the scaler is shutting down).
func TestCloseCancelsQueries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPostgres(t), func(c *Config) { c.QueryTimeout = 30 * time.Second }, scalertest.Options{})
	tr, err := e.b.Parse(metadata.NewParser(map[string]string{"query": "select pg_sleep(60)", "targetQueryValue": "1"}))
	must(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := tr.Probe.Read(context.Background())
		done <- err
	}()
	if err := wait.Until(5*time.Second, func() error {
		if count(t, e.db, "select count(*) from pg_stat_activity where query = 'select pg_sleep(60)'") == 0 {
			return errors.New("the query is not running yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	must(t, e.b.Close())
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %v with a query in flight, want it to cancel the query", d)
	}
	select {
	case err := <-done:
		scalertest.WantStatus(t, err, codes.Unavailable, "shutting down")
	case <-time.After(5 * time.Second):
		t.Fatal("the query still runs 5s after Close")
	}
}

// TestOneOffQueriesLeaveNothing: distinct queries leave no prepared
// statement on the session, and the session's memory does not grow with
// their number. The queries are larger than gRPC's MAX_METADATA_BYTES
// allows: they go to the backend directly, as a trigger's probe.
func TestOneOffQueriesLeaveNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPostgres(t), func(c *Config) {
		c.MaxConns = 1
		c.MaxQueryBytes = 64 << 10
	}, scalertest.Options{})
	ctx := scalertest.Context(t, 60*time.Second)
	read := func(sql string) float64 {
		t.Helper()
		tr, err := e.b.Parse(metadata.NewParser(map[string]string{"query": sql, "targetQueryValue": "1"}))
		must(t, err)
		r, err := tr.Probe.Read(ctx)
		must(t, err)
		return r.Value
	}
	memory := "select sum(total_bytes) from pg_backend_memory_contexts"
	pid := read("select pg_backend_pid()")
	before := read(memory)
	for i := range 100 {
		read(fmt.Sprintf("select %d + 0 -- %s", i, strings.Repeat("x", 60<<10)))
	}
	after := read(memory)
	if p := read("select pg_backend_pid()"); p != pid {
		t.Fatalf("the session changed (%v, then %v): the measure means nothing", pid, p)
	}
	if n := read("select count(*) from pg_prepared_statements"); n != 0 {
		t.Errorf("%v prepared statements left on the session, want 0", n)
	}
	// 100 queries of 60 KiB: kept, they would be 6 MB at least.
	if grew := after - before; grew > 1<<20 {
		t.Errorf("the session grew by %.0f bytes over 100 distinct queries, want under 1 MiB", grew)
	}
}

// newPool opens a pool with pc, closed when the test ends.
func newPool(t testing.TB, pc *pgxpool.Config) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.NewWithConfig(context.Background(), pc)
	must(t, err)
	t.Cleanup(p.Close)
	return p
}
