package redissession

import (
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/kedascalers/kedascalers/libs/scalerkit"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
)

func TestMain(m *testing.M) {
	// go-redis probes a pool whose dials failed once a second, and sees
	// that the pool is closed only after its sleep: it ends within a
	// second of Close.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
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
		ConnectTimeout:    300 * time.Millisecond,
		ReadTimeout:       500 * time.Millisecond,
		WriteTimeout:      500 * time.Millisecond,
		ScanCount:         1000,
		NotifyMinInterval: time.Second,
		MaxConnections:    32,
		MaxDatabases:      3,
		ClientIdleTimeout: time.Minute,
		MaxWatchedKeys:    100,
	}
}

// newBackend builds a Backend for cfg, closed when the test ends.
func newBackend(t testing.TB, cfg Config) *Backend {
	t.Helper()
	return newBackendEnv(t, cfg, scalerkit.Env{Log: quiet})
}

// newBackendEnv builds a Backend for cfg with env, closed when the test
// ends.
func newBackendEnv(t testing.TB, cfg Config, env scalerkit.Env) *Backend {
	t.Helper()
	s, err := resolve(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(t.Context(), s, env)
	return scalertest.Closing(t, b, err)
}

// resolve validates and resolves cfg, as scalerkit.Run does.
func resolve(cfg Config) (Settings, error) { return scalertest.Resolve[Config, Settings](cfg) }

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

// must fails the test on err.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// commandCalls returns how often Redis ran cmd, from INFO commandstats.
func commandCalls(t testing.TB, rdb *redis.Client, cmd string) int {
	t.Helper()
	info, err := rdb.Info(scalertest.Context(t, 5*time.Second), "commandstats").Result()
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
	ctx := scalertest.Context(t, 10*time.Second)
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
