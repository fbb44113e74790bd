package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kedascalers/kedascalers/e2e/cluster"
	"github.com/kedascalers/kedascalers/libs/testkit/proc"
)

// The cluster of TestAtScale: namespaces scale-00 … scale-49, each with
// scalePush push ScaledObjects (push-0 …) and as many polled ones (poll-0
// …), every one on a key of its own.
const (
	scaleNamespaces = 50
	scalePush       = 5
	scaleObjects    = scaleNamespaces * 2 * scalePush
	// scaleTrials is how many push activations of scale-00/push-0 are timed.
	scaleTrials = 12
	// scalePollingInterval is KEDA's default: the polls a large cluster makes.
	scalePollingInterval = 30
	// scaleWindow is how long the trials are spread over.
	scaleWindow = (scalePollingInterval + 3) * time.Second
)

// ScaleEnvVar names the variable that holds redis-session settings for
// TestAtScale (VAR=value, space separated); unset or empty, the scaler
// runs at its defaults.
const ScaleEnvVar = "KEDASCALERS_E2E_SCALE_ENV"

// TestAtScale (make e2e-scale, alone in its cluster): 500 ScaledObjects in
// 50 namespaces, half push and half polled, on one redis-session, all
// reach Ready with their HPA and push stream and no KEDAScalerFailed
// event; then, while 18 others are active (polled by KEDA, their metrics
// read by the HPA), a push activation of one of them takes under 1 s at
// p99; then they are deleted and every stream ends. Each phase's time and
// each process's peak RSS and CPU time are logged.
func TestAtScale(t *testing.T) {
	c := needCluster(t)
	start := time.Now()
	env := scaleEnv()
	t.Logf("redis-session settings: %q (%s)", env, ScaleEnvVar)
	_, rdb, s := redisScaler(t, notifications, env...)
	before := usages(t, c, s)

	t0 := time.Now()
	applyScale(t, c, s.Addr)
	applied := time.Since(t0)
	t.Logf("%d namespaces, %d Deployments and %d ScaledObjects applied in %v", scaleNamespaces, scaleObjects, scaleObjects, applied.Round(time.Millisecond))
	ready := waitScale(t, c, s, 10*time.Minute)
	t.Logf("all %d ScaledObjects Ready, %d HPAs, %d push streams open %v after the apply", scaleObjects, scaleObjects, scaleNamespaces*scalePush, ready.Round(time.Second))
	noScalerFailed(t, c)

	// The others served: one push and one polled ScaledObject active in
	// every fifth namespace, KEDA polling them and the HPA reading their
	// metrics while push-0 in scale-00 is timed.
	var active []string
	for i := 5; i < scaleNamespaces; i += 5 {
		for _, name := range []string{"push-1", "poll-1"} {
			ns := scaleNamespace(i)
			if err := rdb.SAdd(t.Context(), scaleKey(ns, name), "s1").Err(); err != nil {
				t.Fatal(err)
			}
			active = append(active, ns+"/"+name)
		}
	}
	t0 = time.Now()
	for _, a := range active {
		ns, name, _ := strings.Cut(a, "/")
		waitReplicas(t, ns, name, 1, 2*scalePollingInterval*time.Second)
	}
	t.Logf("%d other ScaledObjects active (spec.replicas 1) in %v", len(active), time.Since(t0).Round(time.Millisecond))

	ok0, failed0, codes0 := scalerCalls(t, s)
	ns := scaleNamespace(0)
	sw := redisSwitch{rdb, scaleKey(ns, "push-0")}
	var lat []time.Duration
	t0 = time.Now()
	for i := range scaleTrials {
		// Spread over a little more than a polling interval: KEDA polls
		// every other ScaledObject at least once meanwhile.
		time.Sleep(time.Until(t0.Add(time.Duration(i) * scaleWindow / scaleTrials)))
		lat = append(lat, activationTrial(t, ns, "push-0", i, sw, nil))
	}
	trials := time.Since(t0)
	ok1, failed1, codes1 := scalerCalls(t, s)
	for _, a := range active {
		ns, name, _ := strings.Cut(a, "/")
		if n, err := c.Kube().Replicas(t.Context(), ns, name); err != nil || n != 1 {
			t.Errorf("%s: spec.replicas %d (%v) after the trials, want it to stay 1", a, n, err)
		}
	}
	p50, p99 := percentile(lat, 50), percentile(lat, 99)
	t.Logf("activation latency among %d ScaledObjects, write → spec.replicas 1: %v", scaleObjects, lat)
	t.Logf("e2e activation at scale (redis-session external-push, %d trials in %v): p50 %s, p99 %s; meanwhile the scaler answered %.0f calls, %.0f of them not OK",
		len(lat), trials.Round(time.Second), ms(p50), ms(p99), ok1-ok0, failed1-failed0)
	if p99 > time.Second {
		t.Errorf("p99 %s: want under 1 s", ms(p99))
	}
	// Each poll is a GetMetrics and an IsActive: at least one call per
	// ScaledObject within the window.
	if ok1-ok0 < scaleObjects {
		t.Errorf("the scaler answered %.0f calls during the %v of the trials, want at least one per ScaledObject (%d): the others were not served", ok1-ok0, trials.Round(time.Second), scaleObjects)
	}
	for k, n := range codes1 {
		if n > codes0[k] {
			t.Logf("during the trials: %s %.0f", k, n-codes0[k])
		}
	}
	if failed1 > failed0 {
		t.Errorf("%.0f scaler calls failed during the trials, want none", failed1-failed0)
	}
	if r, _ := metricAt(t, s.HTTPAddr, "kedascalers_limit_refusals_total", ""); r != 0 {
		t.Errorf("kedascalers_limit_refusals_total %.0f, want 0", r)
	}
	noScalerFailed(t, c)
	logUsage(t, before, usages(t, c, s), time.Since(start))

	t0 = time.Now()
	deleteScale(t, c, s)
	t.Logf("%d ScaledObjects deleted, every push stream ended, in %v; scenario %v in all", scaleObjects, time.Since(t0).Round(time.Millisecond), time.Since(start).Round(time.Second))
}

