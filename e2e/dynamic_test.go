package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kedascalers/kedascalers/e2e/cluster"
)

// TestDynamicTarget: redis-session reads its target from sessionSizeKey and
// sends each change on StreamMetricSpec (and answers it from GetMetricSpec).
// What KEDA v2.21 does with a changed target, as observed here:
//   - external-push: KEDA holds StreamMetricSpec open, puts the new spec in
//     its cache and reconciles the ScaledObject: the HPA's AverageValue
//     target follows within seconds, and so do the replicas;
//   - external (polling): KEDA never opens StreamMetricSpec, and the HPA
//     keeps the target it was created with until the ScaledObject is
//     reconciled for another reason (a spec change here), when it takes the
//     new one from GetMetricSpec.
func TestDynamicTarget(t *testing.T) {
	for _, tc := range []struct {
		trigger string
		follows bool // the HPA's target follows the change by itself
	}{
		{"external-push", true},
		{"external", false},
	} {
		t.Run(tc.trigger, func(t *testing.T) {
			c := needCluster(t)
			_, rdb, s := redisScaler(t, notifications, "PUSH_INTERVAL=1s")
			if err := rdb.Set(t.Context(), "shop:sessions", 250, 0).Err(); err != nil {
				t.Fatal(err)
			}
			ns := newNamespace(t, "")
			so := func(pollingInterval int) string {
				return fmt.Sprintf(`apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: shop}
spec:
  scaleTargetRef: {name: shop}
  pollingInterval: %d
  minReplicaCount: 1
  maxReplicaCount: 20
%s  triggers:
    - type: %s
      metadata:
        scalerAddress: %s
        mode: counter
        key: shop:sessions
        sessionSize: "100"
        sessionSizeKey: shop:capacity
`, pollingInterval, fastHPA, tc.trigger, s.Addr)
			}
			apply(t, ns, deployment("shop", 1)+so(1))
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

			// The capacity per replica halves: 250 sessions at 50 a replica
			// are 5 replicas once the HPA's target is 50.
			t0 := time.Now()
			if err := rdb.Set(t.Context(), "shop:capacity", 50, 0).Err(); err != nil {
				t.Fatal(err)
			}
			follows := func(timeout time.Duration) (bool, string, int64) {
				var avg string
				var n int64
				err := cluster.Eventually(t.Context(), timeout, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
					avg = target(ctx)
					var err error
					n, err = c.Kube().Replicas(ctx, ns, "shop")
					return avg == "50" && n == 5, err
				})
				return err == nil, avg, n
			}
			if !tc.follows {
				ok, avg, n := follows(8 * time.Second)
				t.Logf("%s: 8 s after sessionSizeKey 100 → 50, the HPA's target is %s, spec.replicas %d", tc.trigger, avg, n)
				if ok {
					t.Fatalf("the HPA's target followed without StreamMetricSpec: KEDA changed, update this test and the README")
				}
				// Any reconcile takes the new target from GetMetricSpec.
				t0 = time.Now()
				apply(t, ns, so(2))
			}
			ok, avg, n := follows(30 * time.Second)
			if !ok {
				t.Fatalf("HPA target %s, spec.replicas %d after %v: want 50 and 5%s", avg, n, time.Since(t0).Round(10*time.Millisecond), diagnose(t, ns))
			}
			how := "through StreamMetricSpec"
			if !tc.follows {
				how = "at the next reconcile (spec change)"
			}
			t.Logf("%s: sessionSizeKey 100 → 50 reached the HPA %s in %v: target 50, 5 replicas", tc.trigger, how, time.Since(t0).Round(10*time.Millisecond))
		})
	}
}
