package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kedascalers/kedascalers/e2e/cluster"
)

// replicasEnv names the variable e2e/run.sh sets to NAME=IP,IP,...: the
// name its private hosts file maps to those loopback addresses, as a
// headless Service's name resolves to its pods.
const replicasEnv = "KEDASCALERS_E2E_REPLICAS"

// replicaSet is redis-session running as several processes behind one
// name, each on an address of its own and the same port.
type replicaSet struct {
	t     *testing.T
	host  string
	port  int
	ips   []string
	env   []string
	procs []*cluster.Scaler // nil while a replica is down
	http  []string          // each replica's HTTP address, kept across restarts
}

// startReplicas starts n redis-session replicas with env behind the name
// of $KEDASCALERS_E2E_REPLICAS, stopped at the test's end.
func startReplicas(t *testing.T, n int, env ...string) *replicaSet {
	t.Helper()
	host, list, ok := strings.Cut(os.Getenv(replicasEnv), "=")
	ips := strings.Split(list, ",")
	if !ok || len(ips) < n {
		t.Skipf("$%s (NAME=IP,IP,...) names fewer than %d addresses: make e2e sets it", replicasEnv, n)
	}
	r := &replicaSet{t: t, host: host, ips: ips[:n], env: env, procs: make([]*cluster.Scaler, n), http: make([]string, n)}
	r.port = sharedFreePort(t, r.ips)
	for i := range n {
		r.start(i)
	}
	t.Cleanup(func() {
		for i := range r.procs {
			if t.Failed() && r.procs[i] != nil {
				t.Logf("replica %d log, last lines:\n%s", i, r.procs[i].Tail(20))
			}
			r.stop(i, syscall.SIGTERM)
		}
	})
	return r
}

// sharedFreePort returns a port free a moment ago on every one of ips.
func sharedFreePort(t *testing.T, ips []string) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		free := true
		for _, ip := range ips[1:] {
			if o, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port))); err != nil {
				free = false
			} else {
				o.Close()
			}
		}
		l.Close()
		if free {
			return port
		}
	}
	t.Fatalf("no port free on all of %v", ips)
	return 0
}

// addr is the scalerAddress: the shared name and port; a single replica's
// own address, as a one-pod Service's name would resolve.
func (r *replicaSet) addr() string {
	if len(r.ips) == 1 {
		return net.JoinHostPort(r.ips[0], strconv.Itoa(r.port))
	}
	return net.JoinHostPort(r.host, strconv.Itoa(r.port))
}

// start starts replica i on its address (again, after a stop).
func (r *replicaSet) start(i int) {
	r.t.Helper()
	s, err := cluster.StartScalerAt(r.t.Context(), net.JoinHostPort(r.ips[i], strconv.Itoa(r.port)), r.http[i],
		scalersDir, "redis-session", logDir(r.t), fmt.Sprintf("redis-session-%d", i), r.env...)
	if err != nil {
		r.t.Fatal(err)
	}
	r.procs[i], r.http[i] = s, s.HTTPAddr
}

// stop stops replica i with sig (SIGTERM: as Kubernetes does, waiting for
// the exit; SIGKILL: a crash) and waits until it is gone.
func (r *replicaSet) stop(i int, sig syscall.Signal) {
	r.t.Helper()
	if r.procs[i] == nil {
		return
	}
	if err := r.procs[i].Signal(sig, 20*time.Second); err != nil {
		r.t.Log(err)
	}
	r.procs[i] = nil
}

// sum adds up a metric (every series of it whose labels contain match)
// over the running replicas.
func (r *replicaSet) sum(name, match string) float64 {
	r.t.Helper()
	var total float64
	for i, p := range r.procs {
		if p != nil {
			total += r.metric(i, name, match)
		}
	}
	return total
}

// metric reads a metric of replica i from /metrics: the sum of its series
// whose labels contain match; 0 when the replica does not answer.
func (r *replicaSet) metric(i int, name, match string) float64 {
	r.t.Helper()
	v, _ := metricAt(r.t, r.http[i], name, match)
	return v
}

// metricAt reads a metric from the /metrics of the scaler at httpAddr:
// the sum of its series whose labels contain every match, and whether it
// answered.
func metricAt(t *testing.T, httpAddr, name string, match ...string) (float64, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	return sumSeries(resp.Body, name, match...), true
}

// sumSeries adds up the samples of metric name in a Prometheus text
// exposition whose labels contain every match.
func sumSeries(body io.Reader, name string, match ...string) float64 {
	var total float64
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		series, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		metric, labels, _ := strings.Cut(series, "{")
		if metric != name || !containsAll(labels, match) {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			total += v
		}
	}
	return total
}

// containsAll reports whether s contains every one of subs.
func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// streamOpen waits until KEDA holds a StreamIsActive open on some
// replica, at most timeout, and returns how long that took.
func (r *replicaSet) streamOpen(timeout time.Duration) time.Duration {
	r.t.Helper()
	t0 := time.Now()
	err := cluster.Eventually(r.t.Context(), timeout, 50*time.Millisecond, func(context.Context) (bool, error) {
		return r.sum("kedascalers_open_streams", `rpc="StreamIsActive"`) >= 1, nil
	})
	if err != nil {
		r.t.Fatalf("no StreamIsActive open on any replica within %v: %v", timeout, err)
	}
	return time.Since(t0)
}

// logSince returns a func that reads what the named cluster process
// logged after this call.
func logSince(t *testing.T, name string) func() string {
	t.Helper()
	path := needCluster(t).Proc(name).Log
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	from := fi.Size()
	return func() string {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Seek(from, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(f)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
}

// linesWith returns the lines of log that contain text.
func linesWith(log, text string) []string {
	var out []string
	for l := range strings.SplitSeq(log, "\n") {
		if strings.Contains(l, text) {
			out = append(out, l)
		}
	}
	return out
}

// pushScaledObject is an external-push ScaledObject on a set mode
// redis-session trigger that polls every pollingInterval seconds: with
// 300, only the push stream activates it within a test.
func pushScaledObject(name, addr, key string, pollingInterval, cooldown int) string {
	return sessionScaledObject("external-push", name, addr, key, pollingInterval, cooldown)
}

// sessionScaledObject is a Deployment at 0 and a ScaledObject on it with
// one trigger of type typ (external: polled; external-push: pushed too) on
// redis-session's set mode key, 100 sessions a replica.
func sessionScaledObject(typ, name, addr, key string, pollingInterval, cooldown int) string {
	return deployment(name, 0) + fmt.Sprintf(`apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: %[1]s}
spec:
  scaleTargetRef: {name: %[1]s}
  minReplicaCount: 0
  maxReplicaCount: 20
  pollingInterval: %[4]d
  cooldownPeriod: %[5]d
  triggers:
    - type: %[6]s
      metadata:
        scalerAddress: %[2]s
        mode: set
        key: %[3]s
        sessionSize: "100"
`, name, addr, key, pollingInterval, cooldown, typ)
}
