package redissession

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
)

// connectedClients is INFO clients' connected_clients of rdb's server.
func connectedClients(t testing.TB, ctx context.Context, rdb *redis.Client) int {
	t.Helper()
	info, err := rdb.Info(ctx, "clients").Result()
	must(t, err)
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_clients:"); ok {
			n, err := strconv.Atoi(v)
			must(t, err)
			return n
		}
	}
	t.Fatalf("no connected_clients in INFO clients:\n%s", info)
	return 0
}

// limitCount is how often limit was reached.
func limitCount(b *Backend, limit string) float64 {
	return testutil.ToFloat64(b.metrics.limitReached.WithLabelValues(limit))
}

// TestMaxDatabases: REDIS_MAX_DATABASES bounds the clients open, never
// the databases: one more database closes the client idle the longest
// and answers; clients idle for REDIS_CLIENT_IDLE_TIMEOUT are closed,
// with their connections.
func TestMaxDatabases(t *testing.T) {
	r := testenv.NewRedis(t)
	cfg := testConfig(r)
	cfg.MaxDatabases = 3
	cfg.ClientIdleTimeout = 400 * time.Millisecond
	b := newBackend(t, cfg)
	s := scalertest.Serve(t, b, scalertest.Options{CacheTTL: -1})
	ctx := scalertest.Context(t, time.Minute)
	rdb := client(t, r, 0)
	db4 := client(t, r, 4)
	must(t, db4.SAdd(ctx, "s", "a", "b").Err())
	must(t, db4.Close())

	poll := func(db int) (float64, error) {
		return s.GetMetrics(ctx, map[string]string{"databaseIndex": strconv.Itoa(db), "mode": "set", "key": "s"}, "session_size")
	}
	for db := range 5 { // two past the bound
		v, err := poll(db)
		if err != nil {
			t.Fatalf("databaseIndex %d with REDIS_MAX_DATABASES=3: %v", db, err)
		}
		if want := map[bool]float64{true: 2}[db == 4]; v != want {
			t.Errorf("databaseIndex %d = %v, want %v", db, v, want)
		}
		if got := testutil.ToFloat64(b.metrics.clients); got > 3 {
			t.Errorf("kedascalers_redis_clients = %v, want at most 3", got)
		}
	}
	if got := limitCount(b, limitDatabases); got != 0 {
		t.Errorf("REDIS_MAX_DATABASES counted as reached %v times, want never", got)
	}

	// Idle clients close, and their connections with them.
	wait.For(t, 5*time.Second, "idle clients closed", func() bool { return testutil.ToFloat64(b.metrics.clients) == 0 })
	wait.For(t, 5*time.Second, "connections of idle clients closed", func() bool { return b.conns.open.Load() == 0 })
	wait.For(t, 5*time.Second, "Redis sees only the test's own connection", func() bool { return connectedClients(t, ctx, rdb) == 1 })
	if _, err := poll(3); err != nil {
		t.Fatalf("databaseIndex 3 after the others went idle: %v", err)
	}
}

// TestDatabaseIndexOutOfRange: an index the server does not have is
// FailedPrecondition naming the index and the server's count, and costs
// no client.
func TestDatabaseIndexOutOfRange(t *testing.T) {
	r := testenv.NewRedis(t, "--databases", "4")
	b := newBackend(t, testConfig(r))
	s := scalertest.Serve(t, b, scalertest.Options{CacheTTL: -1})
	ctx := scalertest.Context(t, time.Minute)
	if _, err := s.GetMetrics(ctx, map[string]string{"databaseIndex": "3"}, "session_size"); err != nil {
		t.Fatalf("last database: %v", err)
	}
	clients := testutil.ToFloat64(b.metrics.clients)
	for _, db := range []string{"4", "2147483647"} {
		_, err := s.GetMetrics(ctx, map[string]string{"databaseIndex": db}, "session_size")
		scalertest.WantStatus(t, err, codes.FailedPrecondition, "databaseIndex "+db+" does not exist", "it has 4 databases (0 to 3")
	}
	if got := testutil.ToFloat64(b.metrics.clients); got != clients {
		t.Errorf("clients = %v after refused indexes, want %v", got, clients)
	}
	// Past the range of the metadata itself: InvalidArgument, no I/O.
	_, err := s.GetMetrics(ctx, map[string]string{"databaseIndex": "2147483648"}, "session_size")
	scalertest.WantStatus(t, err, codes.InvalidArgument, "databaseIndex")
}

