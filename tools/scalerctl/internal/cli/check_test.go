package cli

import (
	"context"
	"encoding/json"
	"maps"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// queueScaler answers like a scaler with a queue of 12.4 items and a
// target of 5 per replica.
func queueScaler() *fakeScaler {
	return &fakeScaler{
		specs:  []*pb.MetricSpec{{MetricName: "queue-length", TargetSize: 5, TargetSizeFloat: 5}},
		values: []*pb.MetricValue{{MetricName: "queue-length", MetricValue: 12, MetricValueFloat: 12.4}},
		active: true,
	}
}

func TestCheckText(t *testing.T) {
	f := queueScaler()
	addr := startFake(t, f)
	code, out, errOut := runCLI(t, "check", "--addr", addr, "--metadata", "listName=orders,listLength=5",
		"--current-replicas", "2")
	if code != ExitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	want := `scaler        ADDR (plaintext)
scaledObject  default/scalerctl
metadata      listLength=5,listName=orders

GetMetricSpec  took X  1 metric spec
  metricName       "queue-length"  (HPA metric name s0-queue-length)
  targetSize       5
  targetSizeFloat  5
  target           5  (targetSizeFloat > 0)

GetMetrics  took X  metricName="queue-length"
  [0] metricName="queue-length" metricValue=12 metricValueFloat=12.4 → 12.4 (metricValueFloat > 0)
  value            12.4

IsActive  took X
  result           true

HPA  AverageValue, currentReplicas 2, minReplicas 1, maxReplicas 100, tolerance 0.1
  ratio            (value / currentReplicas) / target = (12.4 / 2) / 5 = 1.24
  desired          ceil(value / target) = ceil(12.4 / 5) = 3
  replicas         3  (|ratio − 1| > 0.1: takes desired 3)

KEDA  active with 2 replicas: the HPA is in control
  decision         3 replicas
`
	if got := normalize(out, addr); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
	if errOut != "" {
		t.Errorf("stderr: %q", errOut)
	}
}

func TestCheckOrderAndRequests(t *testing.T) {
	f := queueScaler()
	addr := startFake(t, f)
	metaFile := filepath.Join(t.TempDir(), "meta")
	if err := os.WriteFile(metaFile, []byte("# trigger metadata\nquery=SELECT a, b FROM t WHERE c=1\nlistName=fromfile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "check", "--addr", addr, "--name", "orders", "--namespace", "shop",
		"--metadata-file", metaFile, "--metadata", `listName=orders,hosts=a\,b`, "--metadata", "token=x=y")
	if code != ExitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	if got, want := f.Calls(), []string{"GetMetricSpec", "GetMetrics", "IsActive"}; !slices.Equal(got, want) {
		t.Errorf("calls = %q, want %q", got, want)
	}
	if !slices.Equal(f.metricNames, []string{"queue-length"}) {
		t.Errorf("GetMetrics metricName = %q, want the spec's name unprefixed", f.metricNames)
	}
	wantMeta := map[string]string{"query": "SELECT a, b FROM t WHERE c=1", "listName": "orders", "hosts": "a,b", "token": "x=y"}
	for i, ref := range f.refs {
		if ref.GetName() != "orders" || ref.GetNamespace() != "shop" || !maps.Equal(ref.GetScalerMetadata(), wantMeta) {
			t.Errorf("call %d (%s) ref = %v, want orders/shop %v", i, f.calls[i], ref, wantMeta)
		}
	}
}

func TestCheckJSON(t *testing.T) {
	f := &fakeScaler{
		specs: []*pb.MetricSpec{
			{MetricName: "lag", TargetSize: 10, TargetSizeFloat: math.NaN()},
			{MetricName: "other", TargetSizeFloat: 2.5},
		},
		values: []*pb.MetricValue{{MetricName: "lag", MetricValue: 25, MetricValueFloat: 0}},
		active: true,
	}
	addr := startFake(t, f)
	code, out, errOut := runCLI(t, "check", "--addr", addr, "--json", "--metric-type", "Value",
		"--current-replicas", "2", "--max-replicas", "4")
	if code != ExitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	var rep struct {
		checkReport
		MetricSpec struct {
			specJSON
			TargetSizeFloat string `json:"targetSizeFloat"`
		} `json:"metricSpec"`
		IgnoredSpecs json.RawMessage `json:"ignoredMetricSpecs"`
		HPA          struct {
			hpaJSON
			Ratio float64 `json:"ratio"`
		} `json:"hpa"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out)
	}
	if rep.MetricType != "Value" || rep.MetricSpec.MetricName != "lag" || rep.MetricSpec.HPAMetricName != "s0-lag" ||
		rep.MetricSpec.TargetSize != 10 || rep.MetricSpec.TargetSizeFloat != "NaN" ||
		*rep.MetricSpec.Target != 10 || rep.MetricSpec.TargetSource != "targetSize" {
		t.Errorf("metricSpec = %+v", rep.MetricSpec)
	}
	if !strings.Contains(string(rep.IgnoredSpecs), `"other"`) {
		t.Errorf("ignoredMetricSpecs = %s", rep.IgnoredSpecs)
	}
	if len(rep.MetricValues) != 1 || rep.MetricValues[0].Value != 25 || rep.MetricValues[0].Source != "metricValue" || rep.Value != 25 || !rep.Active {
		t.Errorf("values = %+v, value %v, active %v", rep.MetricValues, rep.Value, rep.Active)
	}
	// Value: ratio 25/10 = 2.5, desired ceil(2 × 2.5) = 5, capped at 4.
	h := rep.HPA
	if h.CurrentReplicas != 2 || h.Ratio != 2.5 || h.Desired != 5 || h.Replicas != 4 || h.Limit != "maxReplicas" || h.WithinTolerance {
		t.Errorf("hpa = %+v", h)
	}
	if rep.KEDA.Action != "hpa" || rep.KEDA.Replicas != 4 {
		t.Errorf("keda = %+v", rep.KEDA)
	}
	wantWarnings := []string{"target: float field NaN is not > 0", "GetMetricSpec returned 2 metric specs"}
	for _, w := range wantWarnings {
		if !slices.ContainsFunc(rep.Warnings, func(s string) bool { return strings.Contains(s, w) }) {
			t.Errorf("warnings %q lack %q", rep.Warnings, w)
		}
	}
	for _, k := range []string{"GetMetricSpec", "GetMetrics", "IsActive"} {
		if _, ok := rep.Durations[k]; !ok {
			t.Errorf("durationsMs lacks %s: %v", k, rep.Durations)
		}
	}
}

func TestCheckDecisions(t *testing.T) {
	tests := []struct {
		name   string
		active bool
		value  float64
		args   []string
		want   []string
	}{
		{name: "active at zero scales from zero", active: true, value: 12,
			args: []string{"--current-replicas", "0"},
			want: []string{
				"HPA  AverageValue, currentReplicas 1 (after KEDA's scaling), minReplicas 1, maxReplicas 100",
				"KEDA  active at 0 replicas: KEDA scales to max(1, minReplicaCount) = 1 at once, then the HPA takes over",
				"decision         3 replicas",
			}},
		{name: "inactive scales to zero after cooldown", active: false, value: 0,
			args: []string{"--current-replicas", "3"},
			want: []string{
				"KEDA  inactive: KEDA scales to minReplicaCount 0 once cooldownPeriod",
				"decision         0 replicas after cooldownPeriod (HPA meanwhile: 1)",
			}},
		{name: "inactive at zero stays", active: false, value: 0,
			args: []string{"--current-replicas", "0"},
			want: []string{"HPA  not involved", "decision         0 replicas"}},
		{name: "within tolerance keeps current", active: true, value: 31,
			args: []string{"--current-replicas", "6", "--min-replicas", "1"},
			want: []string{"(31 / 6) / 5 = 1.0333", "replicas         6  (|ratio − 1| ≤ 0.1: within tolerance, keeps currentReplicas 6)"}},
		{name: "below min scales to min", active: true, value: 1,
			args: []string{"--current-replicas", "1", "--min-replicas", "3", "--max-replicas", "5"},
			want: []string{"KEDA  1 replica is below minReplicaCount: KEDA scales to 3 at once", "decision         3 replicas"}},
		{name: "one replica, singular", active: true, value: 4,
			args: []string{"--current-replicas", "1"},
			want: []string{"KEDA  active with 1 replica: the HPA is in control", "decision         1 replica\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeScaler{
				specs:  []*pb.MetricSpec{{MetricName: "m", TargetSize: 5}},
				values: []*pb.MetricValue{{MetricName: "m", MetricValueFloat: tt.value, MetricValue: int64(tt.value)}},
				active: tt.active,
			}
			addr := startFake(t, f)
			code, out, errOut := runCLI(t, append([]string{"check", "--addr", addr}, tt.args...)...)
			if code != ExitOK {
				t.Fatalf("exit %d, stderr:\n%s", code, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestCheckWarnings(t *testing.T) {
	f := &fakeScaler{
		specs:  []*pb.MetricSpec{{MetricName: "Queue", TargetSize: 1, TargetSizeFloat: 2.5}},
		values: []*pb.MetricValue{{MetricValue: 1, MetricValueFloat: 0.0004}, {MetricValue: -3}},
		active: true,
	}
	addr := startFake(t, f)
	code, out, errOut := runCLI(t, "check", "--addr", addr)
	if code != ExitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	for _, w := range []string{
		`warning: metricName "Queue" has upper-case letters`,
		"warning: targetSize 1 is not targetSizeFloat 2.5 rounded up",
		"warning: metric value \"\": KEDA keeps three decimals: 0.0004 becomes 0",
		"warning: metric value \"\": negative -3 becomes 0",
		"warning: GetMetrics returned 2 metric values",
		"value            0\n",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

func TestCheckRPCFailures(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "backend down")
	tests := []struct {
		name      string
		fake      func(*fakeScaler)
		args      []string
		wantErr   string
		wantCalls []string
	}{
		{name: "GetMetricSpec fails", fake: func(f *fakeScaler) { f.specErr = unavailable },
			wantErr: "scalerctl: GetMetricSpec: code = Unavailable desc = backend down\n", wantCalls: []string{"GetMetricSpec"}},
		{name: "GetMetrics fails, IsActive skipped", fake: func(f *fakeScaler) { f.metricsErr = status.Error(codes.Internal, "query failed") },
			wantErr: "scalerctl: GetMetrics: code = Internal desc = query failed\n", wantCalls: []string{"GetMetricSpec", "GetMetrics"}},
		{name: "IsActive fails", fake: func(f *fakeScaler) { f.activeErr = unavailable },
			wantErr: "scalerctl: IsActive: code = Unavailable desc = backend down\n", wantCalls: []string{"GetMetricSpec", "GetMetrics", "IsActive"}},
		{name: "no metric specs", fake: func(f *fakeScaler) { f.specs = nil },
			wantErr: "scalerctl: GetMetricSpec: returned no metric specs", wantCalls: []string{"GetMetricSpec"}},
		{name: "GetMetrics hangs past --timeout", fake: func(f *fakeScaler) { f.metricsBlock = true }, args: []string{"--timeout", "200ms"},
			wantErr: "scalerctl: GetMetrics: code = DeadlineExceeded", wantCalls: []string{"GetMetricSpec", "GetMetrics"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := queueScaler()
			tt.fake(f)
			addr := startFake(t, f)
			for _, asJSON := range []bool{false, true} {
				args := append([]string{"check", "--addr", addr}, tt.args...)
				if asJSON {
					args = append(args, "--json")
				}
				code, out, errOut := runCLI(t, args...)
				if code != ExitFailure {
					t.Errorf("json=%v: exit %d, want %d", asJSON, code, ExitFailure)
				}
				if !strings.HasPrefix(errOut, tt.wantErr) {
					t.Errorf("json=%v: stderr = %q, want prefix %q", asJSON, errOut, tt.wantErr)
				}
				if asJSON && out != "" {
					t.Errorf("--json printed on failure: %q", out)
				}
			}
			if got := f.Calls(); !slices.Equal(got, append(tt.wantCalls, tt.wantCalls...)) {
				t.Errorf("calls = %q, want %q twice", got, tt.wantCalls)
			}
		})
	}
}

func TestCheckUnreachable(t *testing.T) {
	code, _, errOut := runCLI(t, "check", "--addr", closedAddr(t), "--timeout", "5s")
	if code != ExitFailure || !strings.HasPrefix(errOut, "scalerctl: GetMetricSpec: code = Unavailable desc = ") {
		t.Errorf("exit %d, stderr %q; want 1 and Unavailable", code, errOut)
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "no arguments", args: nil, wantCode: ExitUsage, wantStderr: "Usage:\n  scalerctl check"},
		{name: "help", args: []string{"--help"}, wantCode: ExitOK, wantStdout: "Usage:\n  scalerctl check"},
		{name: "help command", args: []string{"help"}, wantCode: ExitOK, wantStdout: "Exit status: 0 success"},
		{name: "help check", args: []string{"help", "check"}, wantCode: ExitOK, wantStdout: "Usage: scalerctl check --addr HOST:PORT"},
		{name: "help unknown", args: []string{"help", "nope"}, wantCode: ExitUsage, wantStderr: "unknown help topic"},
		{name: "check --help", args: []string{"check", "--help"}, wantCode: ExitOK, wantStdout: "-max-replicas int"},
		{name: "check -h", args: []string{"check", "-h"}, wantCode: ExitOK, wantStdout: "-metric-type AverageValue"},
		{name: "watch --help", args: []string{"watch", "--help"}, wantCode: ExitOK, wantStdout: "-duration duration"},
		{name: "unknown command", args: []string{"poll"}, wantCode: ExitUsage, wantStderr: `unknown command "poll"`},
		{name: "missing addr", args: []string{"check"}, wantCode: ExitUsage, wantStderr: "scalerctl check: --addr is required"},
		{name: "unknown flag", args: []string{"check", "--addr", "x:1", "--bogus"}, wantCode: ExitUsage, wantStderr: "flag provided but not defined: -bogus"},
		{name: "extra argument", args: []string{"check", "--addr", "x:1", "extra"}, wantCode: ExitUsage, wantStderr: `unexpected argument "extra"`},
		{name: "bad metric type", args: []string{"check", "--addr", "x:1", "--metric-type", "Utilization"}, wantCode: ExitUsage, wantStderr: "not supported"},
		{name: "min above max", args: []string{"check", "--addr", "x:1", "--min-replicas", "5", "--max-replicas", "3"}, wantCode: ExitUsage, wantStderr: "greater than maxReplicaCount"},
		{name: "negative replicas", args: []string{"check", "--addr", "x:1", "--current-replicas", "-1"}, wantCode: ExitUsage, wantStderr: "out of range"},
		{name: "bad metadata", args: []string{"check", "--addr", "x:1", "--metadata", "novalue"}, wantCode: ExitUsage, wantStderr: "want key=value"},
		{name: "missing metadata file", args: []string{"check", "--addr", "x:1", "--metadata-file", "/nonexistent/meta"}, wantCode: ExitUsage, wantStderr: "/nonexistent/meta"},
		{name: "cert without key", args: []string{"check", "--addr", "x:1", "--cert-file", "c.pem"}, wantCode: ExitUsage, wantStderr: "must be given together"},
		{name: "missing CA file", args: []string{"watch", "--addr", "x:1", "--ca-file", "/nonexistent/ca.pem"}, wantCode: ExitUsage, wantStderr: "--ca-file"},
		{name: "negative duration", args: []string{"watch", "--addr", "x:1", "--duration", "-1s"}, wantCode: ExitUsage, wantStderr: "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.wantCode, errOut)
			}
			if tt.wantStdout != "" && !strings.Contains(out, tt.wantStdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.wantStdout, out)
			}
			if tt.wantStderr != "" && !strings.Contains(errOut, tt.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantStderr, errOut)
			}
			if tt.wantCode == ExitOK && errOut != "" {
				t.Errorf("stderr on success: %q", errOut)
			}
		})
	}
}

func TestCheckScalerWarnings(t *testing.T) {
	f := queueScaler()
	f.warnings = []string{`unknown metadata key "colour": ignored`, `unknown metadata key "size": ignored`}
	addr := startFake(t, f)

	code, out, errOut := runCLI(t, "check", "--addr", addr)
	if code != ExitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	// Each warning once, though all three RPCs sent them (header and trailer).
	want := "\nwarnings: (from the scaler, kedascalers-warning)\n" +
		"  unknown metadata key \"colour\": ignored\n" +
		"  unknown metadata key \"size\": ignored\n"
	if !strings.HasSuffix(out, want) {
		t.Errorf("output does not end with the scaler's warnings %q:\n%s", want, out)
	}

	code, out, errOut = runCLI(t, "check", "--addr", addr, "--json")
	if code != ExitOK {
		t.Fatalf("--json: exit %d, stderr:\n%s", code, errOut)
	}
	var rep checkReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.ScalerWarnings, f.warnings) {
		t.Errorf("scalerWarnings = %q, want %q", rep.ScalerWarnings, f.warnings)
	}

	// A scaler without warnings: no section, an empty list in JSON.
	plain := startFake(t, queueScaler())
	if _, out, _ := runCLI(t, "check", "--addr", plain); strings.Contains(out, "warnings:") {
		t.Errorf("a warnings section without warnings:\n%s", out)
	}
	_, out, _ = runCLI(t, "check", "--addr", plain, "--json")
	if !strings.Contains(out, `"scalerWarnings": []`) {
		t.Errorf("JSON lacks an empty scalerWarnings:\n%s", out)
	}
}

func TestCheckWarningsOnFailure(t *testing.T) {
	f := queueScaler()
	f.warnings = []string{`unknown metadata key "colour": ignored`}
	f.metricsErr = status.Error(codes.InvalidArgument, `metadata "sessionSize": want a number`)
	addr := startFake(t, f)
	code, out, errOut := runCLI(t, "check", "--addr", addr)
	if code != ExitFailure {
		t.Fatalf("exit %d, want %d", code, ExitFailure)
	}
	if !strings.Contains(errOut, "InvalidArgument") || !strings.Contains(out, `unknown metadata key "colour": ignored`) {
		t.Errorf("stdout:\n%s\nstderr:\n%s\nwant the error and the scaler's warning", out, errOut)
	}
}

func TestCheckUnresolvedHost(t *testing.T) {
	// .invalid never resolves (RFC 6761).
	code, _, errOut := runCLI(t, "check", "--addr", "nosuchhost.invalid:9090", "--timeout", "20s")
	if code != ExitFailure {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, ExitFailure, errOut)
	}
	if !strings.Contains(errOut, `the scaler's host name "nosuchhost.invalid" did not resolve`) {
		t.Errorf("stderr does not say the name did not resolve:\n%s", errOut)
	}
}

func TestUnresolved(t *testing.T) {
	notFound := func(_ context.Context, host string) ([]string, error) {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	failing := func(_ context.Context, host string) ([]string, error) {
		return nil, &net.DNSError{Err: "server misbehaving", Name: host}
	}
	found := func(context.Context, string) ([]string, error) { return []string{"10.0.0.1"}, nil }
	tests := []struct {
		target string
		lookup func(context.Context, string) ([]string, error)
		want   string // "" for no explanation
	}{
		{"nosuch.example:9090", notFound, `"nosuch.example" did not resolve: no such host`},
		{"dns:///nosuch.example:9090", notFound, `"nosuch.example" did not resolve`},
		{"dns://8.8.8.8/nosuch.example:9090", notFound, `"nosuch.example" did not resolve`},
		{"flaky.example:9090", failing, "server misbehaving"},
		{"scaler.example:9090", found, ""},
		{"127.0.0.1:9090", notFound, ""},
		{"[::1]:9090", notFound, ""},
		{"unix:///tmp/scaler.sock", notFound, ""},
		{"passthrough:///x:1", notFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			a := &app{target: tt.target, lookupHost: tt.lookup}
			got := a.unresolved()
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("unresolved() = %q, want %q", got, tt.want)
			}
		})
	}
}
