package sqlmetric

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for the tests only: the core imports no driver
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// openPG opens a database/sql pool on pg through pgx's stdlib driver,
// closed when the test ends (database/sql keeps a connection-opener
// goroutine until Close).
func openPG(t *testing.T, pg *testenv.Postgres) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", pg.URL())
	if err != nil {
		t.Fatalf("sql.Open: %v", err)
	}
	db.SetMaxOpenConns(4)
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("closing the pool: %v", err)
		}
	})
	return db
}

// pgGuard makes a PostgreSQL transaction read only with a statement
// timeout of 1 s, the way a service's Guard does.
func pgGuard(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, "SET TRANSACTION READ ONLY"); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, "select set_config('statement_timeout', '1000', true)")
	return err
}

// pgReadOnly makes a transaction read only and sets no statement timeout.
func pgReadOnly(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, "SET TRANSACTION READ ONLY")
	return err
}

// pgMapError is a minimal MapError for PostgreSQL: the causes the tests
// need, everything else as it is.
func pgMapError(err error) error {
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "25006": // read_only_sql_transaction
		return status.Errorf(codes.PermissionDenied, "refused: the query runs in a read-only transaction: %v", err)
	case errors.As(err, &pgErr) && pgErr.Code == "57014": // query_canceled (statement_timeout)
		return status.Errorf(codes.DeadlineExceeded, "statement timeout: %v", err)
	case errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "42"): // syntax error or access rule violation
		return status.Errorf(codes.InvalidArgument, "bad query: %v", err)
	case errors.Is(err, context.DeadlineExceeded):
		return status.Errorf(codes.DeadlineExceeded, "%v", err)
	}
	return err
}

// pgEnv is one throwaway PostgreSQL with a bookings table, a plain pool
// to look at it, and the DB querier under test.
type pgEnv struct {
	pg    *testenv.Postgres
	admin *sql.DB // plain connections, outside any guard
	q     *DB
}

// bookings are the rows of the bookings table: 3 confirmed, 2 pending,
// 1 cancelled.
const bookingsSetup = `
create table bookings (id int primary key, status text not null, seats int, price numeric(10,2));
insert into bookings values
  (1, 'confirmed', 2, 10.50), (2, 'confirmed', 1, 20.25), (3, 'confirmed', 4, 1.00),
  (4, 'pending', 3, null), (5, 'pending', null, null),
  (6, 'cancelled', 1, 5.00);
`

// newPGEnv starts PostgreSQL, creates the bookings table and returns a
// DB querier over it with pgGuard and pgMapError.
func newPGEnv(t *testing.T) *pgEnv {
	t.Helper()
	pg := testenv.NewPostgres(t)
	e := &pgEnv{pg: pg, admin: openPG(t, pg)}
	if _, err := e.admin.Exec(bookingsSetup); err != nil {
		t.Fatalf("creating the bookings table: %v", err)
	}
	e.q = &DB{DB: openPG(t, pg), Guard: pgGuard, MapError: pgMapError}
	return e
}

// backend returns a Backend over q as the default connection.
func (e *pgEnv) backend(t *testing.T, q Querier, edit func(*Config)) *Backend {
	t.Helper()
	cfg := validConfig()
	if edit != nil {
		edit(&cfg)
	}
	b, err := NewBackend(cfg, Options{Conns: map[string]Querier{DefaultConnection: q}})
	if err != nil {
		t.Fatalf("NewBackend: %v", err)
	}
	return b
}

// value parses m with b and reads the value, as a GetMetrics would.
func value(t *testing.T, b *Backend, m map[string]string) (float64, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return parseQuery(t, b, m).Value(ctx)
}

// firsts runs sql through q and returns the first column of each row.
func firsts(ctx context.Context, q Querier, sql string, args ...any) ([]any, error) {
	var out []any
	err := q.Query(ctx, sql, args, func(v any) error {
		out = append(out, v)
		return nil
	})
	return out, err
}

