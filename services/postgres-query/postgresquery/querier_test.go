package postgresquery

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
)

// querier returns the Querier of e's default connection with timeout.
func (e *env) querier(timeout time.Duration) *Querier {
	return NewQuerier(e.b.pools.Value[sqlmetric.DefaultConnection], timeout)
}

// collect runs sql on q and returns the first column of every row.
func collect(ctx context.Context, q *Querier, sql string, args ...any) ([]any, error) {
	var got []any
	err := q.Query(ctx, sql, args, func(v any) error {
		got = append(got, v)
		return nil
	})
	return got, err
}

// TestDatabaseGuard calls the Querier directly, past sqlmetric's SELECT
// prefilter: PostgreSQL itself refuses writes (the read-only transaction)
// and several statements (the extended protocol).
func TestDatabaseGuard(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPostgres(t), nil, scalertest.Options{})
	q := e.querier(2 * time.Second)
	before := checksum(t, e.db)
	tests := []struct {
		sql  string
		code codes.Code
		want []string
	}{
		{"delete from bookings", codes.PermissionDenied, []string{"read-only", "25006"}},
		{"insert into bookings (status, seats) values ('x', 1)", codes.PermissionDenied, []string{"read-only", "25006"}},
		{"update bookings set seats = 0", codes.PermissionDenied, []string{"read-only", "25006"}},
		{"drop table bookings", codes.PermissionDenied, []string{"read-only", "25006"}},
		{"truncate bookings", codes.PermissionDenied, []string{"read-only", "25006"}},
		{"create table x (i int)", codes.PermissionDenied, []string{"read-only", "25006"}},
		{"create temporary table x (i int)", codes.PermissionDenied, []string{"read-only", "25006"}},
		{"select setval('bookings_id_seq', 1000)", codes.PermissionDenied, []string{"read-only", "25006"}},
		{"set transaction read write", codes.PermissionDenied, []string{"25001"}},
		{"select 1; select 2", codes.InvalidArgument, []string{"cannot insert multiple commands into a prepared statement", "42601"}},
		{"select 1; delete from bookings", codes.InvalidArgument, []string{"multiple commands", "42601"}},
		{"commit; delete from bookings", codes.InvalidArgument, []string{"multiple commands"}},
	}
	for _, tt := range tests {
		t.Run(tt.sql, func(t *testing.T) {
			_, err := collect(scalertest.Context(t, 10*time.Second), q, tt.sql)
			scalertest.WantStatus(t, err, tt.code, tt.want...)
			if got := checksum(t, e.db); got != before {
				t.Fatalf("bookings changed: %s, was %s", got, before)
			}
		})
	}
}

// TestParametersAreBound: named-query parameters are strings, sent in
// text format and typed by the server: "3" binds to an integer
// parameter, and a string with quotes is just a string.
func TestParametersAreBound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPostgres(t), nil, scalertest.Options{})
	q := e.querier(2 * time.Second)
	ctx := scalertest.Context(t, 30*time.Second)
	tests := []struct {
		sql  string
		args []any
		want []any
	}{
		{"select count(*) from bookings where id = $1", []any{"3"}, []any{int64(1)}},
		{"select id from bookings where id = $1", []any{"3"}, []any{int32(3)}},
		{"select seats from bookings where id > $1 and seats >= $2 order by id", []any{"1", "4"}, []any{int32(4), int32(5)}},
		{"select count(*) from bookings where status = $1", []any{"confirmed"}, []any{int64(3)}},
		{"select count(*) from bookings where status = $1", []any{"confirmed' or '1'='1"}, []any{int64(0)}},
		{"select count(*) from bookings where status = $1", []any{"confirmed'; delete from bookings; --"}, []any{int64(0)}},
		{"select $1::numeric * 2", []any{"1.25"}, nil}, // numeric: checked through Convert below
	}
	for _, tt := range tests {
		got, err := collect(ctx, q, tt.sql, tt.args...)
		must(t, err)
		if tt.want == nil {
			if v, ok := Convert(got[0]); !ok || v != 2.5 {
				t.Errorf("%s %q: %#v converts to %v, %v; want 2.5", tt.sql, tt.args, got[0], v, ok)
			}
			continue
		}
		if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", tt.want) {
			t.Errorf("%s %q = %#v, want %#v", tt.sql, tt.args, got, tt.want)
		}
	}
	_, err := collect(ctx, q, "select count(*) from bookings where id = $1", "abc")
	scalertest.WantStatus(t, err, codes.InvalidArgument, "invalid input syntax for type integer", "22P02")
	if n := count(t, e.db, "select count(*) from bookings"); n != 6 {
		t.Errorf("%d bookings left, want 6", n)
	}
}

