package e2e

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kedascalers/kedascalers/e2e/cluster"
)

// fastHPA is a ScaledObject's advanced section that lets the HPA move
// within a second either way, so that a scenario runs in seconds.
const fastHPA = `  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        scaleUp: {stabilizationWindowSeconds: 0, policies: [{type: Percent, value: 1000, periodSeconds: 1}]}
        scaleDown: {stabilizationWindowSeconds: 0, policies: [{type: Percent, value: 100, periodSeconds: 1}]}
`

// TestHPA: the HPA KEDA creates asks for s0-<metricName> with an
// AverageValue target equal to sessionSize, and the HPA controller scales
// on redis-session's value: 250 sessions at 100 a replica are 3 replicas,
// then 150 are 2 and 10 are 1 (the minimum).
func TestHPA(t *testing.T) {
	c := needCluster(t)
	_, rdb, s := redisScaler(t, nil)
	ns := newNamespace(t, "")
	apply(t, ns, deployment("web", 1)+fmt.Sprintf(`apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: web}
spec:
  scaleTargetRef: {name: web}
  pollingInterval: 1
  minReplicaCount: 1
  maxReplicaCount: 10
%s  triggers:
    - type: external
      metadata:
        scalerAddress: %s
        mode: counter
        key: web:sessions
        sessionSize: "100"
`, fastHPA, s.Addr))
	waitReady(t, ns, "web", 60*time.Second)

	hpa, err := c.Kube().Get(t.Context(), cluster.HPAs, ns, "keda-hpa-web")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _, _ := unstructured.NestedSlice(hpa.Object, "spec", "metrics")
	if len(metrics) != 1 {
		t.Fatalf("HPA metrics: %v, want one", metrics)
	}
	m := metrics[0].(map[string]any)
	name, _, _ := unstructured.NestedString(m, "external", "metric", "name")
	typ, _, _ := unstructured.NestedString(m, "external", "target", "type")
	avg, _, _ := unstructured.NestedString(m, "external", "target", "averageValue")
	if m["type"] != "External" || name != "s0-session_size" || typ != "AverageValue" || avg != "100" {
		t.Fatalf("HPA metric %v: want External s0-session_size, AverageValue 100", m)
	}
	t.Logf("HPA keda-hpa-web: External %s, %s %s", name, typ, avg)

	for _, step := range []struct {
		sessions int
		want     int64
	}{
		{250, 3}, // ceil(250/100)
		{150, 2},
		{10, 1},   // the minimum
		{999, 10}, // ceil(9.99), the maximum
	} {
		t0 := time.Now()
		if err := rdb.Set(t.Context(), "web:sessions", step.sessions, 0).Err(); err != nil {
			t.Fatal(err)
		}
		waitReplicas(t, ns, "web", step.want, 60*time.Second)
		t.Logf("%d sessions → %d replicas in %v", step.sessions, step.want, time.Since(t0).Round(10*time.Millisecond))
	}
}