// TestConnLimit: the dial counter lets max connections open; one more
// waits, and dials once a connection closes or an idle client's
// connections are evicted; with none it fails, when its context ends,
// with errConnLimit naming REDIS_MAX_CONNECTIONS.
func TestConnLimit(t *testing.T) {
	r := testenv.NewRedis(t)
	rdb := client(t, r, 0)
	var refused atomic.Int32
	l := &connLimit{max: 2, timeout: time.Second, refused: func() { refused.Add(1) }}
	ctx := scalertest.Context(t, time.Minute)
	var conns []net.Conn
	for range 2 {
		c, err := l.dial(ctx, "tcp", r.Addr())
		must(t, err)
		conns = append(conns, c)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err := l.dial(short, "tcp", r.Addr())
	if !errors.Is(err, errConnLimit) || !strings.Contains(err.Error(), "(2, REDIS_MAX_CONNECTIONS)") || refused.Load() != 1 {
		t.Fatalf("third dial = %v (refused %d), want errConnLimit naming (2, REDIS_MAX_CONNECTIONS)", err, refused.Load())
	}

	// A waiting dial goes on once a connection closes.
	dialed := make(chan net.Conn, 1)
	go func() {
		c, err := l.dial(ctx, "tcp", r.Addr())
		if err != nil {
			t.Error(err)
		}
		dialed <- c
	}()
	time.Sleep(50 * time.Millisecond)
	must(t, conns[0].Close())
	_ = conns[0].Close() // twice: one slot back only
	conns[0] = <-dialed
	if l.open.Load() != 2 || connectedClients(t, ctx, rdb) != 3 {
		t.Fatalf("open = %d after one close and one dial, want 2", l.open.Load())
	}

	// At the cap, an idle client's connections are closed for the dial.
	l.evict = func() bool { return conns[1].Close() == nil }
	c, err := l.dial(ctx, "tcp", r.Addr())
	must(t, err)
	must(t, c.Close())
	must(t, conns[0].Close())
	wait.For(t, 5*time.Second, "every slot back once Redis closed its ends", func() bool { return l.open.Load() == 0 })
	if refused.Load() != 1 {
		t.Errorf("refused %d at the end, want 1", refused.Load())
	}
	if st := status.Convert(redisError("GET", 0, "", err2(errConnLimit))); st.Code() != codes.ResourceExhausted {
		t.Errorf("redisError(errConnLimit) = %v, want ResourceExhausted", st)
	}
}

func err2(err error) error { return fmt.Errorf("dialing x: %w (2, REDIS_MAX_CONNECTIONS)", err) }

// TestConnectionsStayUnderTheCap hammers the scaler with 16 distinct
// databaseIndex values, keys and sessionSizeKey watches and checks, from
// Redis's side (CLIENT LIST), that it never holds more than
// REDIS_MAX_CONNECTIONS while answering every read, and that the
// subscriptions stay within REDIS_MAX_WATCHED_KEYS.
func TestConnectionsStayUnderTheCap(t *testing.T) {
	r := testenv.NewRedis(t, "--notify-keyspace-events", "KEA")
	cfg := testConfig(r)
	cfg.MaxConnections, cfg.MaxDatabases, cfg.PoolSize, cfg.MaxWatchedKeys = 7, 16, 10, 20
	reg := prometheus.NewRegistry()
	b := newBackendEnv(t, cfg, scalerkit.Env{Log: quiet, Registerer: reg})
	s := scalertest.Serve(t, b, scalertest.Options{CacheTTL: -1, PushInterval: time.Second})
	ctx := scalertest.Context(t, time.Minute)
	rdb := client(t, r, 0)
	// The sampler has a connection of its own, named, so that what
	// Redis counts for the scaler is every connection but the test's.
	sampler := redis.NewClient(&redis.Options{Addr: r.Addr(), ClientName: "sampler", PoolSize: 1, PipelinePoolSize: -1})
	t.Cleanup(func() { _ = sampler.Close() })

	stop := make(chan struct{})
	peak := make(chan int, 1)
	go func() { // sample while the attack runs
		hi := 0
		for {
			select {
			case <-stop:
				peak <- hi
				return
			case <-time.After(5 * time.Millisecond):
			}
			hi = max(hi, int(b.conns.open.Load()))
			if list, err := sampler.ClientList(context.Background()).Result(); err == nil {
				n := 0
				for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
					if !strings.Contains(line, "name=sampler") && !strings.Contains(line, "cmd=info") && !strings.Contains(line, "cmd=pubsub") {
						n++
					}
				}
				hi = max(hi, n)
			}
		}
	}()

	var wg sync.WaitGroup
	var mu sync.Mutex
	codesSeen := map[codes.Code]int{}
	for i := range 400 { // bounded: 400 calls, 8 at a time
		wg.Add(1)
		go func() {
			defer wg.Done()
			md := map[string]string{"mode": "set", "key": fmt.Sprintf("k%d", i), "databaseIndex": strconv.Itoa(i % 16),
				"sessionSizeKey": fmt.Sprintf("target:%d", i)}
			_, err := s.Client.GetMetricSpec(ctx, scalertest.Ref(md))
			if err == nil {
				_, err = s.GetMetrics(ctx, md, "session_size")
			}
			mu.Lock()
			codesSeen[status.Code(err)]++
			mu.Unlock()
		}()
		if i%8 == 7 {
			wg.Wait()
		}
	}
	wg.Wait()
	// Let the target feeds subscribe what they can.
	time.Sleep(500 * time.Millisecond)
	close(stop)
	hi := <-peak
	channels, err := rdb.PubSubChannels(ctx, "__keyspace@*").Result()
	must(t, err)
	t.Logf("codes %v, peak connections %d, channels %d", codesSeen, hi, len(channels))
	if hi > cfg.MaxConnections {
		t.Errorf("peak %d connections from the scaler, cap REDIS_MAX_CONNECTIONS=%d", hi, cfg.MaxConnections)
	}
	if codesSeen[codes.OK] != 400 {
		t.Errorf("codes %v over 16 databases: want every read answered (the databases share the connections)", codesSeen)
	}
	if len(channels) > cfg.MaxWatchedKeys || len(channels) == 0 {
		t.Errorf("%d keyspace channels subscribed, want 1 to REDIS_MAX_WATCHED_KEYS=%d", len(channels), cfg.MaxWatchedKeys)
	}
	if got := testutil.ToFloat64(b.metrics.subscriptions); int(got) != len(channels) {
		t.Errorf("kedascalers_redis_subscriptions = %v, Redis says %d", got, len(channels))
	}
	if limitCount(b, limitWatchedKeys) == 0 {
		t.Error("REDIS_MAX_WATCHED_KEYS never counted as reached")
	}
	if n, err := testutil.GatherAndCount(reg, "kedascalers_redis_connections", "kedascalers_redis_connections_in_use",
		"kedascalers_redis_clients", "kedascalers_redis_subscriptions", "kedascalers_limit_refusals_total"); err != nil || n != 7 {
		t.Errorf("registered series = %d, %v; want 7", n, err)
	}
}

