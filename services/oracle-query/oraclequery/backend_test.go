package oraclequery

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx": the backend on PostgreSQL, in the tests only
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
)

// callTimeout bounds each call to the served scaler.
const callTimeout = 20 * time.Second

// trigger is trigger metadata with a target of 10 and the given query.
func trigger(query string, kv ...string) map[string]string {
	m := map[string]string{"query": query, "targetQueryValue": "10", "scalerAddress": "oracle-query.keda:9090"}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestGuardStatement(t *testing.T) {
	if readOnlyStatement != "SET TRANSACTION READ ONLY" {
		t.Errorf("guard statement %q, want SET TRANSACTION READ ONLY", readOnlyStatement)
	}
	f, db := newFakeOracle(t, map[string]fakeAnswer{"select count(*) from ks_bookings": {rows: []any{"3"}}})
	b := newTestBackend(t, sqlDefaults(), map[string]*sql.DB{sqlmetric.DefaultConnection: db}, oracle)
	if err := b.queriers[sqlmetric.DefaultConnection].Query(context.Background(), "select count(*) from ks_bookings", nil,
		func(any) error { return nil }); err != nil {
		t.Fatal(err)
	}
	want := []string{"begin", "SET TRANSACTION READ ONLY", "select count(*) from ks_bookings", "rollback"}
	if got := f.statements(); !slices.Equal(got, want) {
		t.Errorf("statements %q, want %q: the guard first, the query, a rollback, never a commit", got, want)
	}
	for _, o := range f.txOpts {
		if o.ReadOnly {
			t.Errorf("BeginTx with ReadOnly, which go-ora refuses: the guard statement must do it")
		}
	}
}

// TestOracleShapedEndToEnd serves the backend over a driver that answers
// with the Go types and errors go-ora returns, and asks it as KEDA does.
func TestOracleShapedEndToEnd(t *testing.T) {
	f, db := newFakeOracle(t, map[string]fakeAnswer{
		"select count(*) from ks_bookings":                          {rows: []any{"3"}},
		"select sum(price) from ks_bookings":                        {rows: []any{"31.75"}},
		"select sum(seats) from ks_bookings where status = 'none'":  {rows: []any{nil}},
		"select id from ks_bookings where status = 'pending'":       {rows: []any{"4", "5"}},
		"select binary_double_col from ks_settings":                 {rows: []any{2.5}},
		"select name from ks_bookings where id = 1":                 {rows: []any{"Ada"}},
		"select count(*) from all_objects a, all_objects b":         {slow: true},
		"select count(*) from ks_elsewhere":                         {err: oraErr(12541, "TNS:no listener")},
		"select count(*) from ks_secret":                            {err: oraErr(1031, "insufficient privileges")},
		"delete from ks_bookings":                                   {write: true},
		"with d as (select 1 from dual) select count(*) from d":     {rows: []any{"1"}},
		"select count(*) from ks_bookings where status = :1":        {rows: []any{"2"}},
		"select count(*) from ks_bookings where status = 'missing'": {rows: []any{"0"}},
	})
	cfg := sqlDefaults()
	cfg.QueryTimeout = 300 * time.Millisecond
	cfg.Queries = `{"by_status": {"sql": "select count(*) from ks_bookings where status = :1", "params": ["status"]}}`
	b := newTestBackend(t, cfg, map[string]*sql.DB{sqlmetric.DefaultConnection: db}, oracle)
	s := scalertest.Serve(t, b, scalertest.Options{CacheTTL: -1})

	values := map[string]float64{
		"select count(*) from ks_bookings":                         3,
		"select sum(price) from ks_bookings":                       31.75,
		"select sum(seats) from ks_bookings where status = 'none'": 0,
		"select id from ks_bookings where status = 'pending'":      2,
		"select binary_double_col from ks_settings":                2.5,
		"select name from ks_bookings where id = 1":                1,
		"with d as (select 1 from dual) select count(*) from d":    1,
	}
	for q, want := range values {
		p, err := s.Poll(scalertest.Context(t, callTimeout), trigger(q))
		if err != nil || p.Value != want {
			t.Errorf("%s: value %v, %v; want %v", q, p.Value, err, want)
		}
		if p.Active != (want > 0) || p.Target != 10 || p.MetricName != "query_value" {
			t.Errorf("%s: poll %+v", q, p)
		}
	}
	if v, err := s.GetMetrics(scalertest.Context(t, callTimeout), map[string]string{"queryName": "by_status", "param.status": "pending", "targetQueryValue": "1"}, "query_value"); err != nil || v != 2 {
		t.Errorf("named query with a bind parameter: %v, %v; want 2", v, err)
	}

	errs := []struct {
		query string
		code  codes.Code
		want  string
	}{
		{"select count(*) from nowhere", codes.InvalidArgument, "ORA-00942"},
		{"select count(*) from ks_secret", codes.PermissionDenied, "ORA-01031"},
		{"select count(*) from ks_elsewhere", codes.Unavailable, "ORA-12541"},
		{"select count(*) from all_objects a, all_objects b", codes.DeadlineExceeded, "QUERY_TIMEOUT=300ms"},
		{"delete from ks_bookings", codes.InvalidArgument, "SELECT"}, // refused before it reaches the database
	}
	for _, e := range errs {
		start := time.Now()
		_, err := s.GetMetrics(scalertest.Context(t, callTimeout), trigger(e.query), "query_value")
		if status.Code(err) != e.code || !strings.Contains(err.Error(), e.want) {
			t.Errorf("%s: %v, want %v mentioning %s", e.query, err, e.code, e.want)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s took %v", e.query, d)
		}
	}

	f.statements()
	err := b.queriers[sqlmetric.DefaultConnection].Query(context.Background(), "delete from ks_bookings", nil, func(any) error { return nil })
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "READ ONLY") {
		t.Errorf("delete through the querier: %v, want PermissionDenied (ORA-01456)", err)
	}
	if f.writes != 0 {
		t.Errorf("%d writes went through", f.writes)
	}
	if got := f.statements(); slices.Contains(got, "commit") {
		t.Errorf("a transaction was committed: %q", got)
	}
}

