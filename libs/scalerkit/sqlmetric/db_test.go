package sqlmetric

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
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
	goleak.VerifyTestMain(closing{m})
}

// closing runs the tests, then stops the shared server.
type closing struct{ m *testing.M }

func (c closing) Run() int {
	defer closeShared()
	return c.m.Run()
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
	e.q = &DB{DB: openPG(t, pg), Guard: pgGuard, MapError: pgMapError, MaxRowBytes: 1 << 20}
	return e
}

// backend returns a Backend over q as the default connection.
func (e *pgEnv) backend(t *testing.T, q Querier, edit func(*Config)) *Backend {
	t.Helper()
	cfg := validConfig()
	if edit != nil {
		edit(&cfg)
	}
	b, err := NewBackend(settings(t, cfg), Options{Conns: map[string]Querier{DefaultConnection: q}})
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

// shared is the PostgreSQL with the bookings table that the tests share;
// none of them changes it (TestDBServerDown has a server of its own).
var shared struct {
	once sync.Once
	env  *pgEnv
	err  error
}

// sharedEnv returns the shared server, started on first use, with a DB
// querier of the test's own.
func sharedEnv(t *testing.T) *pgEnv {
	t.Helper()
	shared.once.Do(func() {
		var pg *testenv.Postgres
		if pg, shared.err = testenv.StartPostgres(); shared.err != nil {
			return
		}
		shared.env = &pgEnv{pg: pg}
		admin, err := sql.Open("pgx", pg.URL())
		if err == nil {
			_, err = admin.Exec(bookingsSetup)
			_ = admin.Close()
		}
		shared.err = err
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return &pgEnv{pg: shared.env.pg, admin: openPG(t, shared.env.pg),
		q: &DB{DB: openPG(t, shared.env.pg), Guard: pgGuard, MapError: pgMapError, MaxRowBytes: 1 << 20}}
}

// closeShared stops the shared server, if it was started.
func closeShared() {
	if shared.env != nil {
		_ = shared.env.pg.Close()
	}
}

// byStatus is a named query of the tests' backends.
const byStatus = `{"by_status": {"sql": "select count(*) from bookings where status = $1", "params": ["status"]}}`

// TestDBValues: the value rule over what PostgreSQL returns through
// database/sql.
func TestDBValues(t *testing.T) {
	e := sharedEnv(t)
	b := e.backend(t, e.q, func(c *Config) { c.Queries = byStatus })
	tests := []struct {
		name string
		md   map[string]string
		want float64
	}{
		{"count", md("query", "select count(*) from bookings where status = 'confirmed'"), 3},
		{"row count", md("query", "select id from bookings where status = 'pending'"), 2},
		{"one numeric row is its value", md("query", "select id from bookings where status = 'cancelled'"), 6},
		{"NULL sum", md("query", "select sum(seats) from bookings where status = 'nobody'"), 0},
		{"no rows", md("query", "select id from bookings where false"), 0},
		{"numeric sum", md("query", "select sum(price) from bookings where status = 'confirmed'"), 31.75},
		{"float8", md("query", "select 2.5::float8"), 2.5},
		{"float4", md("query", "select 1.5::float4"), 1.5},
		{"numeric text", md("query", "select ' 42 '::text"), 42},
		{"other text", md("query", "select 'abc'::text"), 1},
		{"boolean", md("query", "select true"), 1},
		{"int8", md("query", "select 9000000000::int8"), 9e9},
		{"bind parameter", md("queryName", "by_status", "param.status", "confirmed"), 3},
		{"bind parameter, not SQL", md("queryName", "by_status", "param.status", "x' or '1'='1"), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if v, err := value(t, b, tt.md); err != nil || v != tt.want {
				t.Errorf("%v = %v, %v; want %v", tt.md, v, err, tt.want)
			}
		})
	}
}

// TestDBRefusesWrites: the read-only transaction refuses a write however
// the SQL hides it, and nothing changes.
func TestDBRefusesWrites(t *testing.T) {
	e := sharedEnv(t)
	b := e.backend(t, e.q, nil)
	if _, err := e.admin.Exec(`create or replace function purge() returns int language sql as 'delete from bookings returning 1'`); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		run  func() error
	}{
		{"delete through the querier", func() error {
			return e.q.Query(context.Background(), "delete from bookings", nil, func(any) error { return nil })
		}},
		// CheckSelect lets a WITH through: the transaction is the guard.
		{"delete inside WITH", func() error {
			_, err := value(t, b, md("query", "with d as (delete from bookings returning 1) select count(*) from d"))
			return err
		}},
		{"function that writes", func() error { _, err := value(t, b, md("query", "select purge()")); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.count(t)
			if err := tt.run(); status.Code(err) != codes.PermissionDenied {
				t.Errorf("%v, want PermissionDenied", err)
			}
			if after := e.count(t); after != before {
				t.Errorf("bookings went from %d to %d rows", before, after)
			}
		})
	}
}

// TestDBErrors: each failure of a query comes back with its own code,
// naming the limit at fault, at once.
func TestDBErrors(t *testing.T) {
	e := sharedEnv(t)
	tests := []struct {
		name  string
		edit  func(*Config)
		query string
		code  codes.Code
		want  string
	}{
		{"unknown column", nil, "select nope from bookings", codes.InvalidArgument, "bad query"},
		{"statement timeout", nil, "select pg_sleep(10)", codes.DeadlineExceeded, "statement timeout"},
		{"MAX_ROWS", func(c *Config) { c.MaxRows = 100 }, "select generate_series(1, 1000000)", codes.ResourceExhausted, "MAX_ROWS=100"},
		{"MAX_ROW_BYTES, whatever column", func(c *Config) { c.MaxRowBytes = 1024 }, "select 1, repeat('x', 2000)",
			codes.ResourceExhausted, "a row of 2000 bytes, more than MAX_ROW_BYTES=1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := *e.q
			if tt.edit != nil {
				c := validConfig()
				tt.edit(&c)
				q.MaxRowBytes = c.MaxRowBytes
			}
			b := e.backend(t, &q, tt.edit)
			start := time.Now()
			_, err := value(t, b, md("query", tt.query))
			if status.Code(err) != tt.code || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: %v, want %v with %q", tt.query, err, tt.code, tt.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the error took %v", d)
			}
		})
	}
}

