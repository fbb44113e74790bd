package oraclequery

import (
	"context"
	"errors"
	"time"

	"github.com/sijms/go-ora/v2/network"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Oracle error codes the scaler knows the cause of: go-ora reports a
// database error as *network.OracleError, ORA-NNNNN in ErrCode.
var (
	// Refused by the read-only guard or by the grants: the query, or a
	// function it calls, tried something the scaler must not do.
	permissionCodes = map[int]string{
		1456: "the database refused a write: the query runs in a READ ONLY transaction",
		1031: "the scaler's database user lacks a privilege the query needs (GRANT SELECT ON the table TO it)",
	}
	// The query itself is wrong: fixing it is the ScaledObject's (or the
	// operator's) job, retrying does not help.
	queryCodes = map[int]bool{
		900:  true, // invalid SQL statement
		904:  true, // invalid identifier
		907:  true, // missing right parenthesis
		911:  true, // invalid character (often a trailing ';')
		923:  true, // FROM keyword not found where expected
		933:  true, // SQL command not properly ended
		936:  true, // missing expression
		942:  true, // table or view does not exist
		1008: true, // not all variables bound
		1722: true, // invalid number
	}
	// The database answers but refuses the scaler's setup: its user,
	// password or account. Retrying does not help; the operator must act.
	setupCodes = map[int]string{
		1017:  "the database refused the scaler's user or password (ORACLE_USER, ORACLE_PASSWORD or the URL)",
		1045:  "the scaler's user lacks CREATE SESSION (GRANT CREATE SESSION TO it)",
		28000: "the scaler's account is locked",
		28001: "the scaler's password has expired",
	}
	// The database or the way to it is down: KEDA must hear an outage, not
	// a 0.
	unavailableCodes = map[int]bool{
		1033:  true, // initialization or shutdown in progress
		1034:  true, // Oracle not available
		1089:  true, // immediate shutdown in progress
		3113:  true, // end-of-file on communication channel
		3114:  true, // not connected to Oracle
		3135:  true, // connection lost contact
		12170: true, // connect timeout occurred
		12514: true, // listener does not know of the service
		12528: true, // all instances are blocking new connections
		12537: true, // connection closed
		12541: true, // no listener
	}
)

// userCancel is ORA-01013, "user requested cancel of current operation":
// what Oracle answers when go-ora breaks a call because its context ended.
const userCancel = 1013

// mapError turns an error of go-ora or database/sql into a gRPC status
// where the cause is known, and leaves the rest as it is (scalerkit
// reports that as Unavailable). queryTimeout is QUERY_TIMEOUT, named in
// timeouts.
func mapError(err error, queryTimeout time.Duration) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, network.ErrConnReset) {
		return status.Errorf(codes.DeadlineExceeded, "the query did not finish within QUERY_TIMEOUT=%v and was cancelled: %v", queryTimeout, err)
	}
	var oe *network.OracleError
	if !errors.As(err, &oe) {
		return err
	}
	switch code := oe.ErrCode; {
	case code == userCancel:
		return status.Errorf(codes.DeadlineExceeded, "the query was cancelled (QUERY_TIMEOUT=%v or the caller's deadline): %v", queryTimeout, err)
	case setupCodes[code] != "":
		return status.Errorf(codes.FailedPrecondition, "%s: %v", setupCodes[code], err)
	case permissionCodes[code] != "":
		return status.Errorf(codes.PermissionDenied, "%s: %v", permissionCodes[code], err)
	case queryCodes[code]:
		return status.Errorf(codes.InvalidArgument, "the database refused the query: %v", err)
	case unavailableCodes[code]:
		return status.Errorf(codes.Unavailable, "the database is not reachable: %v", err)
	}
	return err
}
