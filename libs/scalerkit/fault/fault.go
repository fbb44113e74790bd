// Package fault tells whose problem a failed backend call is: the
// tenant's, who wrote the trigger (a key of the wrong type, a query the
// read-only guard refuses), or the platform's, who runs the scaler and
// its backend (an outage, credentials, a limit). Metrics and log levels
// follow it, so that an alert on the platform's problems never pages for
// a tenant's typo.
//
// By its gRPC code alone an error is the tenant's when the code is
// InvalidArgument, OutOfRange, NotFound or PermissionDenied; a backend
// marks the tenant's errors of other codes (FailedPrecondition for a key
// of the wrong type, say) with Tenant, which keeps the code and message.
package fault

import (
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// tenantError is an error marked as the tenant's mistake.
type tenantError struct{ err error }

func (e *tenantError) Error() string { return e.err.Error() }
func (e *tenantError) Unwrap() error { return e.err }

// GRPCStatus keeps the wrapped error's status, message included, for
// status.FromError, status.Code and the gRPC server.
func (e *tenantError) GRPCStatus() *status.Status { return status.Convert(e.err) }

// Tenant marks err as the tenant's mistake, keeping its gRPC status; nil
// stays nil.
func Tenant(err error) error {
	if err == nil {
		return nil
	}
	return &tenantError{err: err}
}

// Tenantf is Tenant(status.Errorf(code, format, args...)).
func Tenantf(code codes.Code, format string, args ...any) error {
	return Tenant(status.Errorf(code, format, args...))
}

// IsTenant reports whether err is the tenant's mistake: marked with
// Tenant, or of a code that only a trigger causes (InvalidArgument,
// OutOfRange, NotFound, PermissionDenied).
func IsTenant(err error) bool {
	if err == nil {
		return false
	}
	var te *tenantError
	if errors.As(err, &te) {
		return true
	}
	switch status.Code(err) {
	case codes.InvalidArgument, codes.OutOfRange, codes.NotFound, codes.PermissionDenied:
		return true
	}
	return false
}

// Level is the log level of a failed call, by whose problem it is: WARN
// for the tenant's mistake (logged with its ScaledObject: the platform's
// logs may be the only place its owner can learn of it) and for a limit
// reached (ResourceExhausted: the scaler protecting itself, counted in
// kedascalers_limit_refusals_total); ERROR for the platform's problem (an
// outage, a refused setup, a timeout, a bug). What is merely ignored (an
// unknown metadata key) is logged at INFO by its caller.
func Level(err error) slog.Level {
	if IsTenant(err) || status.Code(err) == codes.ResourceExhausted {
		return slog.LevelWarn
	}
	return slog.LevelError
}
