package redissession

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// streamIsActive opens StreamIsActive for md and returns its messages.
func (e *env) streamIsActive(t testing.TB, md map[string]string) <-chan bool {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := e.s.Client.StreamIsActive(ctx, scalertest.Ref(md))
	must(t, err)
	return scalertest.Messages(ctx, func() (bool, error) {
		m, err := st.Recv()
		return m.GetResult(), err
	})
}

// TestStreamIsActivePolling: without keyspace notifications the stream
// follows the push interval, and sends true once per transition.
func TestStreamIsActivePolling(t *testing.T) {
	const interval = 300 * time.Millisecond
	e := newEnv(t, scalertest.Options{PushInterval: interval, CacheTTL: -1})
	ctx := scalertest.Context(t, time.Minute)
	md := map[string]string{"mode": "set", "key": "live", "activationSessionSize": "2"}

	start := time.Now()
	ch := e.streamIsActive(t, md)
	if got := scalertest.Next(t, ch, time.Second, "first message"); got {
		t.Fatal("first message is true for an empty set")
	}
	t.Logf("first message after %v", time.Since(start))

	must(t, e.rdb.SAdd(ctx, "live", "a", "b").Err()) // at the threshold: still inactive
	scalertest.None(t, ch, 2*interval, "at the activation threshold")

	must(t, e.rdb.SAdd(ctx, "live", "c").Err())
	changed := time.Now()
	if got := scalertest.Next(t, ch, interval+300*time.Millisecond, "after crossing the threshold"); !got {
		t.Fatal("got false after crossing the threshold")
	}
	t.Logf("true %v after the change (push interval %v)", time.Since(changed), interval)

	must(t, e.rdb.SAdd(ctx, "live", "d").Err()) // still active: nothing to say
	scalertest.None(t, ch, 3*interval, "while staying active")
}

