package postgresquery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// clientMargin is how much longer than QUERY_TIMEOUT the client waits for
// a query before it gives up on the server (sqlmetric.Options.Margin):
// the server's statement timeout should always fire first and say so.
const clientMargin = time.Second

// endSQL ends every query's transaction. Session-level advisory locks
// (pg_advisory_lock) are the one thing a read-only query can take that a
// rollback keeps: release them, so that a query cannot hold a lock an
// application (or a migration tool) waits for.
const endSQL = "rollback; select pg_advisory_unlock_all()"

// Querier runs queries on one connection pool under the database's own
// guard. It implements sqlmetric.Querier. Every query runs:
//
//   - in a READ ONLY transaction that is always rolled back, so the
//     server refuses any write, whatever the SQL hides (a data-modifying
//     WITH, nextval, SELECT FOR UPDATE);
//   - with SET LOCAL statement_timeout = QUERY_TIMEOUT, so the server
//     cancels it, and a client deadline a little later in case the server
//     does not answer;
//   - as one statement over the extended protocol, so the server refuses
//     "select 1; delete ..." and parameters are bound, never spliced;
//   - as the unnamed statement in one round trip (QueryExecModeExec:
//     parameters are sent as text of unknown type, which the server types
//     as the statement needs), with pgx's statement and description caches
//     off: a one-off query leaves no prepared statement on the server and
//     nothing in the scaler.
//
// The client deadline is sqlmetric's (QUERY_TIMEOUT plus clientMargin).
type Querier struct {
	pool    *pgxpool.Pool
	timeout time.Duration
	mode    pgx.QueryExecMode
	begin   string
}

// NewQuerier returns a Querier over pool whose statements time out after
// queryTimeout (QUERY_TIMEOUT).
func NewQuerier(pool *pgxpool.Pool, queryTimeout time.Duration) *Querier {
	ms := (queryTimeout + time.Millisecond - 1) / time.Millisecond
	// One round trip (parse, bind, describe, execute as the unnamed
	// statement), parameters as text of unknown type for the server to
	// type, no statement kept on either side.
	mode := pgx.QueryExecModeExec
	return &Querier{
		pool:    pool,
		timeout: queryTimeout,
		mode:    mode,
		// One round trip; the number is ours, not user input. The final
		// select takes the transaction's first snapshot, after which
		// PostgreSQL refuses to make it read-write ("set transaction read
		// write" would otherwise still be accepted before any query).
		begin: fmt.Sprintf("begin transaction read only; set local statement_timeout = %d; select", ms),
	}
}

// Query implements sqlmetric.Querier. args are bound as parameters: Go
// strings are sent in text format, so the server converts "3" to the
// type the statement needs (where id = $1 binds it as an integer).
//
// A query that fails because its pooled connection was already closed by
// the server (a restart, a failover, a proxy's idle timeout) runs once
// more on a new connection, as long as it had delivered no row: it is
// read-only and rolled back, so running it again is harmless, and an
// outage that is already over is not reported to KEDA as one.
func (q *Querier) Query(ctx context.Context, sql string, args []any, row func(first any) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	delivered := false
	counted := func(v any) error {
		delivered = true
		return row(v)
	}
	err := q.query(ctx, cancel, sql, args, counted)
	if err != nil && !delivered && ctx.Err() == nil && connectionLost(err) {
		// Whatever closed this connection closed its idle siblings too:
		// drop them all rather than meet them one by one.
		q.pool.Reset()
		err = q.query(ctx, cancel, sql, args, counted)
	}
	return mapError(err, q.timeout)
}

// connectionLost reports whether err says that an open connection was
// gone, rather than that a new one could not be made or the query failed.
func connectionLost(err error) bool {
	var (
		connectErr *pgconn.ConnectError
		pgErr      *pgconn.PgError
		netErr     net.Error
	)
	switch {
	case errors.As(err, &connectErr):
		return false
	case errors.As(err, &pgErr):
		return pgErr.Code == "57P01" || pgErr.Code == "57P02" || strings.HasPrefix(pgErr.Code, "08")
	case pgconn.Timeout(err), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, pgconn.ErrConnClosed) || errors.As(err, &netErr)
}

func (q *Querier) query(ctx context.Context, cancel context.CancelFunc, sql string, args []any, row func(first any) error) error {
	conn, err := q.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// Release drops a connection left in a transaction, busy or closed.
	defer conn.Release()
	if _, err := conn.Conn().PgConn().Exec(ctx, q.begin).ReadAll(); err != nil {
		return fmt.Errorf("beginning a read-only transaction: %w", err)
	}
	defer func() {
		if _, endErr := conn.Conn().PgConn().Exec(ctx, endSQL).ReadAll(); endErr != nil {
			// Cancelled, or the connection is gone: its state is unknown,
			// so it must not serve another query.
			closeCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer stop()
			_ = conn.Conn().Close(closeCtx)
		}
	}()

	// Query, never Exec: pgx's Exec switches to the simple protocol when
	// there are no arguments, which runs several statements. The exec
	// mode goes first, so that no argument is ever taken for a query
	// option.
	rows, err := conn.Query(ctx, sql, append([]any{q.mode}, args...)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	// Decode the first column only: the others are skipped (nil).
	dest := make([]any, len(rows.FieldDescriptions()))
	var first any
	if len(dest) > 0 {
		dest[0] = &first
	}
	for rows.Next() {
		first = nil
		if err := rows.Scan(dest...); err != nil {
			cancel()
			return err
		}
		if err := row(first); err != nil {
			// Stop the statement now: closing the rows would otherwise read
			// every row the server still has to send.
			cancel()
			return err
		}
	}
	return rows.Err()
}

// roleError refuses a session whose role is a superuser or bypasses row
// security: READ ONLY does not stop what such a role can do outside
// tables (dblink_exec, pg_terminate_backend, reading server files).
type roleError struct {
	user, why string
}

func (e *roleError) Error() string {
	return fmt.Sprintf("the scaler's role %q %s: READ ONLY does not stop what it can do outside tables (dblink_exec writes and opens sessions, pg_terminate_backend, server files); connect as a role with CONNECT and SELECT only (see README, Security), or set POSTGRES_ALLOW_SUPERUSER=true for a throwaway database",
		e.user, e.why)
}

// roleSQL reads whether the session's login role bypasses row security.
const roleSQL = "select rolbypassrls from pg_catalog.pg_roles where rolname = session_user"

// checkRole is every pool's AfterConnect: it refuses a new session whose
// role is a superuser or bypasses row security, unless allow is set, in
// which case it warns once for a superuser (from the parameter the server
// reports at connection start, with no query).
func checkRole(allow bool, log *slog.Logger) func(context.Context, *pgx.Conn) error {
	var once sync.Once
	return func(ctx context.Context, conn *pgx.Conn) error {
		user := conn.Config().User
		super := strings.EqualFold(conn.PgConn().ParameterStatus("is_superuser"), "on")
		if allow {
			if super {
				once.Do(func() {
					log.Warn("the scaler's role is a superuser (POSTGRES_ALLOW_SUPERUSER=true): give it a role with CONNECT and SELECT only in production (see README, Security)",
						slog.String("user", user))
				})
			}
			return nil
		}
		if super {
			return &roleError{user: user, why: "is a superuser"}
		}
		var bypass bool
		if err := conn.QueryRow(ctx, roleSQL, pgx.QueryExecModeExec).Scan(&bypass); err != nil {
			return fmt.Errorf("reading the scaler's role attributes: %w", err)
		}
		if bypass {
			return &roleError{user: user, why: "bypasses row security (BYPASSRLS)"}
		}
		return nil
	}
}
