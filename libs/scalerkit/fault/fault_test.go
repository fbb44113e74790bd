package fault_test

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/fault"
)

func TestIsTenant(t *testing.T) {
	wrongType := status.Error(codes.FailedPrecondition, "the key holds another type than a set (mode=set): fix the trigger's key or mode")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain error", errors.New("connection refused"), false},
		{"invalid argument", status.Error(codes.InvalidArgument, "mode: unknown"), true},
		{"out of range", status.Error(codes.OutOfRange, "NaN"), true},
		{"not found", status.Error(codes.NotFound, "no such query"), true},
		{"permission denied", status.Error(codes.PermissionDenied, "read-only"), true},
		{"failed precondition", wrongType, false},
		{"marked failed precondition", fault.Tenant(wrongType), true},
		{"marked then wrapped", fmt.Errorf("reading: %w", fault.Tenant(wrongType)), true},
		{"tenantf", fault.Tenantf(codes.FailedPrecondition, "value %q is not an integer", "x"), true},
		{"unavailable", status.Error(codes.Unavailable, "down"), false},
		{"exhausted", status.Error(codes.ResourceExhausted, "MAX_QUESTIONS"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fault.IsTenant(tt.err); got != tt.want {
				t.Errorf("IsTenant(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// The mark changes neither the code nor the message a client gets.
func TestTenantKeepsStatus(t *testing.T) {
	if fault.Tenant(nil) != nil {
		t.Error("Tenant(nil) is not nil")
	}
	inner := status.Error(codes.FailedPrecondition, "GET \"k\" on db 0: WRONGTYPE")
	err := fault.Tenant(inner)
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.FailedPrecondition || st.Message() != "GET \"k\" on db 0: WRONGTYPE" {
		t.Errorf("status of the marked error = %v %v %q, want FailedPrecondition and the same message", ok, st.Code(), st.Message())
	}
	if err.Error() != inner.Error() || !errors.Is(err, inner) {
		t.Errorf("marked error %q does not read or unwrap as %q", err, inner)
	}
}

func TestLevel(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want slog.Level
	}{
		{"tenant's code", status.Error(codes.InvalidArgument, "mode"), slog.LevelWarn},
		{"marked tenant's", fault.Tenantf(codes.FailedPrecondition, "WRONGTYPE"), slog.LevelWarn},
		{"limit", status.Error(codes.ResourceExhausted, "REDIS_MAX_CONNECTIONS"), slog.LevelWarn},
		{"refused setup", status.Error(codes.FailedPrecondition, "WRONGPASS"), slog.LevelError},
		{"outage", status.Error(codes.Unavailable, "connection refused"), slog.LevelError},
		{"timeout", status.Error(codes.DeadlineExceeded, "BACKEND_TIMEOUT"), slog.LevelError},
		{"bug", status.Error(codes.Internal, "panic"), slog.LevelError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fault.Level(tt.err); got != tt.want {
				t.Errorf("Level(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
