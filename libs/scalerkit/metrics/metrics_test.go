package metrics_test

import (
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metrics"
)

func TestOutcome(t *testing.T) {
	want := map[codes.Code]string{
		codes.OK:                 "ok",
		codes.InvalidArgument:    "invalid",
		codes.OutOfRange:         "invalid",
		codes.NotFound:           "invalid",
		codes.PermissionDenied:   "invalid",
		codes.FailedPrecondition: "refused",
		codes.Unauthenticated:    "refused",
		codes.Unavailable:        "unavailable",
		codes.DeadlineExceeded:   "timeout",
		codes.ResourceExhausted:  "exhausted",
		codes.Canceled:           "canceled",
		codes.Internal:           "internal",
		codes.Unknown:            "internal",
		codes.DataLoss:           "internal",
		codes.Unimplemented:      "internal",
		codes.Aborted:            "internal",
		codes.AlreadyExists:      "internal",
	}
	for code := codes.OK; code <= codes.Unauthenticated; code++ {
		if got := metrics.Outcome(code); got != want[code] {
			t.Errorf("Outcome(%v) = %q, want %q", code, got, want[code])
		}
	}
}
