package server_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// kedaServiceConfig is the service config KEDA v2.21 dials scalers with
// (pkg/scalers/external_scaler.go).
const kedaServiceConfig = `{"loadBalancingConfig": [{"round_robin":{}}]}`

// streamEnd is how one push stream ended.
type streamEnd struct {
	err       error         // nil: ended with status OK (KEDA sees io.EOF)
	lived     time.Duration // from open to end
	local     string        // the client's end of the connection it ran on
	waitAfter time.Duration // KEDA's wait before the next stream
}

// kedaPushLoop opens StreamIsActive over and over the way KEDA v2.21's
// runStreamIsActive does: after a stream ends, wait, doubling the wait
// (capped at 30 x retry) after every end, and resetting it to retry only
// after a clean one (io.EOF). KEDA's retry is 2 s; tests scale it down
// with MAX_CONNECTION_AGE. It opens no stream after until, lets the last
// one end on its own, and returns every end, in order. ctx only stops a
// loop that hangs: streams carry no deadline, which the server would see
// end a stream first.
func kedaPushLoop(ctx context.Context, client pb.ExternalScalerClient, ref *pb.ScaledObjectRef, retry time.Duration, until time.Time) []streamEnd {
	var ends []streamEnd
	wait := retry
	for ctx.Err() == nil && time.Now().Before(until) {
		var p peer.Peer
		begin := time.Now()
		s, err := client.StreamIsActive(ctx, ref, grpc.Peer(&p))
		for err == nil {
			_, err = s.Recv()
		}
		if ctx.Err() != nil {
			return ends
		}
		end := streamEnd{err: err, lived: time.Since(begin)}
		if p.LocalAddr != nil {
			end.local = p.LocalAddr.String()
		}
		if errors.Is(err, io.EOF) {
			end.err, wait = nil, retry
		}
		end.waitAfter = wait
		ends = append(ends, end)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*retry)
	}
	return ends
}

// TestPushStreamsOutliveConnectionAging drives many MAX_CONNECTION_AGE
// cycles under KEDA's retry loop with several push streams (several
// ScaledObjects) on KEDA's one connection, in plaintext and over TLS
// (where a connection's age counts from the end of its handshake): every
// stream ends with OK, after the GOAWAY and before the cut, so the next
// one opens on a new connection and KEDA's wait never grows. Handlers
// that end with their context's error end OK too.
func TestPushStreamsOutliveConnectionAging(t *testing.T) {
	eachTransport(t, pushStreamsOutliveAging)
}

// pushStreamsOutliveAging is TestPushStreamsOutliveConnectionAging with
// the given server and client credentials.
func pushStreamsOutliveAging(t *testing.T, serverCreds, clientCreds credentials.TransportCredentials) {
	const (
		age    = 500 * time.Millisecond
		retry  = 200 * time.Millisecond // KEDA's 2 s, scaled to the age
		run    = 6 * time.Second
		loops  = 12
		cycles = 6 // at least, per loop
	)
	cfg := defaultConfig()
	cfg.MaxConnectionAge = age
	// The shortest valid grace leaves the streams' end one margin (25 ms
	// at this age) before the earliest cut: too little for a loaded test
	// machine to be sure to run the end in time. More grace moves the cut
	// only, not the streams' end (1.1 x age + margin) this test checks.
	cfg.MaxConnectionAgeGrace = age/5 + 2*cfg.StreamEndMargin() + 200*time.Millisecond
	h := startWith(t, cfg, serverCreds, clientCreds)
	conn, err := grpc.NewClient(h.grpcAddr, grpc.WithTransportCredentials(clientCreds),
		grpc.WithDefaultServiceConfig(kedaServiceConfig))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := pb.NewExternalScalerClient(conn)

	// No deadline on the streams' context: a stream open at a deadline
	// would end DeadlineExceeded on the server's clock before the client's.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hang := time.AfterFunc(run+10*time.Second, cancel)
	defer hang.Stop()
	until := time.Now().Add(run)
	var wg sync.WaitGroup
	ends := make([][]streamEnd, loops)
	for i := range loops {
		mode := "clean"
		if i%2 == 1 {
			mode = "error-at-end"
		}
		wg.Go(func() {
			ends[i] = kedaPushLoop(ctx, client, &pb.ScaledObjectRef{Name: "so", ScalerMetadata: map[string]string{"mode": mode}}, retry, until)
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("push loops still running %v after their last stream opened", 10*time.Second)
	}

	total := 0
	for i, loop := range ends {
		if len(loop) < cycles {
			t.Errorf("loop %d: %d streams ended in %v, want at least %d", i, len(loop), run, cycles)
		}
		for n, e := range loop {
			total++
			if e.err != nil {
				t.Errorf("loop %d, stream %d ended %v (status %v) after %v, want OK", i, n, e.err, status.Code(e.err), e.lived)
			}
			// A loop's first stream waits for the connection's dial (and
			// TLS handshake), which its age does not count.
			if n > 0 && e.lived > cfg.PushStreamEnd()+retry {
				t.Errorf("loop %d, stream %d lived %v, longer than a connection's streams (%v)", i, n, e.lived, cfg.PushStreamEnd())
			}
			if e.waitAfter != retry {
				t.Errorf("loop %d, stream %d: KEDA would wait %v, want %v (backoff reset)", i, n, e.waitAfter, retry)
			}
			if n > 0 && e.local == loop[n-1].local {
				t.Errorf("loop %d, stream %d reopened on the aged connection %s", i, n, e.local)
			}
		}
	}
	if got := value(t, h.metrics.StreamsAged.WithLabelValues("StreamIsActive")); int(got) != total {
		t.Errorf("kedascalers_grpc_streams_aged_total = %v, want %d (every stream ended for its connection's age)", got, total)
	}
	t.Logf("%d streams over %d loops ended OK", total, loops)
}

// TestAgingOffWithoutMaxConnectionAge: a Config built in code without
// MAX_CONNECTION_AGE never ends a stream on its own.
func TestAgingOffWithoutMaxConnectionAge(t *testing.T) {
	h := start(t, defaultConfig())
	ctx, cancel := context.WithCancel(callCtx(t))
	defer cancel()
	s := openStream(t, ctx, h.conn)
	ended := make(chan error, 1)
	go func() {
		_, err := s.Recv()
		ended <- err
	}()
	select {
	case err := <-ended:
		t.Fatalf("stream without MAX_CONNECTION_AGE ended: %v, want it open", err)
	case <-time.After(500 * time.Millisecond):
	}
	cancel()
	if err := <-ended; status.Code(err) != codes.Canceled {
		t.Fatalf("stream after the client cancelled: %v, want Canceled", err)
	}
}
