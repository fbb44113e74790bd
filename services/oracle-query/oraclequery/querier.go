package oraclequery

import (
	"context"
	"database/sql"
	"time"

	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
)

// readOnlyStatement opens every transaction, so that Oracle refuses any
// write in it (ORA-01456): go-ora's BeginTx does not take
// TxOptions.ReadOnly. Oracle has no statement timeout: QUERY_TIMEOUT is
// the context's deadline, at which go-ora breaks the call (ORA-01013).
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

// querier returns the sqlmetric.Querier of db in dialect d: its deadline
// is the context's (QUERY_TIMEOUT), and each query's one cursor is closed
// with its rows, so nothing is kept between queries.
func (d dialect) querier(db *sql.DB, cfg sqlmetric.Config) sqlmetric.Querier {
	return &sqlmetric.DB{
		DB:          db,
		Guard:       d.guard,
		MapError:    func(err error) error { return d.mapError(err, cfg.QueryTimeout) },
		MaxRowBytes: cfg.MaxRowBytes,
	}
}
