package oraclequery

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sijms/go-ora/v2/network"
	"go.uber.org/goleak"

	"github.com/kedascalers/kedascalers/libs/scalerkit/config"
	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// quiet discards the logs of the code under test.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// sqlDefaults is sqlmetric.Config with its production defaults.
func sqlDefaults() sqlmetric.Config {
	return sqlmetric.Config{QueryTimeout: 4 * time.Second, MaxRows: 10000, MaxQueryBytes: 8192, MaxRowBytes: 1 << 20, QueryPolicy: sqlmetric.PolicyAny}
}

// testConfig is a Config with the production defaults and url as the
// default connection.
func testConfig(url string) Config {
	return Config{
		Config:          sqlDefaults(),
		URL:             url,
		Port:            1521,
		MaxConns:        4,
		MaxTargetConns:  1,
		MaxIdleConns:    2,
		MaxConnLifetime: 30 * time.Minute,
		MaxConnIdleTime: 5 * time.Minute,
	}
}

// resolve validates and resolves cfg, as scalerkit.Run does.
func resolve(cfg Config) (Settings, error) { return scalertest.Resolve[Config, Settings](cfg) }

// settings is resolve for a cfg that must be valid.
func settings(t testing.TB, cfg Config) Settings {
	t.Helper()
	return scalertest.Settings[Config, Settings](t, cfg)
}

// newTestBackend builds a backend over dbs with dialect d, closed when the
// test ends.
func newTestBackend(t testing.TB, cfg sqlmetric.Config, dbs map[string]*sql.DB, d dialect) *Backend {
	t.Helper()
	sc, err := cfg.Resolve(config.Config{})
	if err != nil {
		t.Fatal(err)
	}
	pools := sqlmetric.NewPools[*sql.DB]()
	pools.Value = dbs
	b, err := newBackend(sc, pools, d, nil)
	if err != nil {
		t.Fatalf("newBackend: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// oraErr is an error shaped like the ones go-ora returns for ORA-code.
func oraErr(code int, msg string) error {
	return &network.OracleError{ErrCode: code, ErrMsg: fmt.Sprintf("ORA-%05d: %s", code, msg)}
}

// fakeOracle is a database/sql driver that answers like go-ora v2 does:
// NUMBER as decimal text, BINARY_DOUBLE as float64, errors as
// *network.OracleError, ORA-01456 for a write in a READ ONLY transaction,
// ORA-01013 when a call's context ends, and a refusal of read-only
// TxOptions. It records what it is asked.
type fakeOracle struct {
	mu      sync.Mutex
	answers map[string]fakeAnswer
	log     []string // "begin", each statement, "commit", "rollback"
	writes  int      // writes that were let through
	txOpts  []driver.TxOptions
}

// fakeAnswer is what fakeOracle answers to one statement.
type fakeAnswer struct {
	rows  []any // first columns
	err   error
	write bool // a DML statement: refused in a read-only transaction
	slow  bool // runs until its context ends, then ORA-01013
}

// newFakeOracle returns a fakeOracle with these answers and a *sql.DB
// over it, closed when the test ends.
func newFakeOracle(t testing.TB, answers map[string]fakeAnswer) (*fakeOracle, *sql.DB) {
	t.Helper()
	f := &fakeOracle{answers: answers}
	db := sql.OpenDB(f)
	t.Cleanup(func() { _ = db.Close() })
	return f, db
}

func (f *fakeOracle) record(s string) {
	f.mu.Lock()
	f.log = append(f.log, s)
	f.mu.Unlock()
}

// statements returns what was asked so far and forgets it.
func (f *fakeOracle) statements() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.log
	f.log = nil
	return out
}

// Connect implements driver.Connector.
func (f *fakeOracle) Connect(context.Context) (driver.Conn, error) { return &fakeConn{f: f}, nil }

// Driver implements driver.Connector.
func (f *fakeOracle) Driver() driver.Driver { return f }

// Open implements driver.Driver.
func (f *fakeOracle) Open(string) (driver.Conn, error) { return &fakeConn{f: f}, nil }

// fakeConn is one session of a fakeOracle.
type fakeConn struct {
	f        *fakeOracle
	inTx     bool
	readOnly bool
}

func (c *fakeConn) Prepare(string) (driver.Stmt, error) {
	return nil, errors.New("fakeOracle: Prepare is not used by the scaler")
}
func (c *fakeConn) Close() error { return nil }
func (c *fakeConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx refuses what go-ora refuses (connection.go, Connection.BeginTx).
func (c *fakeConn) BeginTx(_ context.Context, opts driver.TxOptions) (driver.Tx, error) {
	c.f.mu.Lock()
	c.f.txOpts = append(c.f.txOpts, opts)
	c.f.mu.Unlock()
	if opts.ReadOnly {
		return nil, errors.New("readonly transaction is not supported")
	}
	c.f.record("begin")
	c.inTx, c.readOnly = true, false
	return &fakeTx{c: c}, nil
}

func (c *fakeConn) ExecContext(ctx context.Context, query string, _ []driver.NamedValue) (driver.Result, error) {
	c.f.record(query)
	if strings.EqualFold(query, "SET TRANSACTION READ ONLY") {
		c.readOnly = c.inTx
		return driver.RowsAffected(0), nil
	}
	if _, err := c.answer(ctx, query); err != nil {
		return nil, err
	}
	return driver.RowsAffected(1), nil
}

func (c *fakeConn) QueryContext(ctx context.Context, query string, _ []driver.NamedValue) (driver.Rows, error) {
	c.f.record(query)
	a, err := c.answer(ctx, query)
	if err != nil {
		return nil, err
	}
	return &fakeRows{vals: a.rows}, nil
}

func (c *fakeConn) answer(ctx context.Context, query string) (fakeAnswer, error) {
	a, ok := c.f.answers[query]
	switch {
	case !ok:
		return a, oraErr(942, "table or view does not exist")
	case a.slow:
		<-ctx.Done()
		return a, oraErr(userCancel, "user requested cancel of current operation")
	case a.err != nil:
		return a, a.err
	case a.write && c.readOnly:
		return a, oraErr(1456, "may not perform insert/delete/update operation inside a READ ONLY transaction")
	case a.write:
		c.f.mu.Lock()
		c.f.writes++
		c.f.mu.Unlock()
	}
	return a, nil
}

// fakeTx ends a fakeConn's transaction.
type fakeTx struct{ c *fakeConn }

func (tx *fakeTx) Commit() error {
	tx.c.f.record("commit")
	tx.c.inTx, tx.c.readOnly = false, false
	return nil
}

func (tx *fakeTx) Rollback() error {
	tx.c.f.record("rollback")
	tx.c.inTx, tx.c.readOnly = false, false
	return nil
}

// fakeRows are rows of one column.
type fakeRows struct {
	vals []any
	i    int
}

func (r *fakeRows) Columns() []string { return []string{"C1"} }
func (r *fakeRows) Close() error      { return nil }
func (r *fakeRows) Next(dest []driver.Value) error {
	if r.i >= len(r.vals) {
		return io.EOF
	}
	dest[0] = r.vals[r.i]
	r.i++
	return nil
}
