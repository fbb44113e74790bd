package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/kedascalers/kedascalers/libs/testkit/monitoring"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// notExported are the metrics the alerts or the dashboard use that this
// test's oracle-query does not export, each with the reason.
var notExported = map[string]string{
	"kedascalers_stream_messages_total": "a push stream sends its first message once it has read the backend, " +
		"and no Oracle server runs in the tests; the counter is scalerkit's, the same for every service, " +
		"and the tests of the services whose backend runs in tests see it exported",
}

// TestMonitoringMetricsExist starts the scaler against an Oracle address
// where nothing listens (no Oracle server runs in the tests), with mTLS,
// makes it do what every metric counts that it can without one (a read
// that fails as the backend is unavailable, a push stream, a limit
// refusal), and checks that every metric the alerting rules and the
// dashboard of deploy/kustomize/components/alerts use is in its /metrics,
// but for notExported.
func TestMonitoringMetricsExist(t *testing.T) {
	scalertest.UnsetenvPrefix(t, "ORACLE_")
	scalertest.Unsetenv(t, "QUERIES", "QUERIES_FILE", "QUERY_POLICY")
	s := monitoring.Start(t, run, map[string]string{"ORACLE_URL": "oracle://ks:pw@" + closedAddr(t) + "/FREEPDB1"})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	ok := scalertest.Ref(map[string]string{"query": "select 3 from dual", "targetQueryValue": "1"})
	if _, err := s.Client.GetMetricSpec(ctx, ok); err != nil {
		t.Fatal(err)
	}
	_, err := s.Client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ok, MetricName: "m"})
	scalertest.WantStatus(t, err, codes.Unavailable)
	if _, err := s.Client.IsActive(ctx, scalertest.Ref(map[string]string{"query": "select 1 from dual", "targetQueryValue": "1",
		"x": strings.Repeat("y", 20000)})); err == nil {
		t.Fatal("metadata over MAX_METADATA_BYTES: no error")
	}
	// A push stream, open while /metrics is read. It sends nothing (the
	// backend is unavailable): wait for the scaler to count it.
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	if _, err := s.Client.StreamIsActive(sctx, ok); err != nil {
		t.Fatal(err)
	}
	var exported map[string]bool
	wait.For(t, 10*time.Second, "kedascalers_open_streams to count the push stream", func() bool {
		exported = s.Scrape(t)
		return exported["kedascalers_open_streams"]
	})

	monitoring.Check(t, exported, notExported)
}

// closedAddr returns a loopback address where nothing listens: a port
// that was free a moment ago.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
