package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kedascalers/kedascalers/e2e/cluster"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
)

// newNamespace creates a namespace named after the test; its ScaledObjects
// are deleted when the test ends (no namespace controller runs, so the
// namespace itself stays).
func newNamespace(t *testing.T, suffix string) string {
	t.Helper()
	c := needCluster(t)
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if suffix != "" {
		name += "-" + suffix
	}
	if len(name) > 63 {
		name = name[:63]
	}
	name = strings.Trim(name, "-")
	if err := c.Kube().CreateNamespace(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		deleteAll(ctx, t, c, cluster.ScaledObjects, name)
		// KEDA removes its finalizer; wait so that it stops asking the
		// scaler before the test's scaler goes away.
		_ = cluster.Eventually(ctx, 20*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
			l, err := c.Client.Resource(cluster.ScaledObjects).Namespace(name).List(ctx, metav1.ListOptions{})
			return err == nil && len(l.Items) == 0, err
		})
	})
	return name
}

func deleteAll(ctx context.Context, t *testing.T, c *cluster.Cluster, gvr schema.GroupVersionResource, ns string) {
	t.Helper()
	if err := c.Client.Resource(gvr).Namespace(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Logf("delete %s in %s: %v", gvr.Resource, ns, err)
	}
}

// apply applies YAML documents in ns, failing the test on error.
func apply(t *testing.T, ns, docs string) {
	t.Helper()
	if err := needCluster(t).Kube().Apply(t.Context(), ns, []byte(docs)); err != nil {
		t.Fatal(err)
	}
}

// deployment is a Deployment with replicas, whose pods never run (no
// kubelet, no Deployment controller): KEDA and the HPA change its
// spec.replicas through the scale subresource, which is what the tests watch.
func deployment(name string, replicas int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s}
spec:
  replicas: %[2]d
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      containers: [{name: app, image: registry.invalid/app:1}]
---
`, name, replicas)
}

// startScaler starts one of our scalers for the test, stopped at its end.
func startScaler(t *testing.T, service string, env ...string) *cluster.Scaler {
	t.Helper()
	if scalersDir == "" {
		t.Skip("$" + cluster.ScalersDirEnv + " is not set: make e2e sets it to bin/ after make build")
	}
	s, err := cluster.StartScaler(t.Context(), scalersDir, service, logDir(t), service, env...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(15 * time.Second); err != nil {
			t.Log(err)
		}
		if t.Failed() {
			t.Logf("%s log, last lines:\n%s", service, s.Tail(30))
		}
	})
	return s
}

// waitReplicas waits until the Deployment's spec.replicas is want, at most
// timeout; on failure it shows what KEDA said.
func waitReplicas(t *testing.T, ns, name string, want int64, timeout time.Duration) {
	t.Helper()
	c := needCluster(t)
	var got int64
	err := cluster.Eventually(t.Context(), timeout, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		n, err := c.Kube().Replicas(ctx, ns, name)
		got = n
		return err == nil && n == want, err
	})
	if err != nil {
		t.Fatalf("deployment %s/%s: spec.replicas %d, want %d: %v%s", ns, name, got, want, err, diagnose(t, ns))
	}
}

// holdReplicas checks that spec.replicas stays want for d.
func holdReplicas(t *testing.T, ns, name string, want int64, d time.Duration) {
	t.Helper()
	c := needCluster(t)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		n, err := c.Kube().Replicas(t.Context(), ns, name)
		if err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Fatalf("deployment %s/%s: spec.replicas became %d, want it to stay %d%s", ns, name, n, want, diagnose(t, ns))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// setReplicas sets a Deployment's spec.replicas, as an operator would.
func setReplicas(t *testing.T, ns, name string, n int) {
	t.Helper()
	patch := fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, n)
	if _, err := needCluster(t).Client.Resource(cluster.Deployments).Namespace(ns).Patch(t.Context(), name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// diagnose returns the ScaledObjects' conditions and the namespace's
// recent events, for a failure message.
func diagnose(t *testing.T, ns string) string {
	t.Helper()
	c := kube
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var b strings.Builder
	if l, err := c.Client.Resource(cluster.ScaledObjects).Namespace(ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, so := range l.Items {
			conds, _, _ := unstructured.NestedSlice(so.Object, "status", "conditions")
			fmt.Fprintf(&b, "\nScaledObject %s conditions: %v", so.GetName(), conds)
		}
	}
	if l, err := c.Client.Resource(cluster.HPAs).Namespace(ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, h := range l.Items {
			st, _, _ := unstructured.NestedMap(h.Object, "status")
			fmt.Fprintf(&b, "\nHPA %s status: %v", h.GetName(), st)
		}
	}
	if evs, err := c.Kube().Events(ctx, ns); err == nil {
		if len(evs) > 15 {
			evs = evs[len(evs)-15:]
		}
		for _, e := range evs {
			fmt.Fprintf(&b, "\nevent %s %s %s: %s", e.Type, e.Object, e.Reason, e.Message)
		}
	}
	return b.String() + c.Tails(15, "keda-operator")
}

// percentile returns the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return scalertest.Percentile(s, p)
}

// redisScaler starts a throwaway Redis (with redisArgs) and redis-session
// over it (with scalerEnv), for the test; it returns the Redis, a client
// of it and the scaler.
func redisScaler(t *testing.T, redisArgs []string, scalerEnv ...string) (*testenv.Redis, *redis.Client, *cluster.Scaler) {
	t.Helper()
	r := testenv.NewRedis(t, redisArgs...)
	s := startScaler(t, "redis-session", append([]string{"REDIS_URL=" + r.URL()}, scalerEnv...)...)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return r, rdb, s
}

// notifications are the redis-server arguments that publish keyspace
// notifications.
var notifications = []string{"--notify-keyspace-events", "KEA"}

// jobsScaler starts a throwaway PostgreSQL with an empty jobs table and
// postgres-query over it, for the test; it returns a connection to that
// database and the scaler.
func jobsScaler(t *testing.T) (*pgx.Conn, *cluster.Scaler) {
	t.Helper()
	pg := testenv.NewPostgres(t)
	conn, err := pgx.Connect(t.Context(), pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(t.Context(), `CREATE TABLE jobs (id serial PRIMARY KEY, queue text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return conn, startScaler(t, "postgres-query", "POSTGRES_URL="+pg.URL(), "POSTGRES_ALLOW_SUPERUSER=true")
}

// ms formats d in milliseconds with one decimal.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}

// waitReady waits until the ScaledObject's Ready condition is True.
func waitReady(t *testing.T, ns, name string, timeout time.Duration) {
	t.Helper()
	waitCondition(t, ns, name, "Ready", "True", timeout)
}

// waitCondition waits until the ScaledObject's condition typ has status.
func waitCondition(t *testing.T, ns, name, typ, status string, timeout time.Duration) {
	t.Helper()
	c := needCluster(t)
	var got string
	err := cluster.Eventually(t.Context(), timeout, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		so, err := c.Kube().Get(ctx, cluster.ScaledObjects, ns, name)
		if err != nil {
			return false, err
		}
		got = cluster.Condition(so, typ)
		return got == status, nil
	})
	if err != nil {
		t.Fatalf("ScaledObject %s/%s: condition %s is %q, want %q: %v%s", ns, name, typ, got, status, err, diagnose(t, ns))
	}
}
