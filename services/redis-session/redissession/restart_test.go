package redissession

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kedascalers/kedascalers/libs/scalerkit"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/subscription"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
)

// TestPushThroughRedisRestart: a StreamIsActive watching keyspace
// notifications keeps pushing after Redis is stopped and started again on
// the same port: once Redis answers, the watch subscribes again within a
// few seconds, and a write is pushed within a second. PUSH_INTERVAL is a
// minute, so only a push can deliver it. Each restart logs one warning
// and one line when Redis answers, not one per feed.
func TestPushThroughRedisRestart(t *testing.T) {
	r := testenv.NewRedis(t, "--notify-keyspace-events", "KEA")
	var logs wait.Buffer
	b := newBackendEnv(t, testConfig(r), scalerkit.Env{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	e := &env{r: r, rdb: client(t, r, 0), b: b, s: scalertest.Serve(t, b, scalertest.Options{PushInterval: time.Minute, CacheTTL: -1})}
	ctx := scalertest.Context(t, time.Minute)
	const channel = "__keyspace@0__:s"
	ch := e.streamIsActive(t, map[string]string{"mode": "set", "key": "s"})
	if scalertest.Next(t, ch, 5*time.Second, "first message") {
		t.Fatal("first message is true for an empty set")
	}
	waitSubscribed(t, e.rdb, channel)
	must(t, e.rdb.SAdd(ctx, "s", "a").Err())
	if !scalertest.Next(t, ch, time.Second, "push before the restart") {
		t.Fatal("false after SADD")
	}
	must(t, e.rdb.Del(ctx, "s").Err())
	if scalertest.Next(t, ch, time.Second, "push of the DEL before the restart") {
		t.Fatal("true after DEL")
	}

	for i := range 2 { // twice: the second restart finds the watch as the first left it
		must(t, e.r.Stop())
		logs.WaitFor(t, 5*time.Second, fmt.Sprint(i+1), "keyspace notifications lost")
		must(t, e.r.Start()) // the same arguments: notifications on
		back := time.Now()
		waitSubscribed(t, e.rdb, channel)
		d := time.Since(back)
		t.Logf("restart %d: subscribed again %v after Redis answered", i+1, d)
		if d > 5*time.Second {
			t.Errorf("restart %d: subscribed again %v after Redis answered, want within 5s", i+1, d)
		}
		must(t, e.rdb.SAdd(ctx, "s", "b").Err())
		if !scalertest.Next(t, ch, time.Second, "push after the restart") {
			t.Fatal("false after SADD")
		}
		must(t, e.rdb.Del(ctx, "s").Err())
		if scalertest.Next(t, ch, time.Second, "push of the DEL after the restart") {
			t.Fatal("true after DEL")
		}
		if n := strings.Count(logs.String(), "keyspace notifications lost"); n != i+1 {
			t.Errorf("%d warnings after %d restarts, want one each:\n%s", n, i+1, logs.String())
		}
		if n := strings.Count(logs.String(), "Redis answers again"); n != i+1 {
			t.Errorf("%d lines saying Redis answers again after %d restarts, want one each:\n%s", n, i+1, logs.String())
		}
	}
}

// TestWatchWaitsForRedis: when Redis goes, a watch, and one started while
// Redis is down, wait for it instead of failing (a failed watch is
// watched again only after PUSH_INTERVAL); once Redis answers both
// subscribe again, calling changed, hear changes, and end with their
// context.
func TestWatchWaitsForRedis(t *testing.T) {
	r := testenv.NewRedis(t, "--notify-keyspace-events", "KEA")
	var logs wait.Buffer
	b := newBackendEnv(t, testConfig(r), scalerkit.Env{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	tr, err := b.Parse(metadata.NewParser(map[string]string{"mode": "pattern", "keyPattern": "sess:*"}))
	must(t, err)
	ctx := scalertest.Context(t, time.Minute)
	type watch struct {
		calls atomic.Int32
		done  chan error
		stop  context.CancelFunc
	}
	start := func() *watch {
		w := &watch{done: make(chan error, 1)}
		wctx, stop := context.WithCancel(ctx)
		w.stop = stop
		go func() { w.done <- tr.Probe.Watch(wctx, func() { w.calls.Add(1) }) }()
		return w
	}
	rdb := client(t, r, 0)
	first := start()
	waitSubscribed(t, rdb, "")
	wait.For(t, 5*time.Second, "first watch called once subscribed", func() bool { return first.calls.Load() == 1 })

	must(t, r.Stop())
	logs.WaitFor(t, 5*time.Second, "keyspace notifications lost")
	// The loss is a signal: the feed reads, fails, and polls meanwhile.
	wait.For(t, 5*time.Second, "first watch called once more when the subscription broke", func() bool { return first.calls.Load() == 2 })
	second := start()
	select {
	case err := <-first.done:
		t.Fatalf("first watch ended with Redis down: %v, want it to wait", err)
	case err := <-second.done:
		t.Fatalf("watch started with Redis down ended: %v, want it to wait", err)
	case <-time.After(2 * notifyRetry):
	}

	wait.For(t, 5*time.Second, "second watch called once when it could not subscribe", func() bool { return second.calls.Load() == 1 })
	must(t, r.Start())
	wait.For(t, 5*time.Second, "both watches subscribed again", func() bool {
		return first.calls.Load() == 3 && second.calls.Load() == 2
	})
	waitSubscribed(t, rdb, "")
	must(t, rdb.Set(ctx, "sess:1", "x", 0).Err())
	wait.For(t, 5*time.Second, "both watches hear a change", func() bool {
		return first.calls.Load() == 4 && second.calls.Load() == 3
	})
	for _, w := range []*watch{first, second} {
		w.stop()
		if err := <-w.done; !errors.Is(err, context.Canceled) {
			t.Errorf("watch after cancel = %v, want context.Canceled", err)
		}
	}
	if n := strings.Count(logs.String(), "keyspace notifications lost"); n != 1 {
		t.Errorf("%d warnings for one outage, want 1:\n%s", n, logs.String())
	}
}

// TestConnLost: only a broken or refused connection has a watch wait for
// Redis; an error reply, a limit, a place given up or the backend
// closing end it.
func TestConnLost(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"timeout", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, true},
		{"EOF", fmt.Errorf("pubsub: %w", io.EOF), true},
		{"closed", net.ErrClosed, true},
		{"client closed", redis.ErrClosed, false},
		{"NOAUTH", fmt.Errorf("subscribe: %w", redisErr("NOAUTH Authentication required.")), false},
		{"connection limit", fmt.Errorf("dialing: %w", errConnLimit), false},
		{"place lost", subscription.ErrPlaceLost, false},
		{"mux closed", subscription.ErrClosed, false},
		{"backend closed", errClosed, false},
		{"cancelled", context.Canceled, false},
		{"nil", nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := connLost(tt.err); got != tt.want {
				t.Errorf("connLost(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// redisErr is an error reply of Redis, as go-redis returns it.
type redisErr string

func (e redisErr) Error() string { return string(e) }
func (redisErr) RedisError()     {}
