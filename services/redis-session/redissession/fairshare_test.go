package redissession

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/share"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// getMetrics is KEDA's GetMetrics for a ScaledObject of namespace ns.
func getMetrics(ctx context.Context, s *scalertest.Scaler, ns string, md map[string]string) (float64, error) {
	res, err := s.Client.GetMetrics(ctx, &pb.GetMetricsRequest{MetricName: "session_size",
		ScaledObjectRef: &pb.ScaledObjectRef{Namespace: ns, Name: "so", ScalerMetadata: md}})
	if err != nil {
		return 0, err
	}
	return res.GetMetricValues()[0].GetMetricValueFloat(), nil
}

// TestOtherTenantsDatabases: namespace evil keeps databases 10 to 15 busy
// (more than REDIS_MAX_DATABASES clients, more databases than connections
// per pool); good's databaseIndex 5 still answers correctly within a
// second, nobody is refused, and the scaler stays within
// REDIS_MAX_CONNECTIONS.
func TestOtherTenantsDatabases(t *testing.T) {
	r := testenv.NewRedis(t)
	cfg := testConfig(r)
	cfg.MaxDatabases, cfg.MaxConnections, cfg.MaxWatchedKeys = 4, 6, 0
	b := newBackend(t, cfg)
	s := scalertest.Serve(t, b, scalertest.Options{CacheTTL: -1})
	ctx := scalertest.Context(t, time.Minute)
	db5 := client(t, r, 5)
	must(t, db5.SAdd(ctx, "sessions", "a", "b", "c").Err())
	must(t, db5.Close())

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	evilCodes := map[codes.Code]int{}
	peak := 0
	for db := 10; db < 16; db++ {
		wg.Add(1)
		go func() { // one of evil's ScaledObjects, polled without pause
			defer wg.Done()
			md := map[string]string{"databaseIndex": strconv.Itoa(db), "mode": "set", "key": "k" + strconv.Itoa(db)}
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := getMetrics(ctx, s, "evil", md)
				mu.Lock()
				evilCodes[status.Code(err)]++
				peak = max(peak, int(b.conns.open.Load()))
				mu.Unlock()
			}
		}()
	}
	wait.For(t, 10*time.Second, "evil's databases holding every client, 100 reads in", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return testutil.ToFloat64(b.metrics.clients) == float64(cfg.MaxDatabases) && len(evilCodes) > 0 && evilCodes[codes.OK] >= 100
	})

	for range 3 {
		goodCtx, cancel := context.WithTimeout(ctx, time.Second)
		v, err := getMetrics(goodCtx, s, "good", map[string]string{"databaseIndex": "5", "mode": "set", "key": "sessions"})
		cancel()
		if err != nil || v != 3 {
			t.Fatalf("good's databaseIndex 5 while evil uses 10 to 15 = %v, %v; want 3 within 1s", v, err)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("evil's reads %v, peak connections %d", evilCodes, peak)
	for c, n := range evilCodes {
		if c != codes.OK {
			t.Errorf("%d of evil's reads %v: each databaseIndex should wait its turn, not fail", n, c)
		}
	}
	if peak > cfg.MaxConnections {
		t.Errorf("peak %d connections, REDIS_MAX_CONNECTIONS=%d", peak, cfg.MaxConnections)
	}
	if got := limitCount(b, limitDatabases) + limitCount(b, limitConnections); got != 0 {
		t.Errorf("limits counted as reached %v times, want none", got)
	}
}

// TestWatchedKeysFairShare: evil's push streams fill
// REDIS_MAX_WATCHED_KEYS; good's first push stream takes a place from
// evil (whose newest feed gives its watch up, said at INFO, and polls),
// and good's first push message comes within a second of its change.
func TestWatchedKeysFairShare(t *testing.T) {
	r := testenv.NewRedis(t, "--notify-keyspace-events", "KEA")
	rdb := client(t, r, 0)
	cfg := testConfig(r)
	cfg.MaxWatchedKeys = 3
	b := newBackend(t, cfg)
	var logs wait.Buffer
	s := scalertest.Serve(t, b, scalertest.Options{CacheTTL: -1, PushInterval: time.Minute,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := scalertest.Context(t, time.Minute)

	stream := func(ns, key string) <-chan *pb.IsActiveResponse {
		st, err := s.Client.StreamIsActive(ctx, &pb.ScaledObjectRef{Namespace: ns, Name: "so-" + key,
			ScalerMetadata: map[string]string{"mode": "set", "key": key}})
		must(t, err)
		return scalertest.Messages(ctx, st.Recv)
	}
	for _, k := range []string{"e1", "e2", "e3"} {
		scalertest.Next(t, stream("evil", k), 5*time.Second, "evil's first message")
		waitSubscribed(t, rdb, "__keyspace@0__:"+k)
	}
	good := stream("good", "g")
	if m := scalertest.Next(t, good, 5*time.Second, "good's first message"); m.GetResult() {
		t.Fatal("good active before any session")
	}
	waitSubscribed(t, rdb, "__keyspace@0__:g")
	must(t, rdb.SAdd(ctx, "g", "s1").Err())
	if m := scalertest.Next(t, good, time.Second, "good's push within 1s"); !m.GetResult() {
		t.Error("good's push says inactive after a session was added")
	}
	subs := rdb.PubSubNumSub(ctx, "__keyspace@0__:e1", "__keyspace@0__:e2", "__keyspace@0__:e3").Val()
	if n := subs["__keyspace@0__:e1"] + subs["__keyspace@0__:e2"] + subs["__keyspace@0__:e3"]; n != 2 {
		t.Errorf("evil's keys subscribed %v: want 2 of 3 (one place given to good)", subs)
	}
	if b.notifier.mux.Held("good") != 1 || b.notifier.mux.Held("evil") != 2 {
		t.Errorf("good holds %d places, evil %d; want 1 and 2", b.notifier.mux.Held("good"), b.notifier.mux.Held("evil"))
	}
	logs.WaitFor(t, 5*time.Second, "level=INFO", "watch place given to another namespace")
	if strings.Contains(logs.String(), "level=WARN msg=\"watching for changes failed") {
		t.Errorf("a lost place logged as a failure:\n%s", logs.String())
	}
}

// TestGate: a namespace holds at most half of the connection turns; past
// that it waits while another namespace gets one at once; a read that
// finds no turn within its context is DeadlineExceeded naming
// REDIS_MAX_CONNECTIONS, and a freed turn goes on.
func TestGate(t *testing.T) {
	var largest atomic.Int32
	g := newGate(4, share.Options{Largest: func(n int) { largest.Store(int32(n)) }})
	ctx := scalertest.Context(t, time.Minute)
	var evil []func()
	for range 2 {
		release, err := g.acquire(ctx, "evil")
		must(t, err)
		evil = append(evil, release)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := g.acquire(short, "evil"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("evil's third turn of 4 = %v, want a wait until its context ends", err)
	}
	good, err := g.acquire(ctx, "good")
	must(t, err)
	if largest.Load() != 2 {
		t.Errorf("largest namespace holds %d turns, want 2", largest.Load())
	}
	good()
	for _, release := range evil {
		release()
	}
	if largest.Load() != 0 {
		t.Errorf("largest %d after every turn was given back", largest.Load())
	}

	// Through the Backend: one turn (REDIS_MAX_CONNECTIONS=2, one kept
	// for pub/sub), held; the next read waits, then times out clearly.
	r := testenv.NewRedis(t)
	cfg := testConfig(r)
	cfg.MaxConnections, cfg.PoolSize, cfg.MinIdleConns = 2, 1, 0
	b := newBackend(t, cfg)
	_, release, err := b.acquire(ctx, 0)
	must(t, err)
	short2, cancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel2()
	_, _, err = b.acquire(short2, 0)
	scalertest.WantStatus(t, err, codes.DeadlineExceeded, "no Redis connection free in time", "the 1 of REDIS_MAX_CONNECTIONS")
	if limitCount(b, limitConnections) != 1 {
		t.Errorf("REDIS_MAX_CONNECTIONS counted %v times, want 1", limitCount(b, limitConnections))
	}
	waited := make(chan error, 1)
	go func() {
		_, rel, err := b.acquire(ctx, 3)
		if err == nil {
			rel()
		}
		waited <- err
	}()
	time.Sleep(20 * time.Millisecond)
	release()
	must(t, <-waited)
}
