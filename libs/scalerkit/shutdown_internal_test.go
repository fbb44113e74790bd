package scalerkit

import (
	"context"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// stuckBackend's reads block until release; honour makes them (and Close)
// end with their context, as a well-behaved driver does; otherwise they
// ignore it, and so does Close.
type stuckBackend struct {
	honour    bool
	started   chan struct{} // receives once per read started
	release   chan struct{}
	mu        sync.Mutex
	cancelled int // reads that ended on their context
}

func newStuckBackend(honour bool) *stuckBackend {
	return &stuckBackend{honour: honour, started: make(chan struct{}, 100), release: make(chan struct{})}
}

func (b *stuckBackend) Parse(p *metadata.Parser) (*scaler.Trigger, error) {
	return &scaler.Trigger{MetricName: "stuck", Target: 1, Probe: stuckProbe{b: b, key: p.String("key", "")}}, nil
}

func (b *stuckBackend) Close() error {
	if !b.honour {
		<-b.release
	}
	return nil
}

type stuckProbe struct {
	scaler.NoChanges
	b   *stuckBackend
	key string
}

func (p stuckProbe) Key() string { return p.key }

func (p stuckProbe) Read(ctx context.Context) (scaler.Reading, error) {
	p.b.started <- struct{}{}
	if !p.b.honour {
		<-p.b.release
		return scaler.Reading{Value: 1}, nil
	}
	select {
	case <-p.b.release:
		return scaler.Reading{Value: 1}, nil
	case <-ctx.Done():
		p.b.mu.Lock()
		p.b.cancelled++
		p.b.mu.Unlock()
		return scaler.Reading{}, ctx.Err()
	}
}

// TestRunExitsWithinShutdownTimeout: whatever the backend does, Run
// returns within SHUTDOWN_TIMEOUT plus one second of SIGTERM.
func TestRunExitsWithinShutdownTimeout(t *testing.T) {
	const drain = time.Second
	tests := []struct {
		name     string
		honour   bool
		wantLogs []string
	}{
		{"backend honours cancellation", true, nil},
		{"backend ignores cancellation", false, []string{"ignored their cancellation", "closing the backend overran"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t, map[string]string{"GRPC_ADDR": "127.0.0.1:0", "HTTP_ADDR": "127.0.0.1:0", "LOG_FORMAT": "text",
				"SHUTDOWN_TIMEOUT": drain.String(), "BACKEND_TIMEOUT": "1m", "PUSH_INTERVAL": "1h"})
			b := newStuckBackend(tt.honour)
			t.Cleanup(func() { close(b.release) }) // the ignored calls end, for goleak
			var stdout, stderr wait.Buffer
			code := make(chan int, 1)
			go func() {
				code <- Run("my-scaler", nil, &stdout, &stderr, nil, func(context.Context, Env) (scaler.Backend, error) { return b, nil })
			}()
			re := regexp.MustCompile(`msg=serving .*grpc=(\S+)`)
			var m []string
			wait.For(t, waitTimeout, "the serving line", func() bool { m = re.FindStringSubmatch(stderr.String()); return m != nil })
			addr := m[1]
			client := pb.NewExternalScalerClient(dial(t, addr, nil))
			ref := &pb.ScaledObjectRef{Name: "so", Namespace: "ns", ScalerMetadata: map[string]string{"key": "k"}}

			// In flight at the signal: a poll (the cache's shared call) and a
			// push stream whose feed reads the same question.
			polled := make(chan error, 1)
			go func() {
				_, err := client.GetMetrics(callCtx(t), &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: "stuck"})
				polled <- err
			}()
			if _, err := client.StreamIsActive(callCtx(t), &pb.ScaledObjectRef{ScalerMetadata: map[string]string{"key": "other"}}); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				select {
				case <-b.started:
				case <-time.After(waitTimeout):
					t.Fatal("the backend reads did not start")
				}
			}

			start := time.Now()
			if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case c := <-code:
				if c != 0 {
					t.Errorf("Run = %d, want 0", c)
				}
			case <-time.After(waitTimeout):
				t.Fatalf("Run did not return %v after SIGTERM:\n%s", waitTimeout, stderr.String())
			}
			elapsed := time.Since(start)
			if elapsed > drain+time.Second {
				t.Errorf("Run returned %v after SIGTERM, past SHUTDOWN_TIMEOUT=%v + 1s", elapsed, drain)
			}
			if elapsed < drain {
				t.Errorf("Run returned %v after SIGTERM: the call in flight did not get its drain of %v", elapsed, drain)
			}
			t.Logf("Run returned %v after SIGTERM (SHUTDOWN_TIMEOUT=%v)", elapsed.Round(time.Millisecond), drain)
			select {
			case err := <-polled:
				if err == nil || status.Code(err) == codes.OK {
					t.Errorf("GetMetrics stopped at the hard stop = %v, want an error", err)
				}
			case <-time.After(waitTimeout):
				t.Error("GetMetrics did not end")
			}
			b.mu.Lock()
			cancelled := b.cancelled
			b.mu.Unlock()
			if tt.honour && cancelled != 2 {
				t.Errorf("%d backend reads saw their cancellation, want 2 (the poll's and the feed's)", cancelled)
			}
			out := stderr.String()
			for _, w := range tt.wantLogs {
				if !regexp.MustCompile(regexp.QuoteMeta(w)).MatchString(out) {
					t.Errorf("log lacks %q:\n%s", w, out)
				}
			}
			if tt.honour && regexp.MustCompile("overran|ignored").MatchString(out) {
				t.Errorf("a backend that honours cancellation was reported as overrunning:\n%s", out)
			}
		})
	}
}
