package session

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// fill writes the data of TestModes into db 0 and db 3 of rdb's server.
func fill(t *testing.T, ctx context.Context, db0, db3 *redis.Client) {
	t.Helper()
	now := time.Now()
	_, err := db0.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range 25 {
			p.Set(ctx, fmt.Sprintf("sess:%d", i), "{}", time.Minute) // sessions expire on their own
		}
		for i := range 4 {
			p.Set(ctx, fmt.Sprintf("spring:session:sessions:%d", i), "{}", time.Minute)
		}
		for i := range 5 {
			p.Set(ctx, fmt.Sprintf("other:%d", i), "x", 0)
		}
		for i := range 12 {
			p.SAdd(ctx, "sessions", fmt.Sprintf("user-%d", i))
		}
		for i := range 5 { // expired
			p.ZAdd(ctx, "expiry", redis.Z{Score: float64(now.Add(-time.Duration(i+1) * time.Hour).Unix()), Member: fmt.Sprintf("old-%d", i)})
		}
		for i := range 7 { // still valid
			p.ZAdd(ctx, "expiry", redis.Z{Score: float64(now.Add(time.Duration(i+1) * time.Hour).Unix()), Member: fmt.Sprintf("new-%d", i)})
		}
		for i := range 3 {
			p.ZAdd(ctx, "expiry_ms", redis.Z{Score: float64(now.Add(-time.Duration(i+1) * time.Minute).UnixMilli()), Member: fmt.Sprintf("old-%d", i)})
		}
		for i := range 4 {
			p.ZAdd(ctx, "expiry_ms", redis.Z{Score: float64(now.Add(time.Duration(i+1) * time.Minute).UnixMilli()), Member: fmt.Sprintf("new-%d", i)})
		}
		for i := 1; i <= 10; i++ {
			p.ZAdd(ctx, "scores", redis.Z{Score: float64(i), Member: fmt.Sprint(i)})
		}
		for i := range 9 {
			p.HSet(ctx, "users", fmt.Sprintf("u%d", i), "session")
		}
		for i := range 6 {
			p.RPush(ctx, "queue", fmt.Sprintf("s%d", i))
		}
		p.Set(ctx, "count", "42", 0)
		p.Set(ctx, "notint", "4.2", 0)
		p.Set(ctx, "on", "TRUE", 0)
		p.Set(ctx, "one", "1", 0)
		p.Set(ctx, "yes", "yes", 0)
		return nil
	})
	must(t, err)
	_, err = db3.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range 17 {
			p.Set(ctx, fmt.Sprintf("k%d", i), "v", 0)
		}
		p.SAdd(ctx, "sessions", "a", "b")
		return nil
	})
	must(t, err)
}

