package postgresquery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
)

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
	var (
		roleErr *roleError
		bodyErr *pgproto3.ExceededMaxBodyLenErr
	)
	switch {
	case errors.As(err, &roleErr):
		return status.Error(codes.FailedPrecondition, roleErr.Error())
	case errors.As(err, &bodyErr):
		// Refused from the message's header, before its body is read.
		return &sqlmetric.RowTooLargeError{Bytes: bodyErr.ActualBodyLen}
	case errors.As(err, &connectErr) && errors.As(err, &pgErr):
		// The server answered and refused: say why once (a ConnectError
		// repeats the reason for every address it tried).
		if st := mapPgError(pgErr, queryTimeout); st != nil && status.Code(st) != codes.Unavailable {
			return st
		}
		return status.Errorf(codes.Unavailable, "PostgreSQL refused the connection: %s (SQLSTATE %s)", pgErr.Message, pgErr.Code)
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
	case codes.FailedPrecondition:
		return status.Errorf(codes.FailedPrecondition, "PostgreSQL refuses the scaler's setup (check the role, password and database of the connection): %s", msg)
	case codes.Unavailable:
		return status.Errorf(codes.Unavailable, "PostgreSQL is not available: %s", msg)
	}
	return nil
}

// classCodes maps SQLSTATE classes to a code: the query's fault
// (InvalidArgument) or the database's state (Unavailable).
var classCodes = map[string]codes.Code{
	"42": codes.InvalidArgument,    // syntax error or access rule violation (42601: several statements; 42P01: no such table)
	"22": codes.InvalidArgument,    // data exception (a parameter of the wrong type, division by zero)
	"0A": codes.InvalidArgument,    // feature not supported
	"21": codes.InvalidArgument,    // cardinality violation (a subquery returned several rows)
	"2F": codes.InvalidArgument,    // SQL routine exception
	"38": codes.InvalidArgument,    // external routine exception
	"39": codes.InvalidArgument,    // external routine invocation exception
	"3F": codes.InvalidArgument,    // invalid schema name
	"44": codes.InvalidArgument,    // WITH CHECK OPTION violation
	"54": codes.InvalidArgument,    // program limit exceeded (a statement too complex)
	"P0": codes.InvalidArgument,    // PL/pgSQL error (RAISE)
	"08": codes.Unavailable,        // connection exception
	"53": codes.Unavailable,        // insufficient resources (too many connections, out of memory)
	"28": codes.FailedPrecondition, // invalid authorization (a wrong password, no such role)
	"3D": codes.FailedPrecondition, // no such database
	"58": codes.Unavailable,        // system error
}
