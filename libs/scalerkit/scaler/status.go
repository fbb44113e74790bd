package scaler

import (
	"context"
	"errors"
	"fmt"
	"math"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// backendFailure reports whether err is a failure of the backend, which a
// trigger's error policy may turn into "inactive", rather than a limit of
// ours: a refusal is never a silent 0.
func backendFailure(err error) bool { return status.Code(err) != codes.ResourceExhausted }

// checkReading refuses values KEDA would silently turn into 0.
func checkReading(k kind, r Reading) error {
	switch {
	case math.IsNaN(r.Value) || math.IsInf(r.Value, 0):
		return status.Errorf(codes.OutOfRange, "%s is %v, want a finite number", k, r.Value)
	case k == kindTarget && !(r.Value > 0):
		return status.Errorf(codes.OutOfRange, "target is %v, want a number > 0", r.Value)
	}
	return nil
}

// statusOf turns the error of a backend call into a gRPC status: a status
// the backend chose is kept, running out of BACKEND_TIMEOUT is
// DeadlineExceeded, anything else is taken for an outage (Unavailable).
func (s *Service) statusOf(ctx context.Context, k kind, err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Errorf(codes.DeadlineExceeded, "reading %s: no answer from the backend within %v (BACKEND_TIMEOUT): %v",
			k, s.opts.BackendTimeout, err)
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return status.Errorf(codes.Canceled, "reading %s: cancelled: the scaler is stopping", k)
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		return err
	}
	return status.Error(codes.Unavailable, fmt.Sprintf("reading %s: %v", k, err))
}
