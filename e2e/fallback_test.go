package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestOutageFallback: with Redis down, redis-session answers Unavailable
// (never a silent 0): KEDA applies the ScaledObject's fallback replicas and
// sets its Fallback condition; with Redis back, scaling is normal again. A
// trigger with onError: inactive instead reads an outage as "no sessions",
// on purpose, and KEDA scales it to its minimum.
func TestOutageFallback(t *testing.T) {
	c := needCluster(t)
	r, rdb, s := redisScaler(t, nil)
	ns := newNamespace(t, "")
	so := func(name string, minReplicas int, extra, onError string) string {
		return deployment(name, minReplicas) + fmt.Sprintf(`apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: %[1]s}
spec:
  scaleTargetRef: {name: %[1]s}
  pollingInterval: 1
  cooldownPeriod: 2
  minReplicaCount: %[2]d
  maxReplicaCount: 10
%[3]s%[4]s  triggers:
    - type: external
      metadata:
        scalerAddress: %[5]s
        mode: counter
        key: %[1]s:sessions
        sessionSize: "100"
        onError: %[6]s
---
`, name, minReplicas, extra, fastHPA, s.Addr, onError)
	}
	setSessions := func() {
		t.Helper()
		for _, k := range []string{"api:sessions", "batch:sessions"} {
			if err := rdb.Set(t.Context(), k, 150, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	setSessions()
	apply(t, ns, so("api", 1, "  fallback: {failureThreshold: 3, replicas: 4}\n", "error")+so("batch", 0, "", "inactive"))
	waitReady(t, ns, "api", 60*time.Second)
	waitReplicas(t, ns, "api", 2, 60*time.Second)
	waitReplicas(t, ns, "batch", 2, 60*time.Second)

	t0 := time.Now()
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	waitReplicas(t, ns, "api", 4, 60*time.Second)
	waitCondition(t, ns, "api", "Fallback", "True", 30*time.Second)
	t.Logf("Redis down: fallback 4 replicas and Fallback=True in %v", time.Since(t0).Round(10*time.Millisecond))
	waitReplicas(t, ns, "batch", 0, 60*time.Second)
	t.Logf("Redis down: onError inactive scaled to 0 in %v", time.Since(t0).Round(10*time.Millisecond))
	evs, err := c.Kube().Events(t.Context(), ns)
	if err != nil {
		t.Fatal(err)
	}
	var unavailable string
	for _, e := range evs {
		if e.Object == "ScaledObject/api" && strings.Contains(e.Message, "Unavailable") {
			unavailable = e.Reason + ": " + e.Message
		}
	}
	if unavailable == "" {
		t.Errorf("no event of ScaledObject api names Unavailable%s", diagnose(t, ns))
	} else {
		t.Logf("KEDA's event: %s", unavailable)
	}

	t0 = time.Now()
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	setSessions()
	waitReplicas(t, ns, "api", 2, 60*time.Second)
	waitCondition(t, ns, "api", "Fallback", "False", 30*time.Second)
	waitReplicas(t, ns, "batch", 2, 60*time.Second)
	t.Logf("Redis back: both at 2 replicas, Fallback=False in %v", time.Since(t0).Round(10*time.Millisecond))
}