// TestQuerierStopsEarly: when the row callback fails, the statement is
// cancelled rather than drained, and the pool stays usable.
func TestQuerierStopsEarly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPostgres(t), nil, scalertest.Options{})
	q := e.querier(30 * time.Second)
	ctx := scalertest.Context(t, time.Minute)
	stop := errors.New("enough")
	rows := 0
	start := time.Now()
	err := q.Query(ctx, "select generate_series(1, 100000000)", nil, func(any) error {
		if rows++; rows == 10 {
			return stop
		}
		return nil
	})
	elapsed := time.Since(start)
	if !errors.Is(err, stop) {
		t.Fatalf("err = %v, want the callback's error", err)
	}
	if rows != 10 {
		t.Errorf("callback called %d times, want 10", rows)
	}
	// Producing 10^8 rows takes the server tens of seconds.
	if elapsed > 2*time.Second {
		t.Errorf("stopping took %v", elapsed)
	}
	t.Logf("stopped after %v", elapsed)
	got, err := collect(ctx, q, "select count(*) from bookings")
	t.Logf("next query after %v", time.Since(start))
	must(t, err)
	if got[0] != int64(6) {
		t.Errorf("count after an early stop = %v, want 6", got[0])
	}
	// The server is not still producing rows for nobody.
	if err := wait.Until(5*time.Second, func() error {
		if n := count(t, e.db, "select count(*) from pg_stat_activity where query like 'select generate_series%' and state = 'active'"); n > 0 {
			return fmt.Errorf("%d sessions still run the statement", n)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	t.Logf("statement gone after %v", time.Since(start))
}

// TestStatementTimeout: the server cancels a query after QUERY_TIMEOUT,
// even one that resets statement_timeout for its session.
func TestStatementTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPostgres(t), nil, scalertest.Options{})
	q := e.querier(500 * time.Millisecond)
	for _, sql := range []string{
		"select pg_sleep(30)",
		"select set_config('statement_timeout', '0', false), pg_sleep(30)",
	} {
		start := time.Now()
		_, err := collect(scalertest.Context(t, time.Minute), q, sql)
		scalertest.WantStatus(t, err, codes.DeadlineExceeded, "QUERY_TIMEOUT=500ms", "statement timeout")
		if d := time.Since(start); d > 1500*time.Millisecond {
			t.Errorf("%s: cancelled after %v, want about 500ms", sql, d)
		}
	}
	// The rolled-back set_config left nothing behind on the connection.
	got, err := collect(scalertest.Context(t, time.Minute), q, "select current_setting('statement_timeout')")
	must(t, err)
	if got[0] != "500ms" {
		t.Errorf("statement_timeout inside the guard = %v, want 500ms", got[0])
	}
}

// TestAdvisoryLocksAreReleased: pg_advisory_lock is allowed in a read-only
// transaction and survives a rollback; the querier releases it, so a
// query cannot keep an application's lock.
func TestAdvisoryLocksAreReleased(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPostgres(t), nil, scalertest.Options{})
	md := map[string]string{"query": "select pg_advisory_lock(42)", "targetQueryValue": "1"}
	if _, err := e.s.GetMetrics(scalertest.Context(t, 10*time.Second), md, "query_value"); err != nil {
		t.Fatal(err)
	}
	if n := count(t, e.db, "select count(*) from pg_locks where locktype = 'advisory'"); n != 0 {
		t.Fatalf("%d advisory locks held after the query", n)
	}
	var ok bool
	must(t, e.db.QueryRow(scalertest.Context(t, 10*time.Second), "select pg_try_advisory_lock(42)").Scan(&ok))
	if !ok {
		t.Error("the application cannot take advisory lock 42")
	}
}

// TestRoleDefaults: a dedicated role whose default is read-only (as the
// README recommends) works, read-only is enforced as well for a role whose
// default says otherwise, and grants decide what may be read.
func TestRoleDefaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPostgres(t), nil, scalertest.Options{})
	// Roles belong to the whole server: name them after the database.
	ro, rw := e.db.Config().Database+"_ro", e.db.Config().Database+"_rw"
	exec(t, e.db, fmt.Sprintf(`create role %[1]s login;
		alter role %[1]s set default_transaction_read_only = on;
		grant select on bookings to %[1]s;
		create role %[2]s login;
		alter role %[2]s set default_transaction_read_only = off;
		grant select, insert, delete on bookings to %[2]s;
		create table salaries (amount int); insert into salaries values (1000);`, ro, rw))
	for _, role := range []string{ro, rw} {
		t.Run(role, func(t *testing.T) {
			cfg := testConfig(e.url)
			cfg.URL = replaceUser(e.url, role)
			b := newBackend(t, cfg)
			q := NewQuerier(b.pools.Value[sqlmetric.DefaultConnection], 2*time.Second)
			ctx := scalertest.Context(t, 30*time.Second)
			got, err := collect(ctx, q, "select count(*) from bookings")
			must(t, err)
			if got[0] != int64(6) {
				t.Errorf("count = %v, want 6", got[0])
			}
			_, err = collect(ctx, q, "delete from bookings")
			scalertest.WantStatus(t, err, codes.PermissionDenied, "read-only")
			_, err = collect(ctx, q, "select count(*) from salaries")
			scalertest.WantStatus(t, err, codes.PermissionDenied, "permission denied for table salaries")
		})
	}
}

// replaceUser returns url with user instead of postgres.
func replaceUser(url, user string) string {
	const from = "postgres://postgres@"
	return "postgres://" + user + "@" + url[len(from):]
}

// TestQuerierReplacesClosedConnections: a pooled connection the server
// closed (pg_terminate_backend, as a restart or a failover would) costs no
// failed read: the query runs again on a new connection.
func TestQuerierReplacesClosedConnections(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPostgres(t), nil, scalertest.Options{})
	q := e.querier(2 * time.Second)
	ctx := scalertest.Context(t, time.Minute)
	for i := range 3 {
		got, err := collect(ctx, q, "select count(*) from bookings")
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if got[0] != int64(6) {
			t.Fatalf("read %d = %v, want 6", i, got[0])
		}
		// Idle for less than a second: the pool does not ping it first.
		killed := count(t, e.db, `select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity
			where application_name = $1 and datname = current_database()) k`, AppName)
		if killed == 0 {
			t.Fatalf("read %d: no scaler session to terminate", i)
		}
	}
}