// TestStreamIsActiveKeyspaceNotifications: with notifications on, a change
// arrives within a second although the push interval is 30 s.
func TestStreamIsActiveKeyspaceNotifications(t *testing.T) {
	tests := []struct {
		name    string
		md      map[string]string
		channel string // waited for; empty for a pattern subscription
		change  func(context.Context, *redis.Client) error
	}{
		{"set", map[string]string{"mode": "set", "key": "s"}, "__keyspace@0__:s",
			func(ctx context.Context, c *redis.Client) error { return c.SAdd(ctx, "s", "a").Err() }},
		{"zset now", map[string]string{"mode": "zset", "key": "z", "minScore": "now"}, "__keyspace@0__:z",
			func(ctx context.Context, c *redis.Client) error {
				return c.ZAdd(ctx, "z", redis.Z{Score: float64(time.Now().Add(time.Hour).Unix()), Member: "a"}).Err()
			}},
		{"hash", map[string]string{"mode": "hash", "key": "h"}, "__keyspace@0__:h",
			func(ctx context.Context, c *redis.Client) error { return c.HSet(ctx, "h", "f", "v").Err() }},
		{"list", map[string]string{"mode": "list", "key": "l"}, "__keyspace@0__:l",
			func(ctx context.Context, c *redis.Client) error { return c.LPush(ctx, "l", "a").Err() }},
		{"counter", map[string]string{"mode": "counter", "key": "n"}, "__keyspace@0__:n",
			func(ctx context.Context, c *redis.Client) error { return c.Incr(ctx, "n").Err() }},
		{"key with glob characters", map[string]string{"mode": "set", "key": `s[*]?\`}, `__keyspace@0__:s[*]?\`,
			func(ctx context.Context, c *redis.Client) error { return c.SAdd(ctx, `s[*]?\`, "a").Err() }},
		{"pattern", map[string]string{"mode": "pattern", "keyPattern": "sess:*"}, "",
			func(ctx context.Context, c *redis.Client) error { return c.Set(ctx, "sess:1", "{}", time.Minute).Err() }},
		{"dbsize", map[string]string{}, "",
			func(ctx context.Context, c *redis.Client) error { return c.Set(ctx, "anything", "1", 0).Err() }},
		{"activeKey", map[string]string{"mode": "set", "key": "s", "activeKey": "scale"}, "__keyspace@0__:scale",
			func(ctx context.Context, c *redis.Client) error { return c.Set(ctx, "scale", "true", 0).Err() }},
		{"other database", map[string]string{"mode": "set", "key": "s", "databaseIndex": "5"}, "__keyspace@5__:s",
			func(ctx context.Context, c *redis.Client) error {
				return c.Do(ctx, "eval", "redis.call('select', 5); return redis.call('sadd', 's', 'a')", 0).Err()
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, scalertest.Options{PushInterval: 30 * time.Second, CacheTTL: 30 * time.Second},
				"--notify-keyspace-events", "KEA")
			ctx := scalertest.Context(t, time.Minute)
			ch := e.streamIsActive(t, tt.md)
			if got := scalertest.Next(t, ch, time.Second, "first message"); got {
				t.Fatal("first message is true before any session")
			}
			waitSubscribed(t, e.rdb, tt.channel)

			must(t, tt.change(ctx, e.rdb))
			changed := time.Now()
			if got := scalertest.Next(t, ch, time.Second, "after the change"); !got {
				t.Fatal("got false after the change")
			}
			t.Logf("true %v after the change", time.Since(changed))
		})
	}
}

// TestStreamMetricSpecSessionSizeKey: operators retune the target in
// Redis; the stream and GetMetricSpec follow.
func TestStreamMetricSpecSessionSizeKey(t *testing.T) {
	const interval = 300 * time.Millisecond
	e := newEnv(t, scalertest.Options{PushInterval: interval, CacheTTL: -1})
	ctx := scalertest.Context(t, time.Minute)
	md := map[string]string{"mode": "set", "key": "s", "sessionSize": "10", "sessionSizeKey": "capacity"}

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := e.s.Client.StreamMetricSpec(sctx, scalertest.Ref(md))
	must(t, err)
	ch := scalertest.Messages(sctx, func() (*pb.MetricSpec, error) {
		m, err := st.Recv()
		if err != nil || len(m.GetMetricSpecs()) != 1 {
			return nil, fmt.Errorf("recv %v: %w", m, err)
		}
		return m.GetMetricSpecs()[0], nil
	})
	if got := scalertest.Next(t, ch, time.Second, "first message"); got.GetTargetSizeFloat() != 10 {
		t.Fatalf("first target %v, want the fallback 10", got.GetTargetSizeFloat())
	}
	specTarget := func() float64 {
		res, err := e.s.Client.GetMetricSpec(ctx, scalertest.Ref(md))
		must(t, err)
		return res.GetMetricSpecs()[0].GetTargetSizeFloat()
	}

	must(t, e.rdb.Set(ctx, "capacity", "50", 0).Err())
	got := scalertest.Next(t, ch, 5*interval, "after SET capacity 50")
	if got.GetTargetSizeFloat() != 50 || got.GetTargetSize() != 50 {
		t.Fatalf("target %d/%v, want 50", got.GetTargetSize(), got.GetTargetSizeFloat())
	}
	if v := specTarget(); v != 50 {
		t.Errorf("GetMetricSpec target %v after the stream said 50", v)
	}

	must(t, e.rdb.Set(ctx, "capacity", "lots", 0).Err()) // a bad value keeps the last good target
	scalertest.None(t, ch, 3*interval, "after a bad value")
	if v := specTarget(); v != 50 {
		t.Errorf("GetMetricSpec target %v after a bad value, want the last good 50", v)
	}

	must(t, e.rdb.Set(ctx, "capacity", "12.5", 0).Err())
	if got := scalertest.Next(t, ch, 5*interval, "after SET capacity 12.5"); got.GetTargetSizeFloat() != 12.5 || got.GetTargetSize() != 13 {
		t.Fatalf("target %d/%v, want 13/12.5", got.GetTargetSize(), got.GetTargetSizeFloat())
	}

	must(t, e.rdb.Del(ctx, "capacity").Err()) // no key: back to sessionSize
	if got := scalertest.Next(t, ch, 5*interval, "after DEL capacity"); got.GetTargetSizeFloat() != 10 {
		t.Fatalf("target %v after DEL, want the fallback 10", got.GetTargetSizeFloat())
	}
}

// TestStreamMetricSpecWatchesSessionSizeKey: with notifications on, a new
// target arrives within a second although the push interval is 30 s.
func TestStreamMetricSpecWatchesSessionSizeKey(t *testing.T) {
	e := newEnv(t, scalertest.Options{PushInterval: 30 * time.Second}, "--notify-keyspace-events", "KEA")
	ctx := scalertest.Context(t, time.Minute)
	md := map[string]string{"sessionSizeKey": "capacity", "sessionSize": "10"}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := e.s.Client.StreamMetricSpec(sctx, scalertest.Ref(md))
	must(t, err)
	ch := scalertest.Messages(sctx, func() (float64, error) {
		m, err := st.Recv()
		if err != nil {
			return 0, err
		}
		return m.GetMetricSpecs()[0].GetTargetSizeFloat(), nil
	})
	scalertest.Next(t, ch, time.Second, "first message")
	waitSubscribed(t, e.rdb, "__keyspace@0__:capacity")
	must(t, e.rdb.Set(ctx, "capacity", "40", 0).Err())
	if got := scalertest.Next(t, ch, time.Second, "after SET capacity 40"); got != 40 {
		t.Fatalf("target %v, want 40", got)
	}
}

// TestNotifierSharesOneConnection: every watcher of a database shares one
// pub/sub connection, each hears only its keys, and the connection goes
// when the last watcher leaves.
func TestNotifierSharesOneConnection(t *testing.T) {
	r := testenv.NewRedis(t, "--notify-keyspace-events", "KEA")
	rdb := client(t, r, 0)
	b := newBackend(t, testConfig(r))
	ctx := scalertest.Context(t, time.Minute)

	pubsubClients := func() int {
		list, err := rdb.ClientList(ctx).Result()
		must(t, err)
		return strings.Count(list, "flags=P")
	}
	type watch struct {
		calls atomic.Int32
		done  chan error
		stop  context.CancelFunc
	}
	start := func(md map[string]string) *watch {
		tr, err := b.Parse(metadata.NewParser(md))
		must(t, err)
		w := &watch{done: make(chan error, 1)}
		wctx, stop := context.WithCancel(ctx)
		w.stop = stop
		go func() { w.done <- tr.Probe.Watch(wctx, func() { w.calls.Add(1) }) }()
		return w
	}
	a := start(map[string]string{"mode": "set", "key": "a"})
	a2 := start(map[string]string{"mode": "set", "key": "a", "activeKey": "on"})
	bw := start(map[string]string{"mode": "set", "key": "b"})
	for _, ch := range []string{"__keyspace@0__:a", "__keyspace@0__:b", "__keyspace@0__:on"} {
		waitSubscribed(t, rdb, ch)
	}
	if n := pubsubClients(); n != 1 {
		t.Errorf("%d pub/sub connections for three watchers, want 1", n)
	}
	// Each watcher is called once when subscribed: its feed read before.
	wait.For(t, 5*time.Second, "every watcher called once subscribed",
		func() bool { return a.calls.Load() == 1 && a2.calls.Load() == 1 && bw.calls.Load() == 1 })

	must(t, rdb.SAdd(ctx, "b", "x").Err())
	wait.For(t, 5*time.Second, "watcher of b called", func() bool { return bw.calls.Load() == 2 })
	must(t, rdb.Set(ctx, "on", "1", 0).Err())
	wait.For(t, 5*time.Second, "watcher of activeKey called", func() bool { return a2.calls.Load() == 2 })
	if n := a.calls.Load(); n != 1 {
		t.Errorf("watcher of a called %d times for changes of b and on", n-1)
	}

	bw.stop()
	if err := <-bw.done; !errors.Is(err, context.Canceled) {
		t.Errorf("Watch after cancel = %v, want context.Canceled", err)
	}
	wait.For(t, 5*time.Second, "b unsubscribed", func() bool { return rdb.PubSubNumSub(ctx, "__keyspace@0__:b").Val()["__keyspace@0__:b"] == 0 })
	must(t, rdb.SAdd(ctx, "a", "x").Err())
	wait.For(t, 5*time.Second, "both watchers of a called", func() bool { return a.calls.Load() == 2 && a2.calls.Load() == 3 })

	a.stop()
	a2.stop()
	<-a.done
	<-a2.done
	wait.For(t, 5*time.Second, "pub/sub connection closed after the last watcher", func() bool { return pubsubClients() == 0 })
}

func TestClusterProbesDoNotWatch(t *testing.T) {
	b := &Backend{cluster: true}
	tr, err := b.Parse(metadata.NewParser(map[string]string{"mode": "set", "key": "s", "sessionSizeKey": "c"}))
	must(t, err)
	ctx := scalertest.Context(t, time.Minute)
	if err := tr.Probe.Watch(ctx, func() {}); !errors.Is(err, scaler.ErrNoChanges) {
		t.Errorf("a Cluster probe's Watch = %v, want ErrNoChanges: notifications are node-local there", err)
	}
	if err := tr.TargetProbe.Watch(ctx, func() {}); !errors.Is(err, scaler.ErrNoChanges) {
		t.Errorf("a Cluster target probe's Watch = %v, want ErrNoChanges", err)
	}
}

// TestStreamIsActiveChangeRightAfterOpen: a change made as soon as the
// first message came, before the subscription may be in place, is pushed
// within a second, not at the 30 s push interval: the feed re-checks
// once subscribed. (SUBSCRIBE is quick: the race shows on a loaded
// machine, as under make e2e.)
func TestStreamIsActiveChangeRightAfterOpen(t *testing.T) {
	e := newEnv(t, scalertest.Options{PushInterval: 30 * time.Second, CacheTTL: 30 * time.Second},
		"--notify-keyspace-events", "KEA")
	ctx := scalertest.Context(t, time.Minute)
	for i := range 5 { // a fresh feed each time: a distinct key
		key := fmt.Sprintf("early:%d", i)
		ch := e.streamIsActive(t, map[string]string{"mode": "set", "key": key})
		if scalertest.Next(t, ch, 5*time.Second, "first message") {
			t.Fatal("first message is true for an empty set")
		}
		must(t, e.rdb.SAdd(ctx, key, "a").Err()) // no waitSubscribed
		if !scalertest.Next(t, ch, time.Second, key+": after a change right after the first message") {
			t.Fatal("false after SADD")
		}
	}
}

// TestNotifyMinInterval: a busy keyspace (an event on every write) costs
// the feed of a dbsize trigger one re-check per REDIS_NOTIFY_MIN_INTERVAL,
// the first change at once, not one per write.
func TestNotifyMinInterval(t *testing.T) {
	e := newEnv(t, scalertest.Options{PushInterval: 30 * time.Second, CacheTTL: -1}, "--notify-keyspace-events", "KEA")
	ctx := scalertest.Context(t, time.Minute)
	ch := e.streamIsActive(t, map[string]string{"mode": "dbsize"})
	if scalertest.Next(t, ch, 5*time.Second, "first message") {
		t.Fatal("first message is true for an empty database")
	}
	waitSubscribed(t, e.rdb, "")
	must(t, e.rdb.ConfigResetStat(ctx).Err())
	start := time.Now()
	for i := range 30 { // 600 ms of writes, within the 1 s interval of testConfig
		must(t, e.rdb.Set(ctx, fmt.Sprintf("k%d", i), "v", 0).Err())
		time.Sleep(20 * time.Millisecond)
	}
	if !scalertest.Next(t, ch, time.Second, "after the first write") {
		t.Fatal("false after writes")
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Skipf("the writes took %v: too slow a machine to judge a 1s interval", d)
	}
	// The first write at once, perhaps the subscription's own re-check,
	// at most one more at the end of the interval: not one per write.
	if n := commandCalls(t, e.rdb, "dbsize"); n < 1 || n > 3 {
		t.Errorf("%d DBSIZE re-checks for 30 writes within REDIS_NOTIFY_MIN_INTERVAL, want 1 to 3", n)
	}
}
