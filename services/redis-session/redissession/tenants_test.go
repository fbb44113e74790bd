package redissession

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// specStream is one StreamMetricSpec as KEDA holds it: targets receives
// each target sent, ended how the stream ended.
type specStream struct {
	targets chan float64
	ended   chan error
}

// openSpecStream opens StreamMetricSpec for a ScaledObject of namespace
// ns whose metadata is md; it is closed when the test ends.
func openSpecStream(t testing.TB, s *scalertest.Scaler, ns, name string, md map[string]string) *specStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := s.Client.StreamMetricSpec(ctx, &pb.ScaledObjectRef{Namespace: ns, Name: name, ScalerMetadata: md})
	must(t, err)
	ss := &specStream{targets: make(chan float64), ended: make(chan error, 1)}
	go func() {
		for {
			m, err := st.Recv()
			if err != nil {
				ss.ended <- err
				return
			}
			select {
			case ss.targets <- m.GetMetricSpecs()[0].GetTargetSizeFloat():
			case <-ctx.Done():
				return
			}
		}
	}()
	return ss
}

// waitTarget waits up to d for ss to send want (the static target may
// come first, before the reader's first read).
func (ss *specStream) waitTarget(t testing.TB, want float64, d time.Duration, what string) {
	t.Helper()
	deadline := time.After(d)
	var seen []float64
	for {
		select {
		case v := <-ss.targets:
			if v == want {
				return
			}
			seen = append(seen, v)
		case err := <-ss.ended:
			t.Fatalf("%s: stream ended (%v) after targets %v, want %v", what, err, seen, want)
		case <-deadline:
			t.Fatalf("%s: targets %v within %v, want %v", what, seen, d, want)
		}
	}
}

