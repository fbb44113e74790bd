package pgquery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// clientMargin is how much longer than QUERY_TIMEOUT the client waits for
// a query before it gives up on the server: the server's statement
// timeout should always fire first and say so.
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
//     "select 1; delete ..." and parameters are bound, never spliced.
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
	mode := pool.Config().ConnConfig.DefaultQueryExecMode
	if mode == pgx.QueryExecModeSimpleProtocol {
		mode = pgx.QueryExecModeCacheStatement // Config.Validate refuses it; never fall back to it here
	}
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
	ctx, cancel := context.WithTimeout(ctx, q.timeout+clientMargin)
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

// mapError turns a pgx error into the gRPC status KEDA gets, where the
// cause is known; other errors are returned as they are (scalerkit reports
// them as Unavailable). Errors of the row callback pass unchanged.
func mapError(err error, queryTimeout time.Duration) error {
	if err == nil {
		return nil
	}
	var (
		connectErr *pgconn.ConnectError
		pgErr      *pgconn.PgError
		netErr     net.Error
	)
	switch {
	case errors.As(err, &connectErr):
		return status.Errorf(codes.Unavailable, "connecting to PostgreSQL: %v", err)
	case errors.As(err, &pgErr):
		if st := mapPgError(pgErr, queryTimeout); st != nil {
			return st
		}
		return err
	case errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err):
		return status.Errorf(codes.DeadlineExceeded, "no answer from PostgreSQL in time (QUERY_TIMEOUT=%v plus %v, or BACKEND_TIMEOUT if shorter): %v", queryTimeout, clientMargin, err)
	case errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, pgconn.ErrConnClosed), errors.As(err, &netErr):
		return status.Errorf(codes.Unavailable, "lost the connection to PostgreSQL: %v", err)
	}
	return err
}

// mapPgError maps an error the server reported by its SQLSTATE
// (https://www.postgresql.org/docs/current/errcodes-appendix.html), or
// returns nil for a cause it does not know.
func mapPgError(e *pgconn.PgError, queryTimeout time.Duration) error {
	msg := fmt.Sprintf("%s (SQLSTATE %s)", e.Message, e.Code)
	class := e.Code[:min(2, len(e.Code))]
	switch {
	case e.Code == "25006": // read_only_sql_transaction
		return status.Errorf(codes.PermissionDenied, "query refused: the scaler runs queries read-only: %s", msg)
	case class == "25": // e.g. trying to make the transaction read-write
		return status.Errorf(codes.PermissionDenied, "query refused: the scaler runs queries in a read-only transaction it controls: %s", msg)
	case e.Code == "42501": // insufficient_privilege
		return status.Errorf(codes.PermissionDenied, "query refused: the scaler's database user may not do this: %s", msg)
	case e.Code == "57014": // query_canceled: the statement timeout
		return status.Errorf(codes.DeadlineExceeded, "query cancelled by PostgreSQL after QUERY_TIMEOUT=%v: %s", queryTimeout, msg)
	case e.Code == "57P01", e.Code == "57P02", e.Code == "57P03": // shutting down, crashed, starting
		return status.Errorf(codes.Unavailable, "PostgreSQL is not available: %s", msg)
	}
	switch classCodes[class] {
	case codes.InvalidArgument:
		return status.Errorf(codes.InvalidArgument, "query refused by PostgreSQL: %s", msg)
	case codes.Unavailable:
		return status.Errorf(codes.Unavailable, "PostgreSQL is not available: %s", msg)
	}
	return nil
}

// classCodes maps SQLSTATE classes to a code: the query's fault
// (InvalidArgument) or the database's state (Unavailable).
var classCodes = map[string]codes.Code{
	"42": codes.InvalidArgument, // syntax error or access rule violation (42601: several statements; 42P01: no such table)
	"22": codes.InvalidArgument, // data exception (a parameter of the wrong type, division by zero)
	"0A": codes.InvalidArgument, // feature not supported
	"21": codes.InvalidArgument, // cardinality violation (a subquery returned several rows)
	"2F": codes.InvalidArgument, // SQL routine exception
	"38": codes.InvalidArgument, // external routine exception
	"39": codes.InvalidArgument, // external routine invocation exception
	"3F": codes.InvalidArgument, // invalid schema name
	"44": codes.InvalidArgument, // WITH CHECK OPTION violation
	"54": codes.InvalidArgument, // program limit exceeded (a statement too complex)
	"P0": codes.InvalidArgument, // PL/pgSQL error (RAISE)
	"08": codes.Unavailable,     // connection exception
	"53": codes.Unavailable,     // insufficient resources (too many connections, out of memory)
	"28": codes.Unavailable,     // invalid authorization (a wrong password)
	"3D": codes.Unavailable,     // no such database
	"58": codes.Unavailable,     // system error
}

// isSuperuser reports whether conn's session runs as a superuser, from
// the parameter PostgreSQL reports at connection start (no query).
func isSuperuser(conn *pgx.Conn) bool {
	return strings.EqualFold(conn.PgConn().ParameterStatus("is_superuser"), "on")
}