// count returns select count(*) from bookings, outside any guard.
func (e *pgEnv) count(t *testing.T) int {
	t.Helper()
	var n int
	if err := e.admin.QueryRow("select count(*) from bookings").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// running reports whether a statement containing marker is running on
// the server (other than the one asking).
func (e *pgEnv) running(t *testing.T, marker string) bool {
	t.Helper()
	var n int
	err := e.admin.QueryRow(`select count(*) from pg_stat_activity
		where state = 'active' and pid <> pg_backend_pid() and strpos(query, $1) > 0`, marker).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func TestDBOnPostgres(t *testing.T) {
	e := newPGEnv(t)
	b := e.backend(t, e.q, func(c *Config) {
		c.MaxRows = 100
		c.Queries = `{"by_status": {"sql": "select count(*) from bookings where status = $1", "params": ["status"]}}`
	})

	t.Run("count", func(t *testing.T) {
		v, err := value(t, b, md("query", "select count(*) from bookings where status = 'confirmed'"))
		if err != nil || v != 3 {
			t.Errorf("count = %v, %v; want 3", v, err)
		}
	})
	t.Run("row count", func(t *testing.T) {
		v, err := value(t, b, md("query", "select id from bookings where status = 'pending'"))
		if err != nil || v != 2 {
			t.Errorf("rows = %v, %v; want 2", v, err)
		}
	})
	t.Run("one row of one", func(t *testing.T) {
		v, err := value(t, b, md("query", "select id from bookings where status = 'cancelled'"))
		if err != nil || v != 6 {
			t.Errorf("one numeric row = %v, %v; want its value 6 (the value rule)", v, err)
		}
	})
	t.Run("NULL sum", func(t *testing.T) {
		v, err := value(t, b, md("query", "select sum(seats) from bookings where status = 'nobody'"))
		if err != nil || v != 0 {
			t.Errorf("NULL sum = %v, %v; want 0", v, err)
		}
	})
	t.Run("no rows", func(t *testing.T) {
		v, err := value(t, b, md("query", "select id from bookings where false"))
		if err != nil || v != 0 {
			t.Errorf("no rows = %v, %v; want 0", v, err)
		}
	})
	t.Run("numeric sum", func(t *testing.T) {
		v, err := value(t, b, md("query", "select sum(price) from bookings where status = 'confirmed'"))
		if err != nil || v != 31.75 {
			t.Errorf("numeric sum = %v, %v; want 31.75", v, err)
		}
	})
	t.Run("float and text", func(t *testing.T) {
		for sql, want := range map[string]float64{
			"select 2.5::float8":      2.5,
			"select 1.5::float4":      1.5,
			"select ' 42 '::text":     42,
			"select 'abc'::text":      1,
			"select true":             1,
			"select 9000000000::int8": 9e9,
		} {
			if v, err := value(t, b, md("query", sql)); err != nil || v != want {
				t.Errorf("%s = %v, %v; want %v", sql, v, err, want)
			}
		}
	})
	t.Run("guard runs first", func(t *testing.T) {
		ctx := context.Background()
		got, err := firsts(ctx, e.q, "select current_setting('transaction_read_only')")
		if err != nil || len(got) != 1 || got[0] != "on" {
			t.Errorf("transaction_read_only = %v, %v; want on", got, err)
		}
		got, err = firsts(ctx, e.q, "select current_setting('statement_timeout')")
		if err != nil || len(got) != 1 || got[0] != "1s" {
			t.Errorf("statement_timeout = %v, %v; want 1s", got, err)
		}
	})
	t.Run("bind parameters", func(t *testing.T) {
		v, err := value(t, b, md("queryName", "by_status", "param.status", "confirmed"))
		if err != nil || v != 3 {
			t.Errorf("by_status confirmed = %v, %v; want 3", v, err)
		}
		v, err = value(t, b, md("queryName", "by_status", "param.status", "x' or '1'='1"))
		if err != nil || v != 0 {
			t.Errorf("by_status with an injection attempt = %v, %v; want 0 (a bind parameter matches nothing)", v, err)
		}
	})
	t.Run("MAX_ROWS", func(t *testing.T) {
		start := time.Now()
		_, err := value(t, b, md("query", "select generate_series(1, 1000000)"))
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "MAX_ROWS=") {
			t.Errorf("a million rows with MAX_ROWS=100: %v, want ResourceExhausted naming MAX_ROWS", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("MAX_ROWS took %v: it should stop at once", d)
		}
	})
	t.Run("delete refused", func(t *testing.T) {
		before := e.count(t)
		err := e.q.Query(context.Background(), "delete from bookings", nil, func(any) error { return nil })
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("delete through the querier: %v, want PermissionDenied", err)
		}
		if after := e.count(t); after != before {
			t.Errorf("bookings went from %d to %d rows", before, after)
		}
	})
	t.Run("delete inside WITH refused", func(t *testing.T) {
		// CheckSelect lets a WITH through; the read-only transaction is the
		// guard that counts.
		before := e.count(t)
		_, err := value(t, b, md("query", "with d as (delete from bookings returning 1) select count(*) from d"))
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("with ... delete: %v, want PermissionDenied", err)
		}
		if after := e.count(t); after != before {
			t.Errorf("bookings went from %d to %d rows", before, after)
		}
	})
	t.Run("function writing refused", func(t *testing.T) {
		if _, err := e.admin.Exec(`create function purge() returns int language sql as 'delete from bookings returning 1'`); err != nil {
			t.Fatal(err)
		}
		before := e.count(t)
		_, err := value(t, b, md("query", "select purge()"))
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("select purge(): %v, want PermissionDenied", err)
		}
		if after := e.count(t); after != before {
			t.Errorf("bookings went from %d to %d rows", before, after)
		}
	})
	t.Run("bad query", func(t *testing.T) {
		_, err := value(t, b, md("query", "select nope from bookings"))
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("unknown column: %v, want InvalidArgument", err)
		}
	})
	t.Run("statement timeout", func(t *testing.T) {
		start := time.Now()
		_, err := value(t, b, md("query", "select pg_sleep(10)"))
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("pg_sleep(10) under a 1s statement timeout: %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the statement timeout took %v", d)
		}
	})
	t.Run("context cancellation", func(t *testing.T) {
		q := &DB{DB: openPG(t, e.pg), Guard: pgReadOnly, MapError: pgMapError} // no statement timeout
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		start := time.Now()
		_, err := firsts(ctx, q, "select pg_sleep(10) -- cancel-me")
		if err == nil {
			t.Fatal("a cancelled query succeeded")
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled query: %v, want it to wrap context.Canceled", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("cancellation took %v", d)
		}
		waitStopped(t, e, "cancel-me")
	})
	t.Run("context deadline", func(t *testing.T) {
		q := &DB{DB: openPG(t, e.pg), Guard: pgReadOnly, MapError: pgMapError}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := firsts(ctx, q, "select pg_sleep(10) -- deadline-me")
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("query past its deadline: %v, want DeadlineExceeded", err)
		}
		waitStopped(t, e, "deadline-me")
	})
	t.Run("early stop cancels rather than drains", func(t *testing.T) {
		// Wide rows (flushed one by one) produced slowly, with no statement
		// timeout: draining them would take 100 × 100 ms = 10 s.
		q := &DB{DB: openPG(t, e.pg), Guard: pgReadOnly, MapError: pgMapError}
		slow := e.backend(t, q, func(c *Config) { c.MaxRows = 2 })
		start := time.Now()
		_, err := value(t, slow, md("query", "select repeat('x', 20000), pg_sleep(0.1) from generate_series(1, 100) -- drain-me"))
		if status.Code(err) != codes.ResourceExhausted {
			t.Errorf("100 slow rows with MAX_ROWS=2: %v, want ResourceExhausted", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("stopping after 3 rows took %v: the rest was drained, not cancelled", d)
		}
		waitStopped(t, e, "drain-me")
	})
	t.Run("row errors bypass MapError", func(t *testing.T) {
		// A MapError that reports every cause it does not know as an outage
		// must not turn MAX_ROWS (an error of the row callback, which the
		// Querier contract returns as it is) into Unavailable.
		outage := func(err error) error { return status.Errorf(codes.Unavailable, "outage: %v", err) }
		q := &DB{DB: openPG(t, e.pg), Guard: pgReadOnly, MapError: outage}
		few := e.backend(t, q, func(c *Config) { c.MaxRows = 2 })
		_, err := value(t, few, md("query", "select generate_series(1, 10)"))
		if status.Code(err) != codes.ResourceExhausted {
			t.Errorf("MAX_ROWS through a MapError mapping everything: %v, want ResourceExhausted", err)
		}
		stop := errors.New("stop")
		if err := q.Query(context.Background(), "select 1", nil, func(any) error { return stop }); !errors.Is(err, stop) {
			t.Errorf("row error came back as %v, want it as it is", err)
		}
		if _, err := firsts(context.Background(), q, "select nope"); status.Code(err) != codes.Unavailable {
			t.Errorf("database error: %v, want MapError's Unavailable", err)
		}
	})
	t.Run("no transaction left open", func(t *testing.T) {
		if _, err := firsts(context.Background(), e.q, "select 1"); err != nil {
			t.Fatal(err)
		}
		var open int
		err := e.admin.QueryRow(`select count(*) from pg_stat_activity
			where state like 'idle in transaction%' and pid <> pg_backend_pid()`).Scan(&open)
		if err != nil || open != 0 {
			t.Errorf("sessions left idle in a transaction: %d, %v; want 0", open, err)
		}
	})
	t.Run("server down", func(t *testing.T) {
		q := &DB{DB: openPG(t, e.pg), Guard: pgGuard, MapError: pgMapError}
		if _, err := firsts(context.Background(), q, "select 1"); err != nil {
			t.Fatal(err)
		}
		if err := e.pg.Stop(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := e.pg.Start(); err != nil {
				t.Errorf("restarting postgres: %v", err)
			}
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := firsts(ctx, q, "select 1")
		if err == nil {
			t.Fatal("query with the server down succeeded")
		}
		if c := status.Code(err); c != codes.Unknown {
			t.Errorf("server down: code %v, want the error as it is (scalerkit reports it as Unavailable): %v", c, err)
		}
	})
}

// waitStopped waits until no statement containing marker runs on the
// server: a cancelled query must not go on running there.
func waitStopped(t *testing.T, e *pgEnv, marker string) {
	t.Helper()
	err := wait.Until(3*time.Second, func() error {
		if e.running(t, marker) {
			return fmt.Errorf("the statement %q still runs on the server 3s after it was stopped", marker)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}
