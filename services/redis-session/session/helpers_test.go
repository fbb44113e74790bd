package session

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/kedascalers/kedascalers/libs/scalerkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/scalerkit/testenv"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// quiet discards the logs of the code under test.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testConfig is a Config for r with short timeouts, so that outages show
// quickly.
func testConfig(r *testenv.Redis) Config {
	return Config{
		URL:               r.URL(),
		PoolSize:          10,
		MinIdleConns:      1,
		DialTimeout:       300 * time.Millisecond,
		ReadTimeout:       500 * time.Millisecond,
		WriteTimeout:      500 * time.Millisecond,
		ScanCount:         1000,
		NotifyMinInterval: time.Second,
	}
}

// newBackend builds a Backend for cfg, closed when the test ends.
func newBackend(t testing.TB, cfg Config) *Backend {
	t.Helper()
	b, err := New(cfg, quiet)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// env is a throwaway Redis, a client of its database 0 for the test to
// fill, and the scaler served over it.
type env struct {
	r   *testenv.Redis
	rdb *redis.Client
	b   *Backend
	s   *scalertest.Scaler
}

// newEnv starts a Redis with args and serves a backend over it.
func newEnv(t testing.TB, opts scalertest.Options, args ...string) *env {
	t.Helper()
	r := testenv.NewRedis(t, args...)
	b := newBackend(t, testConfig(r))
	return &env{r: r, rdb: client(t, r, 0), b: b, s: scalertest.Serve(t, b, opts)}
}

// client returns a go-redis client of database db of r, closed when the
// test ends.
func client(t testing.TB, r *testenv.Redis, db int) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), DB: db, DialTimeout: time.Second, PipelinePoolSize: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// timeout returns a context that ends after d or with the test.
func timeout(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// must fails the test on err.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// getMetrics makes KEDA's GetMetrics call and returns the one value.
func (e *env) getMetrics(ctx context.Context, md map[string]string) (float64, error) {
	res, err := e.s.Client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: scalertest.Ref(md), MetricName: "session_size"})
	if err != nil {
		return 0, err
	}
	if n := len(res.GetMetricValues()); n != 1 {
		return 0, fmt.Errorf("GetMetrics returned %d values, want 1", n)
	}
	return res.GetMetricValues()[0].GetMetricValueFloat(), nil
}

// messages delivers what recv returns until it fails or ctx ends.
func messages[T any](ctx context.Context, recv func() (T, error)) <-chan T {
	ch := make(chan T)
	go func() {
		defer close(ch)
		for {
			m, err := recv()
			if err != nil {
				return
			}
			select {
			case ch <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// next returns the next message of ch, failing the test when none comes
// within d.
func next[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatalf("%s: stream ended", what)
		}
		return m
	case <-time.After(d):
		t.Fatalf("%s: no message within %v", what, d)
	}
	panic("unreachable")
}

// none fails the test when ch delivers a message within d.
func none[T any](t testing.TB, ch <-chan T, d time.Duration, what string) {
	t.Helper()
	select {
	case m, ok := <-ch:
		if ok {
			t.Fatalf("%s: unexpected message %v", what, m)
		}
		t.Fatalf("%s: stream ended", what)
	case <-time.After(d):
	}
}

// commandCalls returns how often Redis ran cmd, from INFO commandstats.
func commandCalls(t testing.TB, rdb *redis.Client, cmd string) int {
	t.Helper()
	info, err := rdb.Info(timeout(t, 5*time.Second), "commandstats").Result()
	must(t, err)
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":calls=")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(rest[:strings.IndexByte(rest+",", ',')])
		must(t, err)
		return n
	}
	return 0
}

// waitSubscribed waits until Redis has a subscriber of channel, or a
// pattern subscription when channel is empty: a change made before the
// subscription is in place would not be notified.
func waitSubscribed(t testing.TB, rdb *redis.Client, channel string) {
	t.Helper()
	ctx := timeout(t, 10*time.Second)
	for {
		var n int64
		if channel == "" {
			n = rdb.PubSubNumPat(ctx).Val()
		} else {
			n = rdb.PubSubNumSub(ctx, channel).Val()[channel]
		}
		if n > 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no subscription to %q after 10s", channel)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
