package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"sigs.k8s.io/yaml"

	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
	"github.com/kedascalers/kedascalers/libs/testkit/testpki"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// alertsDir holds the alerting rules and the dashboard every scaler ships.
const alertsDir = "../../deploy/kustomize/components/alerts"

// synthesized are the series Prometheus makes itself while scraping.
var synthesized = []string{"up"}

// TestMonitoringMetricsExist starts the scaler against a throwaway Redis,
// with mTLS, makes it do what every metric counts (reads that hit, miss
// and fail, a push stream, a limit refusal), and checks that every metric
// the alerting rules and the dashboard of deploy/kustomize/components/alerts
// use is in its /metrics: a renamed metric fails here, not in production.
func TestMonitoringMetricsExist(t *testing.T) {
	used := usedMetrics(t)
	if len(used) < 10 {
		t.Fatalf("found only %d metrics in the rules and dashboard (%v): the extraction is broken", len(used), used)
	}
	exported := scrapedNames(t)
	for _, name := range used {
		if !exported[name] && !slices.Contains(synthesized, name) {
			t.Errorf("%s is used by the alerts or the dashboard but not exported by a running scaler", name)
		}
	}
}

// usedMetrics returns the metric names of every expression of the rules
// and of every query of the dashboard.
func usedMetrics(t *testing.T) []string {
	t.Helper()
	var rule struct {
		Spec struct {
			Groups []struct {
				Rules []struct {
					Expr string `json:"expr"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	data, err := os.ReadFile(filepath.Join(alertsDir, "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &rule); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	var dash struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Query any `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	data, err = os.ReadFile(filepath.Join(alertsDir, "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	var names []string
	for _, v := range dash.Templating.List {
		q, ok := v.Query.(map[string]any)
		if !ok {
			continue // the data source variable
		}
		if m := labelValues.FindStringSubmatch(q["query"].(string)); m != nil {
			names = append(names, m[1])
		}
	}
	for _, e := range exprs {
		if strings.TrimSpace(e) == "" {
			t.Error("an empty expression in the rules or the dashboard")
		}
		names = append(names, metricNames(e)...)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

var (
	labelValues = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)
	// What in PromQL is not a metric name: strings, label matchers,
	// ranges, and the label lists of by, on and the like.
	promStrings  = regexp.MustCompile(`"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|` + "`[^`]*`")
	promMatchers = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promKeywords = []string{"and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring",
		"group_left", "group_right", "inf", "nan", "atan2"}
)

// metricNames returns the metric names a PromQL expression reads:
// identifiers that are neither functions (followed by a parenthesis),
// keywords, nor part of a number or a duration.
func metricNames(expr string) []string {
	s := promStrings.ReplaceAllString(expr, `""`)
	s = promMatchers.ReplaceAllString(s, " ")
	s = promGrouping.ReplaceAllString(s, " ")
	var names []string
	for _, loc := range promIdent.FindAllStringIndex(s, -1) {
		if loc[0] > 0 && (s[loc[0]-1] >= '0' && s[loc[0]-1] <= '9' || s[loc[0]-1] == '.' || s[loc[0]-1] == '$') {
			continue // 15m, 1e18, $job
		}
		name := s[loc[0]:loc[1]]
		if strings.HasPrefix(strings.TrimLeft(s[loc[1]:], " \t\n"), "(") || slices.Contains(promKeywords, name) {
			continue
		}
		names = append(names, name)
	}
	return names
}

func TestMetricNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`up{job="x"} == 0`, []string{"up"}},
		{`sum by (namespace, job) (rate(a_total{job="x", outcome=~'b|c'}[5m])) > 0 unless on (namespace, job) sum by (job) (rate(b_total[5m]))`, []string{"a_total", "b_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(h_bucket{job=~"$job"}[$__rate_interval])))`, []string{"h_bucket"}},
		{`x - time() < 20 * 86400`, []string{"x"}},
		{`sum(m) < 0.5 * max_over_time(m[1h] offset 15m) / 1e18`, []string{"m", "m"}},
		{`process_resident_memory_bytes / go_gc_gomemlimit_bytes > 0.9`, []string{"process_resident_memory_bytes", "go_gc_gomemlimit_bytes"}},
	}
	for _, tt := range tests {
		if got := metricNames(tt.expr); !slices.Equal(got, tt.want) {
			t.Errorf("metricNames(%q) = %q, want %q", tt.expr, got, tt.want)
		}
	}
}

// scrapedNames runs the scaler, exercises it and returns the names of the
// series of its /metrics.
func scrapedNames(t *testing.T) map[string]bool {
	t.Helper()
	r := testenv.NewRedis(t)
	p := testpki.New(t)
	scalertest.UnsetenvPrefix(t, "REDIS_")
	for k, v := range map[string]string{
		"REDIS_URL": r.URL(), "GRPC_ADDR": "127.0.0.1:0", "HTTP_ADDR": "127.0.0.1:0", "LOG_FORMAT": "text",
		"TLS_CERT_FILE": p.ServerCertFile, "TLS_KEY_FILE": p.ServerKeyFile, "TLS_CLIENT_CA_FILE": p.CAFile,
		"SHUTDOWN_TIMEOUT": "2s",
	} {
		t.Setenv(k, v)
	}
	var stdout, stderr wait.Buffer
	code := make(chan int, 1)
	go func() { code <- run(nil, &stdout, &stderr) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-code:
			if c != 0 {
				t.Errorf("the scaler exited %d after SIGTERM, want 0:\n%s", c, stderr.String())
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("the scaler did not stop after SIGTERM:\n%s", stderr.String())
		}
	}
	t.Cleanup(stop)
	serving := regexp.MustCompile(`msg=serving .*grpc=(\S+) http=(\S+)`)
	var m []string
	for deadline := time.Now().Add(20 * time.Second); m == nil; time.Sleep(10 * time.Millisecond) {
		select {
		case c := <-code:
			t.Fatalf("the scaler exited %d before serving:\n%s", c, stderr.String())
		default:
		}
		if m = serving.FindStringSubmatch(stderr.String()); m == nil && time.Now().After(deadline) {
			t.Fatalf("no serving line:\n%s", stderr.String())
		}
	}
	grpcAddr, httpAddr := m[1], m[2]

	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{p.Client}, RootCAs: p.CAPool,
		ServerName: testpki.ServerName, MinVersion: tls.VersionTLS12})
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewExternalScalerClient(conn)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	ok := scalertest.Ref(map[string]string{"mode": "dbsize"})
	if _, err := client.GetMetricSpec(ctx, ok); err != nil {
		t.Fatal(err)
	}
	for range 2 { // a miss, then a hit
		if _, err := client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ok, MetricName: "m"}); err != nil {
			t.Fatal(err)
		}
	}
	// A tenant's mistake (the key is a string, not a set) and a limit.
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	if err := rdb.Set(ctx, "count", "3", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: scalertest.Ref(map[string]string{"mode": "set", "key": "count"})}); err == nil {
		t.Fatal("mode=set on a string key: no error")
	}
	if _, err := client.IsActive(ctx, scalertest.Ref(map[string]string{"mode": "dbsize", "x": strings.Repeat("y", 20000)})); err == nil {
		t.Fatal("metadata over MAX_METADATA_BYTES: no error")
	}
	// A push stream, open while /metrics is read.
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	stream, err := client.StreamIsActive(sctx, ok)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}

	res, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	names := map[string]bool{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		name, _, _ = strings.Cut(name, "{")
		names[name] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	scancel()
	stop()
	return names
}