// scaleEnv returns the scaler's settings of $KEDASCALERS_E2E_SCALE_ENV.
func scaleEnv() []string { return strings.Fields(os.Getenv(ScaleEnvVar)) }

func scaleNamespace(i int) string { return fmt.Sprintf("scale-%02d", i) }

func scaleKey(ns, name string) string { return "scale:" + ns + ":" + name }

// applyScale creates the namespaces and applies their Deployments and
// ScaledObjects, a few namespaces at a time.
func applyScale(t *testing.T, c *cluster.Cluster, addr string) {
	t.Helper()
	work := make(chan int)
	errs := make(chan error, scaleNamespaces)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range work {
				ns := scaleNamespace(i)
				var docs strings.Builder
				for j := range scalePush {
					for _, typ := range []string{"push", "poll"} {
						name := fmt.Sprintf("%s-%d", typ, j)
						trigger := map[string]string{"push": "external-push", "poll": "external"}[typ]
						docs.WriteString(sessionScaledObject(trigger, name, addr, scaleKey(ns, name), scalePollingInterval, 300) + "---\n")
					}
				}
				if err := c.Kube().CreateNamespace(t.Context(), ns); err != nil {
					errs <- err
					continue
				}
				if err := c.Kube().Apply(t.Context(), ns, []byte(docs.String())); err != nil {
					errs <- fmt.Errorf("%s: %w", ns, err)
				}
			}
		})
	}
	for i := range scaleNamespaces {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// waitScale waits, at most timeout, until every ScaledObject is Ready
// with its HPA and every push ScaledObject holds its stream on the
// scaler, logging the progress; it returns how long that took.
func waitScale(t *testing.T, c *cluster.Cluster, s *cluster.Scaler, timeout time.Duration) time.Duration {
	t.Helper()
	t0, logged := time.Now(), time.Now()
	var ready, hpas int
	var streams float64
	err := cluster.Eventually(t.Context(), timeout, 2*time.Second, func(ctx context.Context) (bool, error) {
		sos, err := listScale(ctx, c, cluster.ScaledObjects)
		if err != nil {
			return false, err
		}
		ready = 0
		for _, so := range sos {
			if cluster.Condition(so, "Ready") == "True" {
				ready++
			}
		}
		h, err := listScale(ctx, c, cluster.HPAs)
		if err != nil {
			return false, err
		}
		hpas = len(h)
		streams, _ = metricAt(t, s.HTTPAddr, "kedascalers_open_streams", `rpc="StreamIsActive"`)
		if time.Since(logged) >= 15*time.Second {
			logged = time.Now()
			t.Logf("after %v: %d/%d ScaledObjects Ready, %d HPAs, %.0f push streams open", time.Since(t0).Round(time.Second), ready, scaleObjects, hpas, streams)
		}
		return ready == scaleObjects && hpas == scaleObjects && int(streams) == scaleNamespaces*scalePush, nil
	})
	if err != nil {
		t.Fatalf("after %v: %d/%d ScaledObjects Ready, %d HPAs, %.0f of %d push streams open: %v%s", timeout, ready, scaleObjects, hpas, streams, scaleNamespaces*scalePush, err, diagnose(t, scaleNamespace(scaleNamespaces-1)))
	}
	return time.Since(t0)
}

// listScale lists the objects of gvr in the scale-* namespaces.
func listScale(ctx context.Context, c *cluster.Cluster, gvr schema.GroupVersionResource) ([]*unstructured.Unstructured, error) {
	l, err := c.Client.Resource(gvr).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", gvr.Resource, err)
	}
	var out []*unstructured.Unstructured
	for i := range l.Items {
		if strings.HasPrefix(l.Items[i].GetNamespace(), "scale-") {
			out = append(out, &l.Items[i])
		}
	}
	return out, nil
}