// TestTargetStreamGivesItsPlace: at MAX_PUSH_STREAMS, good's
// StreamMetricSpec of a backend-read target (sessionSizeKey) takes the
// newest push-stream place of evil; evil's stream ends with OK (KEDA
// reopens it at once) and its older one stays; good's stream sends the
// target read from Redis, and follows a change of it by push.
func TestTargetStreamGivesItsPlace(t *testing.T) {
	t.Setenv("MAX_PUSH_STREAMS", "2")
	e := newEnv(t, scalertest.Options{PushInterval: time.Minute, CacheTTL: -1}, "--notify-keyspace-events", "KEA")
	ctx := scalertest.Context(t, time.Minute)
	targets := map[string]float64{"cap:e1": 20, "cap:e2": 30, "cap:g": 40}
	for k, v := range targets {
		must(t, e.rdb.Set(ctx, k, v, 0).Err())
	}
	md := func(key string) map[string]string {
		return map[string]string{"mode": "set", "key": "s", "sessionSize": "10", "sessionSizeKey": key}
	}
	var evil []*specStream
	for _, key := range []string{"cap:e1", "cap:e2"} { // in order: e2 is the newest
		ss := openSpecStream(t, e.s, "evil", "so-"+key, md(key))
		ss.waitTarget(t, targets[key], 5*time.Second, "evil's "+key)
		evil = append(evil, ss)
	}

	good := openSpecStream(t, e.s, "good", "so-g", md("cap:g"))
	good.waitTarget(t, 40, 5*time.Second, "good's target with every place held by evil")
	select {
	case err := <-evil[1].ended:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("evil's newest stream after good took its place: %v, want a clean end (status OK)", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("evil's newest stream still open 5s after good took its place")
	}
	select {
	case err := <-evil[0].ended:
		t.Fatalf("evil's older stream, within its share, ended: %v", err)
	default:
	}

	waitSubscribed(t, e.rdb, "__keyspace@0__:cap:g")
	must(t, e.rdb.Set(ctx, "cap:g", "50", 0).Err())
	good.waitTarget(t, 50, time.Second, "good's target pushed after SET cap:g 50")
	if got := testutil.ToFloat64(e.s.Metrics.PlacesTaken.WithLabelValues("push_streams")); got != 1 {
		t.Errorf("push_streams places taken = %v, want 1", got)
	}
}

// TestDatabasesTwoNamespaces: with REDIS_MAX_DATABASES below the
// databases namespace a uses, namespace b's new databaseIndex is answered
// correctly within a second, every time, while a goes on reading its
// own; a's answers stay correct throughout and after, and the clients
// open never pass the cap.
func TestDatabasesTwoNamespaces(t *testing.T) {
	for _, maxDBs := range []int{1, 2} {
		t.Run(fmt.Sprintf("REDIS_MAX_DATABASES=%d", maxDBs), func(t *testing.T) {
			r := testenv.NewRedis(t)
			cfg := testConfig(r)
			cfg.MaxDatabases = maxDBs
			b := newBackend(t, cfg)
			s := scalertest.Serve(t, b, scalertest.Options{CacheTTL: -1})
			ctx := scalertest.Context(t, time.Minute)
			// Database db holds db sessions: each answer names its database.
			for db := 1; db <= 7; db++ {
				c := client(t, r, db)
				for i := range db {
					must(t, c.SAdd(ctx, "sessions", strconv.Itoa(i)).Err())
				}
				must(t, c.Close())
			}
			md := func(db int) map[string]string {
				return map[string]string{"databaseIndex": strconv.Itoa(db), "mode": "set", "key": "sessions"}
			}
			aDBs := []int{1, 2, 3}

			stop := make(chan struct{})
			var wg sync.WaitGroup
			var mu sync.Mutex
			var aWrong []string
			aReads, peak := 0, 0
			wg.Add(1)
			go func() { // namespace a reads its databases in turn
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					db := aDBs[i%len(aDBs)]
					v, err := getMetrics(ctx, s, "a", md(db))
					mu.Lock()
					aReads++
					peak = max(peak, int(testutil.ToFloat64(b.metrics.clients)))
					if err != nil || v != float64(db) {
						aWrong = append(aWrong, fmt.Sprintf("db %d: %v, %v", db, v, err))
					}
					mu.Unlock()
				}
			}()
			aRead := func() int { mu.Lock(); defer mu.Unlock(); return aReads }
			wait.For(t, 10*time.Second, "a's databases read in turn", func() bool { return aRead() >= 10 })
			for i := range 5 {
				// a reads between b's reads: b's client and a's take turns.
				n := aRead()
				wait.For(t, 10*time.Second, "a's next read", func() bool { return aRead() > n })
				bctx, cancel := context.WithTimeout(ctx, time.Second)
				v, err := getMetrics(bctx, s, "b", md(7))
				cancel()
				if err != nil || v != 7 {
					t.Fatalf("b's databaseIndex 7, read %d, while a uses %v = %v, %v; want 7 within 1s", i+1, aDBs, v, err)
				}
			}
			close(stop)
			wg.Wait()
			for _, db := range aDBs { // a's databases still answered after b's
				if v, err := getMetrics(ctx, s, "a", md(db)); err != nil || v != float64(db) {
					t.Errorf("a's databaseIndex %d after b's reads = %v, %v; want %d", db, v, err, db)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			t.Logf("a's reads %d, wrong %d, peak clients %d", aReads, len(aWrong), peak)
			if aReads == 0 {
				t.Error("a read nothing while b read")
			}
			if len(aWrong) > 0 {
				t.Errorf("%d of a's %d reads wrong or failed, first: %s", len(aWrong), aReads, aWrong[0])
			}
			if peak > maxDBs {
				t.Errorf("peak %d clients open, REDIS_MAX_DATABASES=%d", peak, maxDBs)
			}
			if got := limitCount(b, limitDatabases) + limitCount(b, limitConnections); got != 0 {
				t.Errorf("limits counted as reached %v times, want none", got)
			}
		})
	}
}
