package oraquery

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	go_ora "github.com/sijms/go-ora/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
)

// readOnlyStatement is the first statement of every transaction the
// scaler runs. Oracle then refuses any INSERT, UPDATE, DELETE or MERGE in
// it with ORA-01456, and the transaction is rolled back after the query
// anyway. go-ora cannot open a read-only transaction itself: its BeginTx
// refuses TxOptions.ReadOnly (connection.go, Connection.BeginTx), so the
// statement does it.
//
// Oracle has no statement timeout to set here: QUERY_TIMEOUT is the
// context's deadline. go-ora watches the context while it executes a
// query and fetches its first rows (command.go, Stmt.QueryContext, and
// network/session.go, Session.StartContext): when it ends, go-ora sends
// the server a break (out-of-band urgent data where negotiated, else an
// interrupt marker packet), and the server aborts the call with ORA-01013.
// Later fetches of a long result are bounded by go-ora's socket timeout
// only (the URL option CONNECTION TIMEOUT; see the README).
const readOnlyStatement = "SET TRANSACTION READ ONLY"

// readOnly is the Guard of every Oracle connection.
func readOnly(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, readOnlyStatement)
	return err
}

// dialect is what a database adds to sqlmetric.DB: the guard that opens
// every transaction and the mapping of its errors. Tests run the backend
// on PostgreSQL with a dialect of their own.
type dialect struct {
	guard    func(ctx context.Context, tx *sql.Tx) error
	mapError func(err error, queryTimeout time.Duration) error
}

// oracle is the Oracle dialect.
var oracle = dialect{guard: readOnly, mapError: mapError}

// Backend is the oracle-query backend: sqlmetric's SQL triggers (Parse)
// over one go-ora connection pool per configured connection. It is safe
// for concurrent use; Close closes the pools.
type Backend struct {
	*sqlmetric.Backend

	dbs      map[string]*sql.DB
	queriers map[string]sqlmetric.Querier
}

// New validates cfg and returns a Backend. It connects to nothing: a pool
// opens its first session on the first query, so the scaler starts (and
// reports Unavailable) while the database is down.
func New(cfg Config, log *slog.Logger) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	urls, err := cfg.Connections()
	if err != nil {
		return nil, err
	}
	dbs := make(map[string]*sql.DB, len(urls))
	for name, u := range urls {
		// A connector of its own per connection rather than
		// sql.Open("oracle", u): go-ora's registered driver is one value
		// shared by every sql.Open and keeps the character-set converters
		// of the first database it met (driver.go, OracleDriver.init).
		db := sql.OpenDB(go_ora.NewConnector(u))
		cfg.applyPool(db)
		dbs[name] = db
	}
	b, err := newBackend(cfg.Config, dbs, oracle)
	if err != nil {
		for _, db := range dbs {
			_ = db.Close()
		}
		return nil, err
	}
	log.Info("oracle configured", slog.Any("connections", slices.Sorted(maps.Keys(dbs))),
		slog.Int("maxOpenConns", cfg.MaxOpenConns), slog.Duration("queryTimeout", cfg.QueryTimeout),
		slog.String("queryPolicy", cfg.QueryPolicy), slog.Int("maxRows", cfg.MaxRows))
	return b, nil
}

// newBackend builds the backend over open pools, one per connection name.
func newBackend(cfg sqlmetric.Config, dbs map[string]*sql.DB, d dialect) (*Backend, error) {
	b := &Backend{dbs: dbs, queriers: make(map[string]sqlmetric.Querier, len(dbs))}
	for name, db := range dbs {
		b.queriers[name] = &timeoutQuerier{
			db: &sqlmetric.DB{
				DB:       db,
				Guard:    d.guard,
				MapError: func(err error) error { return d.mapError(err, cfg.QueryTimeout) },
			},
			timeout: cfg.QueryTimeout,
		}
	}
	core, err := sqlmetric.NewBackend(cfg, b.queriers, Number)
	if err != nil {
		return nil, err
	}
	b.Backend = core
	return b, nil
}

// Close closes every connection pool.
func (b *Backend) Close() error {
	var errs []error
	for name, db := range b.dbs {
		if err := db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing connection %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// timeoutQuerier bounds every query of db with QUERY_TIMEOUT: Oracle has
// no statement timeout, so the context is the timeout.
type timeoutQuerier struct {
	db      sqlmetric.Querier
	timeout time.Duration
}

// Query implements sqlmetric.Querier. A query that outlives QUERY_TIMEOUT
// is DeadlineExceeded naming it, whatever go-ora said when it was broken
// off; one that outlives the caller's context (BACKEND_TIMEOUT) is that
// context's error, for scalerkit to report as its own. Errors of row come
// back as they are.
func (q *timeoutQuerier) Query(ctx context.Context, sql string, args []any, row func(first any) error) error {
	qctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	var rowErr error
	err := q.db.Query(qctx, sql, args, func(first any) error {
		rowErr = row(first)
		return rowErr
	})
	switch {
	case err == nil || rowErr != nil:
		return err
	case ctx.Err() != nil:
		return fmt.Errorf("the query was cancelled: %w", ctx.Err())
	case qctx.Err() != nil:
		return status.Errorf(codes.DeadlineExceeded, "the query did not finish within QUERY_TIMEOUT=%v and was cancelled: %v", q.timeout, err)
	}
	return err
}