// TestModes polls every mode the way KEDA does and compares the value with
// Redis's own count.
func TestModes(t *testing.T) {
	e := newEnv(t, scalertest.Options{})
	ctx := scalertest.Context(t, time.Minute)
	db3 := client(t, e.r, 3)
	fill(t, ctx, e.rdb, db3)
	now := time.Now()

	count := func(cmd interface{ Result() (int64, error) }) func() int64 {
		return func() int64 {
			n, err := cmd.Result()
			must(t, err)
			return n
		}
	}
	tests := []struct {
		name string
		md   map[string]string
		own  func() int64 // Redis's own answer
		want int64
	}{
		{"dbsize", map[string]string{}, count(e.rdb.DBSize(ctx)), 45},
		{"dbsize of db 3", map[string]string{"databaseIndex": "3"}, count(db3.DBSize(ctx)), 18},
		{"pattern", map[string]string{"mode": "pattern", "keyPattern": "sess:*"}, func() int64 { return int64(len(e.rdb.Keys(ctx, "sess:*").Val())) }, 25},
		{"pattern spring", map[string]string{"mode": "pattern", "keyPattern": "spring:session:sessions:*"}, func() int64 { return int64(len(e.rdb.Keys(ctx, "spring:session:sessions:*").Val())) }, 4},
		{"pattern with glob class", map[string]string{"mode": "pattern", "keyPattern": "sess:[12]*"}, func() int64 { return int64(len(e.rdb.Keys(ctx, "sess:[12]*").Val())) }, 1 + 10 + 1 + 5},
		{"pattern nothing", map[string]string{"mode": "pattern", "keyPattern": "nothing:*"}, func() int64 { return 0 }, 0},
		{"set", map[string]string{"mode": "set", "key": "sessions"}, count(e.rdb.SCard(ctx, "sessions")), 12},
		{"set in db 3", map[string]string{"mode": "set", "key": "sessions", "databaseIndex": "3"}, count(db3.SCard(ctx, "sessions")), 2},
		{"set missing", map[string]string{"mode": "set", "key": "nope"}, count(e.rdb.SCard(ctx, "nope")), 0},
		{"zset", map[string]string{"mode": "zset", "key": "expiry"}, count(e.rdb.ZCard(ctx, "expiry")), 12},
		{"zset minScore now", map[string]string{"mode": "zset", "key": "expiry", "minScore": "now"},
			count(e.rdb.ZCount(ctx, "expiry", fmt.Sprint(now.Unix()), "+inf")), 7},
		{"zset minScore now_ms", map[string]string{"mode": "zset", "key": "expiry_ms", "minScore": "now_ms"},
			count(e.rdb.ZCount(ctx, "expiry_ms", fmt.Sprint(now.UnixMilli()), "+inf")), 4},
		{"zset minScore number", map[string]string{"mode": "zset", "key": "scores", "minScore": "4"}, count(e.rdb.ZCount(ctx, "scores", "4", "+inf")), 7},
		{"hash", map[string]string{"mode": "hash", "key": "users"}, count(e.rdb.HLen(ctx, "users")), 9},
		{"list", map[string]string{"mode": "list", "key": "queue"}, count(e.rdb.LLen(ctx, "queue")), 6},
		{"counter", map[string]string{"mode": "counter", "key": "count"}, func() int64 { n, _ := e.rdb.Get(ctx, "count").Int64(); return n }, 42},
		{"counter missing", map[string]string{"mode": "counter", "key": "nope"}, func() int64 { return 0 }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md := map[string]string{"sessionSize": "10", "scalerAddress": "redis-session:9090"}
			for k, v := range tt.md {
				md[k] = v
			}
			got, err := e.s.Poll(ctx, md)
			if err != nil {
				t.Fatalf("Poll: %v", err)
			}
			own := tt.own()
			if got.Value != float64(own) || own != tt.want {
				t.Errorf("value = %v, Redis says %d, want %d", got.Value, own, tt.want)
			}
			if got.MetricName != "session_size" || got.Target != 10 {
				t.Errorf("spec = %s/%v, want session_size/10", got.MetricName, got.Target)
			}
			if got.Active != (tt.want > 0) {
				t.Errorf("active = %v with value %v, want %v", got.Active, got.Value, tt.want > 0)
			}
		})
	}
}

func TestMetricSpec(t *testing.T) {
	e := newEnv(t, scalertest.Options{})
	ctx := scalertest.Context(t, time.Minute)
	for _, tt := range []struct {
		md        map[string]string
		name      string
		target    float64
		targetInt int64
	}{
		{map[string]string{}, "session_size", 100, 100},
		{map[string]string{"sessionSize": "2.5"}, "session_size", 2.5, 3},
		{map[string]string{"sessionSize": "0.1", "metricName": "web-sessions"}, "web-sessions", 0.1, 1},
		{map[string]string{"sessionSize": "50", "sessionSizeKey": "capacity"}, "session_size", 50, 50}, // key not read yet
	} {
		res, err := e.s.Client.GetMetricSpec(ctx, scalertest.Ref(tt.md))
		must(t, err)
		if len(res.GetMetricSpecs()) != 1 {
			t.Fatalf("GetMetricSpec(%v) = %v, want one spec", tt.md, res)
		}
		s := res.GetMetricSpecs()[0]
		if s.GetMetricName() != tt.name || s.GetTargetSizeFloat() != tt.target || s.GetTargetSize() != tt.targetInt {
			t.Errorf("GetMetricSpec(%v) = %s %d %v, want %s %d %v", tt.md, s.GetMetricName(), s.GetTargetSize(),
				s.GetTargetSizeFloat(), tt.name, tt.targetInt, tt.target)
		}
	}
}

