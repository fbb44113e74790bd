package e2e

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// pushTrials is how many backend changes each scaler-side measurement times.
const pushTrials = 50

// TestScalerPushLatency measures the scaler's own part of a push
// activation, with the binaries make build ships and KEDA's RPC: from the
// backend change to the StreamIsActive message true. Redis: SADD with
// keyspace notifications; PostgreSQL: INSERT + NOTIFY in one transaction.
// It needs no cluster, only $KEDASCALERS_E2E_SCALERS.
func TestScalerPushLatency(t *testing.T) {
	if scalersDir == "" {
		t.Skip("$KEDASCALERS_E2E_SCALERS is not set: make e2e sets it to bin/ after make build")
	}
	t.Run("redis-session keyspace notifications", func(t *testing.T) {
		_, rdb, s := redisScaler(t, notifications)
		meta := map[string]string{"mode": "set", "key": "push:sessions", "sessionSize": "100"}
		measurePush(t, s.Addr, meta, redisSwitch{rdb, "push:sessions"})
	})
	t.Run("postgres-query NOTIFY", func(t *testing.T) {
		conn, s := jobsScaler(t)
		meta := map[string]string{"query": "SELECT count(*) FROM jobs WHERE queue = 'mail'", "targetQueryValue": "20", "notifyChannel": "jobs_changed"}
		measurePush(t, s.Addr, meta, pgSwitch{conn})
	})
}

// measurePush opens StreamIsActive as KEDA does and times, trial after
// trial, the backend change → the message true (after the message false
// for the change back).
func measurePush(t *testing.T, addr string, meta map[string]string, sw backendSwitch) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := sw.off(ctx); err != nil {
		t.Fatal(err)
	}
	stream, err := pb.NewExternalScalerClient(conn).StreamIsActive(ctx, &pb.ScaledObjectRef{Name: "push", Namespace: "e2e", ScalerMetadata: meta})
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan bool, 16)
	go func() {
		defer close(msgs)
		for {
			m, err := stream.Recv()
			if err != nil {
				return
			}
			msgs <- m.GetResult()
		}
	}()
	next := func(want bool) {
		t.Helper()
		select {
		case got, ok := <-msgs:
			if !ok || got != want {
				t.Fatalf("StreamIsActive: got %v (open %v), want %v", got, ok, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("StreamIsActive: no message %v within 10 s", want)
		}
	}
	next(false) // the state at once
	trial := func(quiet bool) time.Duration {
		t.Helper()
		if quiet {
			// A quiet spell first, as before the first session after an
			// idle night: a feed reads a change at once after 50 ms
			// without a read, and spaces the reads of a burst 50 ms apart.
			time.Sleep(100 * time.Millisecond)
		}
		t0 := time.Now()
		if err := sw.on(ctx); err != nil {
			t.Fatal(err)
		}
		next(true)
		d := time.Since(t0)
		if err := sw.off(ctx); err != nil {
			t.Fatal(err)
		}
		next(false)
		return d
	}
	// A change right after the stream opened can come before the feed's
	// LISTEN or SUBSCRIBE is in place; the feed re-checks once it is, so
	// this one too comes within milliseconds, not at PUSH_INTERVAL.
	if first := trial(false); first > time.Second {
		t.Errorf("first change, right after the stream opened: %s, want well under a second", ms(first))
	} else {
		t.Logf("first change, right after the stream opened: %s", ms(first))
	}
	var lat []time.Duration
	for range pushTrials {
		lat = append(lat, trial(true))
	}
	for i, d := range lat {
		if d > time.Second {
			t.Logf("trial %d took %s: the change was caught by the PUSH_INTERVAL re-check, not by its signal", i, ms(d))
		}
	}
	p50, p99 := percentile(lat, 50), percentile(lat, 99)
	t.Logf("scaler push latency (backend change → StreamIsActive true, %d trials): p50 %s, p99 %s, max %s", len(lat), ms(p50), ms(p99), ms(percentile(lat, 100)))
	// The goal is a p99 under 50 ms (measured, with its spread, by the
	// services' BenchmarkPushLatency*); a test only catches a change
	// that stopped being pushed and waited for the PUSH_INTERVAL re-check.
	if p99 >= 50*time.Millisecond {
		t.Logf("p99 %s is not under the 50 ms goal", ms(p99))
	}
	if p50 > time.Second {
		t.Errorf("p50 %s: changes are not pushed (PUSH_INTERVAL polling?)", ms(p50))
	}
}
