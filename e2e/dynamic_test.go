package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kedascalers/kedascalers/e2e/cluster"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
)

// TestDynamicTarget: redis-session reads its target from sessionSizeKey and
// sends every change on StreamMetricSpec (and from GetMetricSpec). This
// records what KEDA v2.21 does with a changed target: whether the HPA's
// AverageValue follows it, and the replicas that result.
func TestDynamicTarget(t *testing.T) {
	c := needCluster(t)
	r := testenv.NewRedis(t, "--notify-keyspace-events", "KEA")
	s := startScaler(t, "redis-session", "REDIS_URL="+r.URL(), "PUSH_INTERVAL=1s")
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Set(t.Context(), "shop:sessions", 250, 0).Err(); err != nil {
		t.Fatal(err)
	}
	ns := newNamespace(t, "")
	apply(t, ns, deployment("shop", 1)+fmt.Sprintf(`apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: shop}
spec:
  scaleTargetRef: {name: shop}
  pollingInterval: 1
  minReplicaCount: 1
  maxReplicaCount: 20
%s  triggers:
    - type: external
      metadata:
        scalerAddress: %s
        mode: counter
        key: shop:sessions
        sessionSize: "100"
        sessionSizeKey: shop:capacity
`, fastHPA, s.Addr))
	waitReady(t, ns, "shop", 60*time.Second)
	waitReplicas(t, ns, "shop", 3, 60*time.Second)
	target := func(ctx context.Context) string {
		hpa, err := c.Kube().Get(ctx, cluster.HPAs, ns, "keda-hpa-shop")
		if err != nil {
			return err.Error()
		}
		metrics, _, _ := unstructured.NestedSlice(hpa.Object, "spec", "metrics")
		if len(metrics) == 0 {
			return "no metric"
		}
		avg, _, _ := unstructured.NestedString(metrics[0].(map[string]any), "external", "target", "averageValue")
		return avg
	}
	if got := target(t.Context()); got != "100" {
		t.Fatalf("HPA target %q, want 100 (sessionSize while the key is missing)", got)
	}

	// The capacity per replica halves: 250 sessions at 50 are 5 replicas if
	// the HPA's target follows.
	t0 := time.Now()
	if err := rdb.Set(t.Context(), "shop:capacity", 50, 0).Err(); err != nil {
		t.Fatal(err)
	}
	var avg string
	var replicas int64
	_ = cluster.Eventually(t.Context(), 30*time.Second, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
		avg = target(ctx)
		n, err := c.Kube().Replicas(ctx, ns, "shop")
		replicas = n
		return avg == "50" && n == 5, err
	})
	t.Logf("sessionSizeKey 100 → 50: after %v the HPA's AverageValue target is %s and spec.replicas %d", time.Since(t0).Round(10*time.Millisecond), avg, replicas)
	if avg != "50" || replicas != 5 {
		t.Errorf("KEDA v2.21 did not apply the changed target: HPA target %s, replicas %d (want 50, 5)", avg, replicas)
	}
}
