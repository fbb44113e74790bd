package sqlmetric

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// DB is a Querier over database/sql, for drivers that speak it.
// The database-specific part is Guard and MapError.
type DB struct {
	// DB is the connection pool. Its limits (SetMaxOpenConns and friends)
	// are the service's to set: DB opens no connection of its own.
	DB *sql.DB
	// Guard runs first in every transaction: it makes the transaction read
	// only and sets the statement timeout where the database has one.
	Guard func(ctx context.Context, tx *sql.Tx) error
	// MapError turns a driver error into a gRPC status error where the
	// cause is known (see Querier); nil leaves errors as they are.
	MapError func(error) error
	// MaxRowBytes is MAX_ROW_BYTES: a row whose text and binary values
	// are larger in all is a *RowTooLargeError.
	MaxRowBytes int
}

// Query implements Querier: one transaction, guarded, rolled back. An
// error of row comes back as it is, past MapError.
func (d *DB) Query(ctx context.Context, query string, args []any, row func(first any) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var rowErr error
	err := d.query(ctx, cancel, query, args, func(first any) error {
		rowErr = row(first)
		return rowErr
	})
	var tooLarge *RowTooLargeError
	if err != nil && rowErr == nil && !errors.As(err, &tooLarge) && d.MapError != nil {
		return d.MapError(err)
	}
	return err
}

func (d *DB) query(ctx context.Context, cancel context.CancelFunc, query string, args []any, row func(first any) error) error {
	tx, err := d.DB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning a transaction: %w", err)
	}
	defer tx.Rollback() // read only: nothing to keep
	if d.Guard != nil {
		if err := d.Guard(ctx, tx); err != nil {
			return fmt.Errorf("guarding the transaction: %w", err)
		}
	}
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		size := 0
		for _, v := range vals {
			size += ValueBytes(v)
		}
		if size > d.MaxRowBytes {
			cancel()
			return &RowTooLargeError{Bytes: size}
		}
		var first any
		if len(vals) > 0 {
			first = vals[0]
		}
		if err := row(first); err != nil {
			cancel() // stop the statement rather than drain its rows
			return err
		}
	}
	return rows.Err()
}