// TestMaxWatchedKeys: watches up to REDIS_MAX_WATCHED_KEYS subscribe; one
// more waits (its feed polls) with one warning, and subscribes as soon as
// a name is freed.
func TestMaxWatchedKeys(t *testing.T) {
	r := testenv.NewRedis(t, "--notify-keyspace-events", "KEA")
	rdb := client(t, r, 0)
	cfg := testConfig(r)
	cfg.MaxWatchedKeys = 2
	var logs wait.Buffer
	b := newBackendEnv(t, cfg, scalerkit.Env{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := scalertest.Context(t, time.Minute)

	watch := func(key string) (stop func() error) {
		tr, err := b.Parse(metadata.NewParser(map[string]string{"mode": "set", "key": key}))
		must(t, err)
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- tr.Probe.Watch(wctx, func() {}) }()
		return func() error { cancel(); return <-done }
	}
	stopA, stopB := watch("a"), watch("b")
	waitSubscribed(t, rdb, "__keyspace@0__:a")
	waitSubscribed(t, rdb, "__keyspace@0__:b")
	stopC := watch("c") // one past the limit
	stopD := watch("d")
	logs.WaitFor(t, 5*time.Second, "keyspace notifications at their limit", "REDIS_MAX_WATCHED_KEYS")
	time.Sleep(100 * time.Millisecond)
	if n := rdb.PubSubNumSub(ctx, "__keyspace@0__:c").Val()["__keyspace@0__:c"]; n != 0 {
		t.Errorf("c subscribed past the limit")
	}
	if n := strings.Count(logs.String(), "keyspace notifications at their limit"); n != 1 {
		t.Errorf("%d warnings for two watches past the limit, want 1 (rate-limited):\n%s", n, logs.String())
	}
	if got := limitCount(b, limitWatchedKeys); got != 2 {
		t.Errorf("limit counter = %v, want 2", got)
	}
	if !errors.Is(stopA(), context.Canceled) {
		t.Error("watch of a did not end with its context")
	}
	wait.For(t, 5*time.Second, "one waiting watch subscribed once a name was freed", func() bool {
		n := rdb.PubSubNumSub(ctx, "__keyspace@0__:c", "__keyspace@0__:d").Val()
		return n["__keyspace@0__:c"]+n["__keyspace@0__:d"] == 1
	})
	for _, stop := range []func() error{stopB, stopC, stopD} {
		if err := stop(); !errors.Is(err, context.Canceled) {
			t.Errorf("stop = %v, want context.Canceled", err)
		}
	}
}

// TestOneLogLinePerFailedCheck: a check against a Redis that is down logs
// one line (scalerkit's), not go-redis's dial warnings too.
func TestOneLogLinePerFailedCheck(t *testing.T) {
	r := testenv.NewRedis(t)
	must(t, r.Stop())
	var logs wait.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	b := newBackendEnv(t, testConfig(r), scalerkit.Env{Log: log})
	s := scalertest.Serve(t, b, scalertest.Options{CacheTTL: -1, Logger: log})
	ctx := scalertest.Context(t, time.Minute)
	logs.WaitFor(t, 5*time.Second, `"msg":"serving"`) // the server's own line
	before := strings.Count(logs.String(), "\n")
	_, err := s.GetMetrics(ctx, map[string]string{"mode": "set", "key": "s"}, "session_size")
	scalertest.WantStatus(t, err, codes.Unavailable, "connection refused")
	time.Sleep(200 * time.Millisecond) // anything logged in the background
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")[before:]
	if len(lines) != 1 {
		t.Fatalf("%d log lines for one failed check, want 1:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if strings.Count(lines[0], "connection refused") != 1 {
		t.Errorf("the reason is not given exactly once: %s", lines[0])
	}
}

// TestSetupErrorCodes: a refused setup is FailedPrecondition, a server
// that cannot be reached Unavailable, a server that does not answer in
// time DeadlineExceeded; each reason given once.
func TestSetupErrorCodes(t *testing.T) {
	r := testenv.NewRedis(t, "--requirepass", "right")
	down := testenv.NewRedis(t)
	must(t, down.Stop())
	ctx := scalertest.Context(t, time.Minute)
	md := map[string]string{"mode": "set", "key": "s"}

	for _, tt := range []struct {
		name     string
		url      string
		password string
		code     codes.Code
		reason   string
	}{
		{"right password", r.URL(), "right", codes.OK, ""},
		{"wrong password", r.URL(), "wrong", codes.FailedPrecondition, "WRONGPASS"},
		{"no password", r.URL(), "", codes.FailedPrecondition, "NOAUTH"},
		{"down", down.URL(), "", codes.Unavailable, "connection refused"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(r)
			cfg.URL, cfg.Password = tt.url, tt.password
			s := scalertest.Serve(t, newBackend(t, cfg), scalertest.Options{CacheTTL: -1})
			_, err := s.GetMetrics(ctx, md, "session_size")
			if tt.code == codes.OK {
				must(t, err)
				return
			}
			scalertest.WantStatus(t, err, tt.code, tt.reason)
			if n := strings.Count(status.Convert(err).Message(), tt.reason); n != 1 {
				t.Errorf("%q gives the reason %d times, want once", status.Convert(err).Message(), n)
			}
		})
	}

	t.Run("no reply in time", func(t *testing.T) {
		cfg := testConfig(r)
		cfg.Password = "right"
		s := scalertest.Serve(t, newBackend(t, cfg), scalertest.Options{CacheTTL: -1})
		_, err := s.GetMetrics(ctx, md, "session_size") // connected before the pause
		must(t, err)
		admin := redis.NewClient(&redis.Options{Addr: r.Addr(), Password: "right", PipelinePoolSize: -1})
		t.Cleanup(func() { _ = admin.Close() })
		must(t, admin.Do(ctx, "client", "pause", 3000, "all").Err())
		t.Cleanup(func() { _ = admin.Do(context.Background(), "client", "unpause").Err() })
		_, err = s.GetMetrics(ctx, md, "session_size")
		scalertest.WantStatus(t, err, codes.DeadlineExceeded)
	})
}
