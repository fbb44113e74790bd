package oraclequery

import (
	"context"
	"database/sql"
	"time"

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

// querier returns the sqlmetric.Querier of db in dialect d. Its deadline
// is sqlmetric's (QUERY_TIMEOUT): Oracle has no statement timeout, so the
// context is the timeout.
//
// What a statement leaves behind: go-ora keeps no statement or cursor
// cache of its own (its StmtCacheSize option is not implemented in
// v2.8.24); each query opens one cursor that closing its rows closes on
// the server. The server's own caches are bounded by the server: the
// session cursor cache by SESSION_CACHED_CURSORS (default 50), the shared
// pool's SQL area by its LRU.
func (d dialect) querier(db *sql.DB, cfg sqlmetric.Config) sqlmetric.Querier {
	return &sqlmetric.DB{
		DB:          db,
		Guard:       d.guard,
		MapError:    func(err error) error { return d.mapError(err, cfg.QueryTimeout) },
		MaxRowBytes: cfg.MaxRowBytes,
	}
}
