package scaler_test

import (
	"log/slog"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcmd "google.golang.org/grpc/metadata"

	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// Keys nothing asked about: a typo fails every RPC, KEDA's keys pass
// silently, any other key passes with a warning in the header and the log.
func TestUnknownMetadataKeys(t *testing.T) {
	f := newFake()
	f.set("v", 1)
	logs := &wait.Buffer{}
	s := scalertest.Serve(t, f, scalertest.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})

	typo := scalertest.Ref(map[string]string{"key": "v", "activaton": "5"})
	for rpc, call := range map[string]func() error{
		"GetMetricSpec": func() error { _, err := s.Client.GetMetricSpec(ctxT(t), typo); return err },
		"GetMetrics": func() error {
			_, err := s.Client.GetMetrics(ctxT(t), &pb.GetMetricsRequest{ScaledObjectRef: typo})
			return err
		},
		"IsActive": func() error { _, err := s.Client.IsActive(ctxT(t), typo); return err },
		"StreamIsActive": func() error {
			st, err := s.Client.StreamIsActive(ctxT(t), typo)
			if err == nil {
				_, err = st.Recv()
			}
			return err
		},
	} {
		t.Run(rpc, func(t *testing.T) {
			scalertest.WantStatus(t, call(), codes.InvalidArgument, `metadata "activaton" is not a known key: did you mean "activation"?`)
		})
	}

	kedaKeys := map[string]string{"key": "v", "scalerAddress": "scaler:9090", "enableTLS": "true", "unsafeSsl": "false",
		"caCert": "pem", "tlsClientCert": "pem", "tlsClientKey": "pem"}
	var header grpcmd.MD
	if _, err := s.Client.GetMetricSpec(ctxT(t), scalertest.Ref(kedaKeys), grpc.Header(&header)); err != nil {
		t.Fatalf("KEDA's keys: %v", err)
	}
	if w := header.Get(scaler.WarningHeader); len(w) != 0 {
		t.Errorf("KEDA's keys gave warnings %q", w)
	}

	unrelated := scalertest.Ref(map[string]string{"key": "v", "team": "billing", "owner": "ops"})
	want := []string{`metadata "owner" is not a known key: ignored`, `metadata "team" is not a known key: ignored`}
	for range 3 {
		header = nil
		res, err := s.Client.GetMetrics(ctxT(t), &pb.GetMetricsRequest{ScaledObjectRef: unrelated}, grpc.Header(&header))
		if err != nil || res.GetMetricValues()[0].GetMetricValueFloat() != 1 {
			t.Fatalf("unrelated keys: %v, %v; want the value", res, err)
		}
		if got := header.Get(scaler.WarningHeader); !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q", scaler.WarningHeader, got, want)
		}
	}
	// Logged once for the three calls, with the ScaledObject.
	out := logs.String()
	if n := strings.Count(out, "trigger metadata has warnings"); n != 1 {
		t.Errorf("warning logged %d times, want once:\n%s", n, out)
	}
	for _, w := range []string{"level=INFO", "scaledObject.namespace=test", "scaledObject.name=so", `\"team\" is not a known key`} {
		if !strings.Contains(out, w) {
			t.Errorf("log lacks %s:\n%s", w, out)
		}
	}
}