// TestDBStopsStatements: a query the scaler gives up on stops on the
// server too, rather than running (or draining its rows) to the end.
// The querier sets no statement timeout: only the client stops it.
func TestDBStopsStatements(t *testing.T) {
	e := sharedEnv(t)
	q := &DB{DB: openPG(t, e.pg), Guard: pgReadOnly, MapError: pgMapError, MaxRowBytes: 1 << 20}
	tests := []struct {
		name   string
		marker string
		run    func(marker string) error
		ok     func(err error) bool
	}{
		{"context cancelled", "cancel-me", func(marker string) error {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(200*time.Millisecond, cancel)
			_, err := firsts(ctx, q, "select pg_sleep(10) -- "+marker)
			return err
		}, func(err error) bool { return errors.Is(err, context.Canceled) }},
		{"context deadline", "deadline-me", func(marker string) error {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_, err := firsts(ctx, q, "select pg_sleep(10) -- "+marker)
			return err
		}, func(err error) bool { return status.Code(err) == codes.DeadlineExceeded }},
		// Wide rows (flushed one by one) produced slowly: draining them
		// would take 100 x 100 ms = 10 s.
		{"MAX_ROWS cancels rather than drains", "drain-me", func(marker string) error {
			slow := e.backend(t, q, func(c *Config) { c.MaxRows = 2 })
			_, err := value(t, slow, md("query", "select repeat('x', 20000), pg_sleep(0.1) from generate_series(1, 100) -- "+marker))
			return err
		}, func(err error) bool { return status.Code(err) == codes.ResourceExhausted }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			if err := tt.run(tt.marker); !tt.ok(err) {
				t.Errorf("error %v", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("stopping took %v", d)
			}
			waitStopped(t, e, tt.marker)
		})
	}
}

// TestDBRowErrorsBypassMapError: a MapError that reports every cause it
// does not know as an outage does not turn an error of the row callback
// (MAX_ROWS) into Unavailable: the Querier returns it as it is.
func TestDBRowErrorsBypassMapError(t *testing.T) {
	e := sharedEnv(t)
	outage := func(err error) error { return status.Errorf(codes.Unavailable, "outage: %v", err) }
	q := &DB{DB: openPG(t, e.pg), Guard: pgReadOnly, MapError: outage, MaxRowBytes: 1 << 20}
	few := e.backend(t, q, func(c *Config) { c.MaxRows = 2 })
	if _, err := value(t, few, md("query", "select generate_series(1, 10)")); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("MAX_ROWS through a MapError mapping everything: %v, want ResourceExhausted", err)
	}
	stop := errors.New("stop")
	if err := q.Query(context.Background(), "select 1", nil, func(any) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("row error came back as %v, want it as it is", err)
	}
	if _, err := firsts(context.Background(), q, "select nope"); status.Code(err) != codes.Unavailable {
		t.Errorf("database error: %v, want MapError's Unavailable", err)
	}
}

// TestDBTransaction: the guard runs first in every transaction, and no
// transaction is left open after a query.
func TestDBTransaction(t *testing.T) {
	e := sharedEnv(t)
	ctx := context.Background()
	for setting, want := range map[string]string{"transaction_read_only": "on", "statement_timeout": "1s"} {
		got, err := firsts(ctx, e.q, "select current_setting('"+setting+"')")
		if err != nil || len(got) != 1 || got[0] != want {
			t.Errorf("%s = %v, %v; want %s", setting, got, err, want)
		}
	}
	var open int
	err := e.admin.QueryRow(`select count(*) from pg_stat_activity
		where state like 'idle in transaction%' and pid <> pg_backend_pid()`).Scan(&open)
	if err != nil || open != 0 {
		t.Errorf("sessions left idle in a transaction: %d, %v; want 0", open, err)
	}
}

// TestDBServerDown: with the server gone, the error comes back as it is,
// for scalerkit to report as Unavailable.
func TestDBServerDown(t *testing.T) {
	e := newPGEnv(t) // a server of its own: it is stopped
	if _, err := firsts(context.Background(), e.q, "select 1"); err != nil {
		t.Fatal(err)
	}
	if err := e.pg.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := firsts(ctx, e.q, "select 1")
	if err == nil {
		t.Fatal("query with the server down succeeded")
	}
	if c := status.Code(err); c != codes.Unknown {
		t.Errorf("server down: code %v, want the error as it is: %v", c, err)
	}
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
