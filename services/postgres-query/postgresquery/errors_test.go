package postgresquery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"google.golang.org/grpc/codes"

	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
)

func TestMapError(t *testing.T) {
	t.Parallel()
	pgErr := func(code, msg string) error {
		return fmt.Errorf("wrapped: %w", &pgconn.PgError{Severity: "ERROR", Code: code, Message: msg})
	}
	sentinel := errors.New("too many rows")
	tests := []struct {
		name string
		err  error
		code codes.Code // codes.Unknown: returned as it is
		want string
	}{
		{"read-only transaction", pgErr("25006", "cannot execute DELETE in a read-only transaction"), codes.PermissionDenied, "read-only"},
		{"read-write mode", pgErr("25001", "transaction read-write mode must be set before any query"), codes.PermissionDenied, "read-only transaction"},
		{"insufficient privilege", pgErr("42501", "permission denied for table salaries"), codes.PermissionDenied, "permission denied for table salaries"},
		{"statement timeout", pgErr("57014", "canceling statement due to statement timeout"), codes.DeadlineExceeded, "QUERY_TIMEOUT=1s"},
		{"several statements", pgErr("42601", "cannot insert multiple commands into a prepared statement"), codes.InvalidArgument, "multiple commands"},
		{"syntax", pgErr("42601", `syntax error at or near "selec"`), codes.InvalidArgument, "SQLSTATE 42601"},
		{"undefined table", pgErr("42P01", `relation "nope" does not exist`), codes.InvalidArgument, `"nope"`},
		{"undefined function", pgErr("42883", "function nope() does not exist"), codes.InvalidArgument, "nope()"},
		{"bad parameter", pgErr("22P02", `invalid input syntax for type integer: "abc"`), codes.InvalidArgument, "abc"},
		{"division by zero", pgErr("22012", "division by zero"), codes.InvalidArgument, "division by zero"},
		{"subquery rows", pgErr("21000", "more than one row returned by a subquery used as an expression"), codes.InvalidArgument, "more than one row"},
		{"not supported", pgErr("0A000", "not supported"), codes.InvalidArgument, "not supported"},
		{"admin shutdown", pgErr("57P01", "terminating connection due to administrator command"), codes.Unavailable, "administrator"},
		{"crash shutdown", pgErr("57P02", "terminating connection due to crash"), codes.Unavailable, "crash"},
		{"starting up", pgErr("57P03", "the database system is starting up"), codes.Unavailable, "starting up"},
		{"connection failure", pgErr("08006", "connection failure"), codes.Unavailable, "connection failure"},
		{"too many connections", pgErr("53300", "sorry, too many clients already"), codes.Unavailable, "too many clients"},
		{"out of memory", pgErr("53200", "out of memory"), codes.Unavailable, "out of memory"},
		{"wrong password", pgErr("28P01", `password authentication failed for user "scaler"`), codes.FailedPrecondition, "password"},
		{"no such role", pgErr("28000", `role "nobody" does not exist`), codes.FailedPrecondition, `role "nobody" does not exist`},
		{"no such database", pgErr("3D000", `database "nodb" does not exist`), codes.FailedPrecondition, `database "nodb" does not exist`},
		{"refused role", fmt.Errorf("connect: %w", &roleError{user: "postgres", why: "is a superuser"}), codes.FailedPrecondition, "POSTGRES_ALLOW_SUPERUSER"},
		{"serialization failure", pgErr("40001", "could not serialize access"), codes.Unknown, ""},
		{"internal error", pgErr("XX000", "internal error"), codes.Unknown, ""},
		{"connect", connectError(t), codes.Unavailable, "connecting to PostgreSQL"},
		{"deadline", fmt.Errorf("acquiring: %w", context.DeadlineExceeded), codes.DeadlineExceeded, "no answer from PostgreSQL"},
		{"connection lost", fmt.Errorf("reading: %w", io.ErrUnexpectedEOF), codes.Unavailable, "lost the connection"},
		{"connection closed", fmt.Errorf("query: %w", pgconn.ErrConnClosed), codes.Unavailable, "lost the connection"},
		{"network", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, codes.Unavailable, "lost the connection"},
		{"canceled", context.Canceled, codes.Unknown, ""},
		{"row callback", sentinel, codes.Unknown, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mapError(tt.err, time.Second)
			if tt.code == codes.Unknown {
				if !errors.Is(got, tt.err) && got != tt.err {
					t.Fatalf("mapError(%v) = %v, want it unchanged", tt.err, got)
				}
				return
			}
			scalertest.WantStatus(t, got, tt.code, tt.want)
		})
	}
	if mapError(nil, time.Second) != nil {
		t.Error("mapError(nil) != nil")
	}
	// A message past MAX_ROW_BYTES is the SQL core's to report, as for
	// every driver.
	var tooLarge *sqlmetric.RowTooLargeError
	got := mapError(fmt.Errorf("receive: %w", &pgproto3.ExceededMaxBodyLenErr{MaxExpectedBodyLen: 1024, ActualBodyLen: 60000006}), time.Second)
	if !errors.As(got, &tooLarge) || tooLarge.Bytes != 60000006 {
		t.Errorf("mapError(a message too large) = %v, want a *sqlmetric.RowTooLargeError of 60000006 bytes", got)
	}
}

func TestConnectionLost(t *testing.T) {
	t.Parallel()
	pgErr := func(code string) error { return &pgconn.PgError{Code: code} }
	tests := []struct {
		err  error
		want bool
	}{
		{pgErr("57P01"), true}, // terminated: a restart, pg_terminate_backend
		{pgErr("57P02"), true}, // crash
		{pgErr("08006"), true},
		{fmt.Errorf("x: %w", io.ErrUnexpectedEOF), true},
		{fmt.Errorf("x: %w", pgconn.ErrConnClosed), true},
		{&net.OpError{Op: "write", Net: "tcp", Err: syscall.EPIPE}, true},
		{connectError(t), false}, // a new connection: the server is down
		{pgErr("57P03"), false},  // starting up: a retry now fails too
		{pgErr("25006"), false},
		{pgErr("57014"), false},
		{context.DeadlineExceeded, false},
		{context.Canceled, false},
		{errors.New("too many rows"), false},
	}
	for _, tt := range tests {
		if got := connectionLost(tt.err); got != tt.want {
			t.Errorf("connectionLost(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// connectError returns the error of connecting to a closed port.
func connectError(t *testing.T) error {
	t.Helper()
	_, err := pgconn.Connect(scalertest.Context(t, 5*time.Second), "postgres://scaler@127.0.0.1:1/app?sslmode=disable&connect_timeout=1")
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) {
		t.Fatalf("connecting to port 1: %v, want a *pgconn.ConnectError", err)
	}
	return err
}
