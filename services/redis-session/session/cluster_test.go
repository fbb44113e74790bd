package session

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
)

// newCluster starts a Redis Cluster of three masters, each holding a third
// of the slots, and returns their addresses once the cluster is up.
func newCluster(t *testing.T) []string {
	t.Helper()
	ctx := scalertest.Context(t, time.Minute)
	const nodes = 3
	var addrs []string
	var clients []*redis.Client
	for range nodes {
		r := testenv.NewRedis(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
		addrs = append(addrs, r.Addr())
		clients = append(clients, client(t, r, 0))
	}
	for i, c := range clients {
		lo, hi := i*16384/nodes, (i+1)*16384/nodes-1
		must(t, c.Do(ctx, "cluster", "addslotsrange", lo, hi).Err())
		if i > 0 {
			host, port, _ := strings.Cut(addrs[0], ":")
			must(t, c.ClusterMeet(ctx, host, port).Err())
		}
	}
	for _, c := range clients {
		for {
			info, err := c.ClusterInfo(ctx).Result()
			must(t, err)
			if strings.Contains(info, "cluster_state:ok") && strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", nodes)) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("cluster not ok after a minute:\n%s", info)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return addrs
}

// TestCluster counts across every master of a Redis Cluster.
func TestCluster(t *testing.T) {
	addrs := newCluster(t)
	cfg := Config{
		Addrs: addrs, PoolSize: 5, MinIdleConns: 0, DialTimeout: time.Second, ReadTimeout: time.Second,
		WriteTimeout: time.Second, ScanCount: 100, NotifyMinInterval: time.Second,
		MaxConnections: 32, MaxDatabases: 4, ClientIdleTimeout: time.Minute, MaxWatchedKeys: 100,
	}
	b := newBackend(t, cfg)
	s := scalertest.Serve(t, b, scalertest.Options{CacheTTL: -1})
	ctx := scalertest.Context(t, time.Minute)

	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, PipelinePoolSize: -1})
	t.Cleanup(func() { _ = cc.Close() })
	wait.For(t, 5*time.Second, "cluster client ready", func() bool { return cc.Ping(ctx).Err() == nil })
	for i := range 300 {
		must(t, cc.Set(ctx, fmt.Sprintf("sess:%d", i), "{}", time.Minute).Err())
	}
	for i := range 20 {
		must(t, cc.Set(ctx, fmt.Sprintf("other:%d", i), "x", 0).Err())
	}
	must(t, cc.SAdd(ctx, "{users}:sessions", "a", "b", "c").Err())
	must(t, cc.Set(ctx, "scale", "1", 0).Err())

	// The keys really are spread: every master holds some.
	must(t, cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		if n := c.DBSize(ctx).Val(); n == 0 {
			return fmt.Errorf("master %s holds no key", c.Options().Addr)
		}
		return nil
	}))

	for _, tt := range []struct {
		name   string
		md     map[string]string
		value  float64
		active bool
	}{
		{"pattern sums every master", map[string]string{"mode": "pattern", "keyPattern": "sess:*"}, 300, true},
		{"dbsize sums every master", map[string]string{}, 300 + 20 + 2, true},
		{"set", map[string]string{"mode": "set", "key": "{users}:sessions"}, 3, true},
		{"activeKey in another slot", map[string]string{"mode": "set", "key": "{users}:sessions", "activeKey": "scale"}, 3, true},
		{"pattern with activeKey off", map[string]string{"mode": "pattern", "keyPattern": "other:*", "activeKey": "nope"}, 20, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := s.Poll(ctx, tt.md)
			if err != nil || p.Value != tt.value || p.Active != tt.active {
				t.Errorf("Poll = %+v, %v; want value %v, active %v", p, err, tt.value, tt.active)
			}
		})
	}

	_, err := s.Client.IsActive(ctx, scalertest.Ref(map[string]string{"databaseIndex": "1"}))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "databaseIndex") {
		t.Errorf("databaseIndex=1 on a cluster: %v, want InvalidArgument naming databaseIndex", err)
	}
}
