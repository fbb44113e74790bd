package scaler_test

import (
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/fault"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// A tenant's mistake and the platform's problem are told apart in the
// outcome label and the log level (the rule of package fault), whatever
// gRPC code the backend chose.
func TestWhoseProblem(t *testing.T) {
	f := newFake()
	f.setErr("wrongtype", fault.Tenantf(codes.FailedPrecondition, "the key holds another type than a set (mode=set): fix the trigger's key or mode"))
	f.setErr("guard", status.Error(codes.PermissionDenied, "query refused: the scaler runs queries read-only"))
	f.setErr("wrongpass", status.Error(codes.FailedPrecondition, "WRONGPASS"))
	f.setErr("down", errDown)
	f.setErr("connlimit", status.Error(codes.ResourceExhausted, "REDIS_MAX_CONNECTIONS"))
	logs := &wait.Buffer{}
	s := scalertest.Serve(t, f, scalertest.Options{CacheTTL: -1, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	tests := []struct {
		key, outcome, level string
		code                codes.Code
	}{
		{"wrongtype", "invalid", "WARN", codes.FailedPrecondition},
		{"guard", "invalid", "WARN", codes.PermissionDenied},
		{"wrongpass", "refused", "ERROR", codes.FailedPrecondition},
		{"down", "unavailable", "ERROR", codes.Unavailable},
		{"connlimit", "exhausted", "WARN", codes.ResourceExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			ref := scalertest.Ref(map[string]string{"key": tt.key})
			ref.Name = "so-" + tt.key
			before := scalertest.BackendCalls(t, s, "value", tt.outcome)
			_, err := s.Client.GetMetrics(ctxT(t), &pb.GetMetricsRequest{ScaledObjectRef: ref})
			scalertest.WantStatus(t, err, tt.code) // the mark changes no code
			if n := scalertest.BackendCalls(t, s, "value", tt.outcome) - before; n != 1 {
				t.Errorf("%d calls counted %q, want 1", n, tt.outcome)
			}
			line := logLine(logs.String(), "scaledObject.name="+ref.Name)
			if !strings.Contains(line, "level="+tt.level) || !strings.Contains(line, "backend read failed") {
				t.Errorf("log line of %s: %q, want backend read failed at %s", ref.Name, line, tt.level)
			}
		})
	}

	// Metadata the scaler refuses is the tenant's mistake, logged at WARN,
	// once for a ScaledObject polled again and again.
	for range 5 {
		_, err := s.Client.GetMetricSpec(ctxT(t), scalertest.Ref(map[string]string{"key": "v", "activaton": "5"}))
		scalertest.WantStatus(t, err, codes.InvalidArgument)
	}
	if line := logLine(logs.String(), "trigger metadata rejected"); !strings.Contains(line, "level=WARN") || !strings.Contains(line, "scaledObject.name=so") {
		t.Errorf("rejected metadata logged as %q, want level=WARN with the ScaledObject", line)
	}
	if n := strings.Count(logs.String(), "trigger metadata rejected"); n != 1 {
		t.Errorf("5 rejections of one ScaledObject logged %d times, want once", n)
	}
}

// logLine returns the first line of out holding sub.
func logLine(out, sub string) string {
	for l := range strings.Lines(out) {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}