// pgDialect runs the Oracle guard (SET TRANSACTION READ ONLY is
// PostgreSQL too) and maps PostgreSQL's read-only refusal the way
// mapError maps ORA-01456; everything else goes to mapError, as on
// Oracle.
var pgDialect = dialect{
	guard: readOnly,
	mapError: func(err error, timeout time.Duration) error {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "25006" { // read_only_sql_transaction
			return status.Errorf(codes.PermissionDenied, "the database refused a write: %v", err)
		}
		return mapError(err, timeout)
	},
}

// openPG opens a pool on pg through pgx's database/sql driver, with the
// service's pool settings, closed when the test ends.
func openPG(t *testing.T, pg *testenv.Postgres) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig("")
	cfg.applyPool(db, cfg.MaxConns)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// TestBackendOnPostgres drives the backend the service builds (its
// sqlmetric.DB, guard, QUERY_TIMEOUT and error mapping) end to end on a
// real database: PostgreSQL, through database/sql like go-ora.
func TestBackendOnPostgres(t *testing.T) {
	pg := testenv.NewPostgres(t)
	admin := openPG(t, pg)
	if _, err := admin.Exec(`
		create table ks_bookings (id int primary key, status text not null, seats int, price numeric(10,2));
		insert into ks_bookings values
		  (1, 'confirmed', 2, 10.50), (2, 'confirmed', 1, 20.25), (3, 'confirmed', 4, 1.00),
		  (4, 'pending', 3, null), (5, 'pending', null, null)`); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		var n int
		if err := admin.QueryRow("select count(*) from ks_bookings").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	cfg := sqlDefaults()
	cfg.QueryTimeout = 500 * time.Millisecond
	cfg.MaxRows = 100
	cfg.Queries = `{"by_status": {"sql": "select count(*) from ks_bookings where status = $1", "params": ["status"]}}`
	b := newTestBackend(t, cfg, map[string]*sql.DB{sqlmetric.DefaultConnection: openPG(t, pg), "reports": openPG(t, pg)}, pgDialect)
	s := scalertest.Serve(t, b, scalertest.Options{CacheTTL: -1})

	t.Run("count", func(t *testing.T) {
		p, err := s.Poll(scalertest.Context(t, callTimeout), trigger("select count(*) from ks_bookings where status = 'confirmed'", "activationTargetQueryValue", "2"))
		if err != nil || p.Value != 3 || !p.Active {
			t.Errorf("poll %+v, %v; want value 3, active", p, err)
		}
	})
	t.Run("row count", func(t *testing.T) {
		p, err := s.Poll(scalertest.Context(t, callTimeout), trigger("select id from ks_bookings where status = 'pending'", "connection", "REPORTS"))
		if err != nil || p.Value != 2 {
			t.Errorf("poll %+v, %v; want 2 rows", p, err)
		}
	})
	t.Run("decimal sum", func(t *testing.T) {
		if v, err := s.GetMetrics(scalertest.Context(t, callTimeout), trigger("select sum(price) from ks_bookings"), "query_value"); err != nil || v != 31.75 {
			t.Errorf("sum %v, %v; want 31.75", v, err)
		}
	})
	t.Run("NULL and no rows", func(t *testing.T) {
		p, err := s.Poll(scalertest.Context(t, callTimeout), trigger("select sum(seats) from ks_bookings where status = 'none'"))
		if err != nil || p.Value != 0 || p.Active {
			t.Errorf("NULL sum: poll %+v, %v; want 0, inactive", p, err)
		}
	})
	t.Run("bind parameter", func(t *testing.T) {
		md := map[string]string{"queryName": "by_status", "targetQueryValue": "1"}
		for status, want := range map[string]float64{"pending": 2, "x' or '1'='1": 0} {
			md["param.status"] = status
			if v, err := s.GetMetrics(scalertest.Context(t, callTimeout), md, "query_value"); err != nil || v != want {
				t.Errorf("by_status %q: %v, %v; want %v", status, v, err, want)
			}
		}
	})
	t.Run("read-only refusal", func(t *testing.T) {
		before := count()
		err := b.queriers[sqlmetric.DefaultConnection].Query(context.Background(), "delete from ks_bookings", nil, func(any) error { return nil })
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("delete through the querier: %v, want PermissionDenied", err)
		}
		_, err = s.GetMetrics(scalertest.Context(t, callTimeout), trigger("with d as (delete from ks_bookings returning 1) select count(*) from d"), "query_value")
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("a delete inside WITH: %v, want PermissionDenied", err)
		}
		if after := count(); after != before {
			t.Errorf("ks_bookings went from %d to %d rows", before, after)
		}
	})
	t.Run("QUERY_TIMEOUT", func(t *testing.T) {
		start := time.Now()
		_, err := s.GetMetrics(scalertest.Context(t, callTimeout), trigger("select pg_sleep(10)"), "query_value")
		if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "QUERY_TIMEOUT=500ms") {
			t.Errorf("pg_sleep(10): %v, want DeadlineExceeded naming QUERY_TIMEOUT", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("the timeout took %v", d)
		}
		// The pool is still usable afterwards.
		if v, err := s.GetMetrics(scalertest.Context(t, callTimeout), trigger("select count(*) from ks_bookings"), "query_value"); err != nil || v != 5 {
			t.Errorf("after a timeout: %v, %v; want 5", v, err)
		}
	})
	t.Run("BACKEND_TIMEOUT first", func(t *testing.T) {
		// When the caller's deadline ends before QUERY_TIMEOUT, scalerkit
		// names its own: the error wraps the caller's context error.
		long := sqlDefaults()
		long.QueryTimeout = time.Minute
		lb := newTestBackend(t, long, map[string]*sql.DB{sqlmetric.DefaultConnection: openPG(t, pg)}, pgDialect)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		tr, err := lb.Parse(metadata.NewParser(trigger("select pg_sleep(10)")))
		if err != nil {
			t.Fatal(err)
		}
		_, err = tr.Probe.Read(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "QUERY_TIMEOUT") {
			t.Errorf("caller's deadline: %v, want context.DeadlineExceeded, not QUERY_TIMEOUT", err)
		}
	})
	t.Run("MAX_ROWS", func(t *testing.T) {
		_, err := s.GetMetrics(scalertest.Context(t, callTimeout), trigger("select generate_series(1, 1000000)"), "query_value")
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "MAX_ROWS") {
			t.Errorf("a million rows: %v, want ResourceExhausted naming MAX_ROWS", err)
		}
	})
	t.Run("bad query", func(t *testing.T) {
		_, err := s.GetMetrics(scalertest.Context(t, callTimeout), trigger("select nope from ks_bookings"), "query_value")
		if status.Code(err) != codes.Unavailable {
			// PostgreSQL's errors are not mapped by the Oracle dialect: as
			// they are, scalerkit reports them as an outage.
			t.Errorf("unknown column on PostgreSQL: %v, want Unavailable", err)
		}
	})
}
