package session

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	grpcmd "google.golang.org/grpc/metadata"

	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// TestMissingKeyWarns: a key that does not exist reads as 0, as KEDA
// expects, with a warning (scalerctl check prints it) naming the key,
// since a misspelt key is the usual cause of a workload scaled to zero.
// A key that exists, even empty of what is counted, has none.
func TestMissingKeyWarns(t *testing.T) {
	e := newEnv(t, scalertest.Options{CacheTTL: -1})
	ctx := scalertest.Context(t, time.Minute)
	must(t, e.rdb.SAdd(ctx, "sessions", "a").Err())
	must(t, e.rdb.ZAdd(ctx, "old", redis.Z{Score: 1, Member: "m"}).Err())
	tests := []struct {
		name  string
		md    map[string]string
		value float64
		want  string // "" for no warning
	}{
		{"set missing", map[string]string{"mode": "set", "key": "sesions"}, 0, `key "sesions" does not exist on db 0: read as 0 (Redis deletes a set (mode=set) once empty`},
		{"counter missing", map[string]string{"mode": "counter", "key": "visits"}, 0, `key "visits" does not exist on db 0: read as 0 (if it should, check the key's spelling)`},
		{"set present", map[string]string{"mode": "set", "key": "sessions"}, 1, ""},
		{"zset present, none counted", map[string]string{"mode": "zset", "key": "old", "minScore": "5"}, 0, ""},
		{"dbsize", map[string]string{"mode": "dbsize"}, 2, ""},
		{"pattern matching nothing", map[string]string{"mode": "pattern", "keyPattern": "nothing:*"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var header grpcmd.MD
			res, err := e.s.Client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: scalertest.Ref(tt.md)}, grpc.Header(&header))
			must(t, err)
			if v := res.GetMetricValues()[0].GetMetricValueFloat(); v != tt.value {
				t.Errorf("value %v, want %v", v, tt.value)
			}
			got := header.Get(scaler.WarningHeader)
			switch {
			case tt.want == "" && len(got) != 0:
				t.Errorf("warnings %q, want none", got)
			case tt.want != "" && !slices.ContainsFunc(got, func(w string) bool { return strings.Contains(w, tt.want) }):
				t.Errorf("warnings %q, want one saying %q", got, tt.want)
			}
		})
	}
}
