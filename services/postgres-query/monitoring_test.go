package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kedascalers/kedascalers/libs/testkit/monitoring"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// notExported are the metrics the alerts or the dashboard use that
// postgres-query does not export, each with the reason: none today, every
// metric they use is scalerkit's, shared by every service.
var notExported = map[string]string{}

// TestMonitoringMetricsExist starts the scaler against a throwaway
// PostgreSQL, with mTLS, makes it do what every metric counts (reads that
// miss, hit and fail, a push stream, a limit refusal), and checks that
// every metric the alerting rules and the dashboard of
// deploy/kustomize/components/alerts use is in its /metrics.
func TestMonitoringMetricsExist(t *testing.T) {
	pg := testenv.NewPostgres(t)
	scalertest.UnsetenvPrefix(t, "POSTGRES_")
	scalertest.Unsetenv(t, "QUERIES", "QUERIES_FILE", "QUERY_POLICY")
	s := monitoring.Start(t, run, map[string]string{
		"POSTGRES_URL": pg.URL(),
		// The throwaway server's only role is its superuser.
		"POSTGRES_ALLOW_SUPERUSER": "true",
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	ok := scalertest.Ref(map[string]string{"query": "select 3", "targetQueryValue": "1"})
	if _, err := s.Client.GetMetricSpec(ctx, ok); err != nil {
		t.Fatal(err)
	}
	for range 2 { // a miss, then a hit
		if _, err := s.Client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ok, MetricName: "m"}); err != nil {
			t.Fatal(err)
		}
	}
	// A tenant's mistake (a table that does not exist) and a limit.
	bad := scalertest.Ref(map[string]string{"query": "select count(*) from no_such_table", "targetQueryValue": "1"})
	if _, err := s.Client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: bad, MetricName: "m"}); err == nil {
		t.Fatal("a query of a table that does not exist: no error")
	}
	if _, err := s.Client.IsActive(ctx, scalertest.Ref(map[string]string{"query": "select 1", "targetQueryValue": "1",
		"x": strings.Repeat("y", 20000)})); err == nil {
		t.Fatal("metadata over MAX_METADATA_BYTES: no error")
	}
	// A push stream, open while /metrics is read.
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	stream, err := s.Client.StreamIsActive(sctx, ok)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}

	monitoring.Check(t, s.Scrape(t), notExported)
}