// noScalerFailed fails the test on any KEDAScalerFailed event, and logs
// how many Warning events of each reason the cluster holds.
func noScalerFailed(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	l, err := c.Client.Resource(cluster.Events).List(t.Context(), metav1.ListOptions{FieldSelector: "type=Warning"})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int{}
	for _, e := range l.Items {
		reason, _, _ := unstructured.NestedString(e.Object, "reason")
		reasons[reason]++
		if reason == "KEDAScalerFailed" && reasons[reason] <= 5 {
			msg, _, _ := unstructured.NestedString(e.Object, "message")
			t.Errorf("KEDAScalerFailed in %s: %s", e.GetNamespace(), msg)
		}
	}
	var b strings.Builder
	for _, r := range slices.Sorted(maps.Keys(reasons)) {
		fmt.Fprintf(&b, " %s=%d", r, reasons[r])
	}
	if b.Len() == 0 {
		b.WriteString(" none")
	}
	t.Logf("Warning events by reason:%s", b.String())
}

// scalerCalls returns how many ExternalScaler calls the scaler has
// answered OK, and how many failed: any other code but a push stream
// that KEDA ended itself (Canceled: it restarts a ScaledObject's scaler
// on a reconcile) and a static target's StreamMetricSpec (Unimplemented
// after its spec, by design). byCode counts every end that is not OK, as
// "method code".
func scalerCalls(t *testing.T, s *cluster.Scaler) (ok, failed float64, byCode map[string]float64) {
	t.Helper()
	const svc = `grpc_service="externalscaler.ExternalScaler"`
	ok, _ = metricAt(t, s.HTTPAddr, "grpc_server_handled_total", `grpc_code="OK"`, svc)
	byCode = map[string]float64{}
	for _, method := range []string{"IsActive", "GetMetricSpec", "GetMetrics", "StreamIsActive", "StreamMetricSpec"} {
		for c := codes.Canceled; c <= codes.Unauthenticated; c++ {
			n, _ := metricAt(t, s.HTTPAddr, "grpc_server_handled_total", svc,
				`grpc_method="`+method+`"`, `grpc_code="`+c.String()+`"`)
			if n == 0 {
				continue
			}
			byCode[method+" "+c.String()] = n
			byKEDA := (c == codes.Canceled && strings.HasPrefix(method, "Stream")) ||
				(c == codes.Unimplemented && method == "StreamMetricSpec")
			if !byKEDA {
				failed += n
			}
		}
	}
	return ok, failed, byCode
}

// usages reads the usage of every cluster process and of the scaler.
func usages(t *testing.T, c *cluster.Cluster, s *cluster.Scaler) map[string]proc.Usage {
	t.Helper()
	out := map[string]proc.Usage{}
	for _, p := range append(c.Procs(), s.Proc) {
		u, err := p.Usage()
		if err != nil {
			t.Fatal(err)
		}
		out[p.Name] = u
	}
	return out
}

// logUsage logs each process's peak RSS and the CPU time it used between
// before and after, over wall.
func logUsage(t *testing.T, before, after map[string]proc.Usage, wall time.Duration) {
	t.Helper()
	var b strings.Builder
	var total time.Duration
	var rss int64
	for _, name := range slices.Sorted(maps.Keys(after)) {
		cpu := after[name].CPU - before[name].CPU
		total += cpu
		rss += after[name].PeakRSS
		fmt.Fprintf(&b, "\n  %-24s peak RSS %4d MB, CPU %6.1f s (%.2f cores)", name, after[name].PeakRSS>>20, cpu.Seconds(), cpu.Seconds()/wall.Seconds())
	}
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("usage over %v:%s\n  %-24s peak RSS %4d MB, CPU %6.1f s (%.2f cores); load average %s", wall.Round(time.Second), b.String(), "all", rss>>20, total.Seconds(), total.Seconds()/wall.Seconds(), strings.TrimSpace(string(load)))
}

// deleteScale deletes the ScaledObjects and waits until KEDA has let them
// go and closed every push stream.
func deleteScale(t *testing.T, c *cluster.Cluster, s *cluster.Scaler) {
	t.Helper()
	for i := range scaleNamespaces {
		deleteAll(t.Context(), t, c, cluster.ScaledObjects, scaleNamespace(i))
	}
	var left int
	var streams float64
	err := cluster.Eventually(t.Context(), 5*time.Minute, 2*time.Second, func(ctx context.Context) (bool, error) {
		sos, err := listScale(ctx, c, cluster.ScaledObjects)
		left = len(sos)
		streams, _ = metricAt(t, s.HTTPAddr, "kedascalers_open_streams", `rpc="StreamIsActive"`)
		return err == nil && left == 0 && streams == 0, err
	})
	if err != nil {
		t.Fatalf("%d ScaledObjects left, %.0f push streams open: %v", left, streams, err)
	}
}
