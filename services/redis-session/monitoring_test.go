package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kedascalers/kedascalers/libs/testkit/monitoring"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// notExported are the metrics the alerts or the dashboard use that
// redis-session does not export, each with the reason: none today, every
// metric they use is scalerkit's, shared by every service.
var notExported = map[string]string{}

// TestMonitoringMetricsExist starts the scaler against a throwaway Redis,
// with mTLS, makes it do what every metric counts (reads that hit, miss
// and fail, a push stream, a limit refusal), and checks that every metric
// the alerting rules and the dashboard of deploy/kustomize/components/alerts
// use is in its /metrics: a renamed metric fails here, not in production.
func TestMonitoringMetricsExist(t *testing.T) {
	r := testenv.NewRedis(t)
	scalertest.UnsetenvPrefix(t, "REDIS_")
	s := monitoring.Start(t, run, map[string]string{"REDIS_URL": r.URL()})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	ok := scalertest.Ref(map[string]string{"mode": "dbsize"})
	if _, err := s.Client.GetMetricSpec(ctx, ok); err != nil {
		t.Fatal(err)
	}
	for range 2 { // a miss, then a hit
		if _, err := s.Client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ok, MetricName: "m"}); err != nil {
			t.Fatal(err)
		}
	}
	// A tenant's mistake (the key is a string, not a set) and a limit.
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	if err := rdb.Set(ctx, "count", "3", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: scalertest.Ref(map[string]string{"mode": "set", "key": "count"})}); err == nil {
		t.Fatal("mode=set on a string key: no error")
	}
	if _, err := s.Client.IsActive(ctx, scalertest.Ref(map[string]string{"mode": "dbsize", "x": strings.Repeat("y", 20000)})); err == nil {
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
