package pgquery

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
	"github.com/kedascalers/kedascalers/libs/scalerkit/testenv"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
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
	conn, err := pgx.Connect(timeout(t, 10*time.Second), url)
	must(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// exec runs sql (several statements allowed: no arguments means the
// simple protocol) and fails the test on error.
func exec(t testing.TB, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(timeout(t, 10*time.Second), sql); err != nil {
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
	err := conn.QueryRow(timeout(t, 10*time.Second), `
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
			QueryTimeout: 2 * time.Second,
			MaxRows:      10000,
			QueryPolicy:  sqlmetric.PolicyAny,
		},
		URL:               url,
		MaxConns:          4,
		MaxConnLifetime:   30 * time.Minute,
		MaxConnIdleTime:   5 * time.Minute,
		ConnectTimeout:    time.Second,
		MaxListenChannels: 8,
		Named:             map[string]Connection{}, // not from the environment
	}
}

// newBackend builds a Backend for cfg, closed when the test ends.
func newBackend(t testing.TB, cfg Config) *Backend {
	t.Helper()
	b, err := New(cfg, quiet)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
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

// getMetrics makes KEDA's GetMetrics call and returns the one value.
func (e *env) getMetrics(ctx context.Context, md map[string]string) (float64, error) {
	res, err := e.s.Client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: scalertest.Ref(md), MetricName: "query_value"})
	if err != nil {
		return 0, err
	}
	if n := len(res.GetMetricValues()); n != 1 {
		return 0, fmt.Errorf("GetMetrics returned %d values, want 1", n)
	}
	return res.GetMetricValues()[0].GetMetricValueFloat(), nil
}

// count returns the result of a counting query of the test's own.
func count(t testing.TB, conn *pgx.Conn, sql string, args ...any) int {
	t.Helper()
	var n int
	must(t, conn.QueryRow(timeout(t, 10*time.Second), sql, args...).Scan(&n))
	return n
}

// timeout returns a context that ends after d or with the test.
func timeout(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// must fails the test on err.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantStatus fails the test unless err is a gRPC status with code whose
// message contains every fragment.
func wantStatus(t testing.TB, err error, code codes.Code, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", code)
	}
	st, _ := status.FromError(err)
	if st.Code() != code {
		t.Fatalf("code %v (%v), want %v", st.Code(), st.Message(), code)
	}
	for _, f := range fragments {
		if !strings.Contains(st.Message(), f) {
			t.Errorf("message %q does not contain %q", st.Message(), f)
		}
	}
}

// eventually calls f every 20ms until it returns nil or d has passed,
// and returns its last error.
func eventually(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// messages delivers what recv returns until it fails or ctx ends.
func messages[T any](ctx context.Context, recv func() (T, error)) <-chan T {
	ch := make(chan T)
	go func() {
		defer close(ch)
		for {
			m, err := recv()
			if err != nil {
				return
			}
			select {
			case ch <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// next returns the next message of ch, failing the test when none comes
// within d.
func next[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatalf("%s: stream ended", what)
		}
		return m
	case <-time.After(d):
		t.Fatalf("%s: no message within %v", what, d)
	}
	panic("unreachable")
}
