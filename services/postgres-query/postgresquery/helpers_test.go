package postgresquery

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/kedascalers/kedascalers/libs/scalerkit"
	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(withSharedServer{m})
}

// withSharedServer runs the tests, then stops the shared PostgreSQL
// server, before goleak looks for goroutines left behind.
type withSharedServer struct{ m *testing.M }

func (w withSharedServer) Run() int {
	code := w.m.Run()
	if shared.pg != nil {
		if err := shared.pg.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "closing the shared PostgreSQL:", err)
			code = max(code, 1)
		}
	}
	return code
}

// shared is one PostgreSQL server for the tests that do not stop it: each
// test gets a database of its own on it (starting a server costs seconds).
var shared struct {
	once sync.Once
	pg   *testenv.Postgres
	err  error
	dbs  atomic.Int64
}

// sharedPostgres returns the shared server, started on first use.
func sharedPostgres(t testing.TB) *testenv.Postgres {
	t.Helper()
	shared.once.Do(func() { shared.pg, shared.err = testenv.StartPostgres() })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.pg
}

// quiet discards the logs of the code under test.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// dbURL is the URL of database name on pg.
func dbURL(pg *testenv.Postgres, name string) string {
	return "postgres://postgres@" + pg.Addr() + "/" + name + "?sslmode=disable"
}

// newDatabase creates an empty database on pg and returns its URL.
func newDatabase(t testing.TB, pg *testenv.Postgres) string {
	t.Helper()
	name := fmt.Sprintf("test_%d", shared.dbs.Add(1))
	admin := connect(t, pg.URL())
	exec(t, admin, "create database "+name)
	return dbURL(pg, name)
}

// connect opens a connection for the test itself, closed when it ends.
func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(scalertest.Context(t, 10*time.Second), url)
	must(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// exec runs sql (several statements allowed: no arguments means the
// simple protocol) and fails the test on error.
func exec(t testing.TB, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(scalertest.Context(t, 10*time.Second), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// bookingsSQL is the sample table: 3 confirmed (7 seats), 2 pending, 1
// cancelled.
const bookingsSQL = `
create table bookings (id serial primary key, status text not null, seats int);
insert into bookings (status, seats) values
	('confirmed', 2), ('confirmed', 4), ('pending', 1), ('cancelled', 3), ('confirmed', 1), ('pending', 5);`

// checksum sums up the bookings table and everything a query could have
// changed around it: equal checksums before and after mean no harm done.
func checksum(t testing.TB, conn *pgx.Conn) string {
	t.Helper()
	var sum string
	err := conn.QueryRow(scalertest.Context(t, 10*time.Second), `
		select format('%s rows, %s seats, [%s], seq %s, %s advisory locks, %s tables',
			count(*), sum(seats), string_agg(status, ',' order by id),
			(select last_value from bookings_id_seq),
			(select count(*) from pg_locks where locktype = 'advisory'),
			(select count(*) from pg_tables where schemaname = 'public'))
		from bookings`).Scan(&sum)
	must(t, err)
	return sum
}

// testConfig is a Config for the database at url with the production
// defaults, a shorter connect timeout and no named connections.
func testConfig(url string) Config {
	return Config{
		Config: sqlmetric.Config{
			QueryTimeout:  2 * time.Second,
			MaxRows:       10000,
			MaxQueryBytes: 8192,
			MaxRowBytes:   1 << 20,
			QueryPolicy:   sqlmetric.PolicyAny,
			Environ:       []string{}, // not the process's own
		},
		URL:               url,
		MaxConns:          4,
		MaxTargetConns:    1,
		AllowSuperuser:    true, // the throwaway server's postgres role
		MaxConnLifetime:   30 * time.Minute,
		MaxConnIdleTime:   5 * time.Minute,
		ConnectTimeout:    time.Second,
		MaxListenChannels: 8,
	}
}

// newBackend builds a Backend for cfg, closed when the test ends.
func newBackend(t testing.TB, cfg Config) *Backend {
	t.Helper()
	b, err := New(context.Background(), settings(t, cfg), scalerkit.Env{Log: quiet})
	return scalertest.Closing(t, b, err)
}

// resolve validates and resolves cfg, as scalerkit.Run does.
func resolve(cfg Config) (Settings, error) { return scalertest.Resolve[Config, Settings](cfg) }

// settings is resolve for a cfg that must be valid.
func settings(t testing.TB, cfg Config) Settings {
	t.Helper()
	return scalertest.Settings[Config, Settings](t, cfg)
}

// env is a database with the bookings table, a connection of the test's
// own to it, and the scaler served over it.
type env struct {
	pg  *testenv.Postgres
	url string
	db  *pgx.Conn
	b   *Backend
	s   *scalertest.Scaler
}

// newEnv creates a database with bookings on pg and serves a backend over
// it, configured by testConfig and then edit.
func newEnv(t testing.TB, pg *testenv.Postgres, edit func(*Config), opts scalertest.Options) *env {
	t.Helper()
	url := newDatabase(t, pg)
	db := connect(t, url)
	exec(t, db, bookingsSQL)
	cfg := testConfig(url)
	if edit != nil {
		edit(&cfg)
	}
	b := newBackend(t, cfg)
	return &env{pg: pg, url: url, db: db, b: b, s: scalertest.Serve(t, b, opts)}
}

// count returns the result of a counting query of the test's own.
func count(t testing.TB, conn *pgx.Conn, sql string, args ...any) int {
	t.Helper()
	var n int
	must(t, conn.QueryRow(scalertest.Context(t, 10*time.Second), sql, args...).Scan(&n))
	return n
}

// must fails the test on err.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