func TestActivity(t *testing.T) {
	e := newEnv(t, scalertest.Options{})
	ctx := scalertest.Context(t, time.Minute)
	fill(t, ctx, e.rdb, client(t, e.r, 3))
	tests := []struct {
		name   string
		md     map[string]string
		value  float64
		active bool
	}{
		{"above the default threshold", map[string]string{"mode": "set", "key": "sessions"}, 12, true},
		{"empty", map[string]string{"mode": "set", "key": "nope"}, 0, false},
		{"at the threshold", map[string]string{"mode": "set", "key": "sessions", "activationSessionSize": "12"}, 12, false},
		{"above the threshold", map[string]string{"mode": "set", "key": "sessions", "activationSessionSize": "11.5"}, 12, true},
		{"activeKey TRUE", map[string]string{"mode": "set", "key": "nope", "activeKey": "on"}, 0, true},
		{"activeKey 1", map[string]string{"mode": "list", "key": "queue", "activeKey": "one"}, 6, true},
		{"activeKey yes is off", map[string]string{"mode": "set", "key": "sessions", "activeKey": "yes"}, 12, false},
		{"activeKey missing is off", map[string]string{"mode": "set", "key": "sessions", "activeKey": "absent"}, 12, false},
		{"activeKey with pattern", map[string]string{"mode": "pattern", "keyPattern": "sess:*", "activeKey": "on"}, 25, true},
		{"activeKey off with pattern", map[string]string{"mode": "pattern", "keyPattern": "sess:*", "activeKey": "absent"}, 25, false},
		{"activeKey with zset now", map[string]string{"mode": "zset", "key": "expiry", "minScore": "now", "activeKey": "on"}, 7, true},
		{"activeKey in db 3", map[string]string{"databaseIndex": "3", "activeKey": "on"}, 18, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.s.Poll(ctx, tt.md)
			must(t, err)
			if got.Value != tt.value || got.Active != tt.active {
				t.Errorf("value, active = %v, %v; want %v, %v", got.Value, got.Active, tt.value, tt.active)
			}
		})
	}
}

// TestMisconfiguredKeys checks that reading a key of another type, or a
// database Redis does not have, is FailedPrecondition with a clear
// message, not an outage, counted as the tenant's mistake
// (outcome="invalid"), not the platform's.
func TestMisconfiguredKeys(t *testing.T) {
	e := newEnv(t, scalertest.Options{})
	ctx := scalertest.Context(t, time.Minute)
	fill(t, ctx, e.rdb, client(t, e.r, 3))
	tests := []struct {
		name string
		md   map[string]string
		want string
	}{
		{"set on a string", map[string]string{"mode": "set", "key": "count"}, `SCARD "count" on db 0: the key holds another type than a set`},
		{"zset on a set", map[string]string{"mode": "zset", "key": "sessions", "minScore": "now"}, "a sorted set (mode=zset)"},
		{"hash on a list", map[string]string{"mode": "hash", "key": "queue"}, "a hash (mode=hash)"},
		{"list on a hash", map[string]string{"mode": "list", "key": "users"}, "a list (mode=list)"},
		{"counter on a set", map[string]string{"mode": "counter", "key": "sessions"}, "mode=counter"},
		{"counter not an integer", map[string]string{"mode": "counter", "key": "notint"}, `value "4.2" is not an integer`},
		{"activeKey on a hash", map[string]string{"mode": "set", "key": "sessions", "activeKey": "users"}, "activeKey"},
		{"database that does not exist", map[string]string{"databaseIndex": "99"}, "databaseIndex 99 does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := scalertest.BackendCalls(t, e.s, "value", "invalid")
			_, err := e.s.GetMetrics(ctx, tt.md, "session_size")
			if code := status.Code(err); code != codes.FailedPrecondition {
				t.Fatalf("GetMetrics: code %v, want FailedPrecondition (%v)", code, err)
			}
			if n := scalertest.BackendCalls(t, e.s, "value", "invalid") - before; n != 1 {
				t.Errorf("%d backend calls counted outcome=invalid, want 1 (the tenant's mistake)", n)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("GetMetrics: %q does not say %q", status.Convert(err).Message(), tt.want)
			}
			_, err = e.s.Client.IsActive(ctx, scalertest.Ref(tt.md))
			if code := status.Code(err); code != codes.FailedPrecondition {
				t.Errorf("IsActive: code %v, want FailedPrecondition (%v)", code, err)
			}
		})
	}
}

