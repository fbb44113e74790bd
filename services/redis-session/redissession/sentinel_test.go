package redissession

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
)

// TestSentinel finds the master through a Sentinel (REDIS_ADDRS with
// REDIS_MASTER_NAME), counts on it, and reports its outage as Unavailable.
func TestSentinel(t *testing.T) {
	master := testenv.NewRedis(t)
	sentinel := testenv.NewSentinel(t, master, "sessions")
	cfg := Config{
		Addrs: []string{sentinel.Addr()}, MasterName: "sessions",
		PoolSize: 5, MinIdleConns: 0, ConnectTimeout: 300 * time.Millisecond, ReadTimeout: 500 * time.Millisecond,
		WriteTimeout: 500 * time.Millisecond, ScanCount: 100, NotifyMinInterval: time.Second,
		// The tightest budget for two databases: 4 reserved (pub/sub
		// client's 3, one look-up per Sentinel), and per database one
		// pooled connection plus its Sentinel connection and subscription.
		MaxConnections: 10, MaxDatabases: 2, ClientIdleTimeout: time.Minute, MaxWatchedKeys: 100,
	}
	b := newBackend(t, cfg)
	s := scalertest.Serve(t, b, scalertest.Options{CacheTTL: -1})
	ctx := scalertest.Context(t, time.Minute)

	db0, db3 := client(t, master, 0), client(t, master, 3)
	for i := range 7 {
		must(t, db0.Set(ctx, fmt.Sprintf("sess:%d", i), "{}", time.Minute).Err())
	}
	must(t, db3.SAdd(ctx, "online", "a", "b").Err())

	for _, tt := range []struct {
		name  string
		md    map[string]string
		value float64
	}{
		{"dbsize of the master", map[string]string{}, 7},
		{"pattern", map[string]string{"mode": "pattern", "keyPattern": "sess:*"}, 7},
		{"databaseIndex", map[string]string{"mode": "set", "key": "online", "databaseIndex": "3"}, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := s.Poll(ctx, tt.md)
			if err != nil || p.Value != tt.value || !p.Active {
				t.Errorf("Poll = %+v, %v; want value %v, active", p, err, tt.value)
			}
		})
	}

	if n := limitCount(b, limitConnections); n != 0 {
		t.Errorf("%v dials refused past REDIS_MAX_CONNECTIONS=10: the Sentinel budget does not cover what go-redis opens", n)
	}
	t.Logf("connections open with Sentinel, two databases: %d", b.conns.open.Load())

	must(t, master.Stop())
	_, err := s.GetMetrics(ctx, map[string]string{}, "session_size")
	scalertest.WantStatus(t, err, codes.Unavailable)
}