// TestOutage stops Redis under the scaler: reads fail (or, with
// onError=inactive, report 0 and inactive) and recover once Redis is back.
func TestOutage(t *testing.T) {
	for _, tt := range []struct {
		onError string
	}{{"error"}, {"inactive"}} {
		t.Run(tt.onError, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, scalertest.Options{BackendTimeout: time.Second, CacheTTL: -1})
			ctx := scalertest.Context(t, time.Minute)
			md := map[string]string{"mode": "set", "key": "sessions", "onError": tt.onError}
			must(t, e.rdb.SAdd(ctx, "sessions", "a", "b", "c").Err())
			if p, err := e.s.Poll(ctx, md); err != nil || p.Value != 3 || !p.Active {
				t.Fatalf("before the outage: %+v, %v; want 3 and active", p, err)
			}

			must(t, e.r.Stop())
			start := time.Now()
			v, err := e.s.GetMetrics(ctx, md, "session_size")
			act, actErr := e.s.Client.IsActive(ctx, scalertest.Ref(md))
			t.Logf("GetMetrics and IsActive answered in %v during the outage: %v / %v", time.Since(start), err, actErr)
			if elapsed := time.Since(start); elapsed > 3*time.Second {
				t.Errorf("two calls took %v during the outage, want each bounded by the 1s backend timeout", elapsed)
			}
			if tt.onError == "error" {
				for name, err := range map[string]error{"GetMetrics": err, "IsActive": actErr} {
					if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
						t.Errorf("%s during the outage: code %v, want Unavailable or DeadlineExceeded (%v)", name, code, err)
					}
				}
				if err == nil {
					t.Errorf("GetMetrics during the outage returned %v", v)
				}
			} else {
				if err != nil || v != 0 || actErr != nil || act.GetResult() {
					t.Errorf("onError=inactive during the outage: %v, %v / %v, %v; want 0 and inactive", v, err, act, actErr)
				}
			}

			must(t, e.r.Start())
			must(t, e.rdb.SAdd(ctx, "sessions", "a", "b", "c", "d").Err()) // no persistence: refill
			err = wait.Until(2*time.Second, func() error {
				if p, err := e.s.Poll(ctx, md); err != nil || p.Value != 4 || !p.Active {
					return fmt.Errorf("2s after Redis came back: %+v, %v; want 4 and active", p, err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCoalescing checks that 100 concurrent questions cost Redis one
// command.
func TestCoalescing(t *testing.T) {
	e := newEnv(t, scalertest.Options{CacheTTL: time.Minute})
	ctx := scalertest.Context(t, time.Minute)
	must(t, e.rdb.Set(ctx, "a", "1", 0).Err())
	before := commandCalls(t, e.rdb, "dbsize")

	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Different ScaledObjects and targets, one question.
			md := map[string]string{"mode": "dbsize", "sessionSize": fmt.Sprint(i + 1)}
			v, err := e.s.GetMetrics(ctx, md, "session_size")
			if err == nil && v != 1 {
				err = fmt.Errorf("value %v, want 1", v)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := commandCalls(t, e.rdb, "dbsize") - before; got != 1 {
		t.Errorf("100 concurrent GetMetrics ran DBSIZE %d times, want 1", got)
	}
}

// TestBadMetadataKeepsServing checks that a rejected trigger harms
// nobody else.
func TestBadMetadataKeepsServing(t *testing.T) {
	e := newEnv(t, scalertest.Options{})
	ctx := scalertest.Context(t, time.Minute)
	bad := scalertest.Ref(map[string]string{"mode": "set"})
	if _, err := e.s.Client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: bad, MetricName: "session_size"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("GetMetrics with bad metadata: %v, want InvalidArgument", err)
	}
	if _, err := e.s.Client.GetMetricSpec(ctx, bad); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("GetMetricSpec with bad metadata: %v, want InvalidArgument", err)
	}
	st, err := e.s.Client.StreamIsActive(ctx, bad)
	must(t, err)
	if _, err := st.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("StreamIsActive with bad metadata: %v, want InvalidArgument", err)
	}
	must(t, e.rdb.SAdd(ctx, "sessions", "a").Err())
	p, err := e.s.Poll(ctx, map[string]string{"mode": "set", "key": "sessions"})
	if err != nil || p.Value != 1 || !p.Active {
		t.Fatalf("good poll after a bad one: %+v, %v", p, err)
	}
}
