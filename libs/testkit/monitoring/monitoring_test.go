package monitoring

import (
	"slices"
	"strings"
	"testing"
)

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
		if got := MetricNames(tt.expr); !slices.Equal(got, tt.want) {
			t.Errorf("MetricNames(%q) = %q, want %q", tt.expr, got, tt.want)
		}
	}
}

// TestUsedMetrics reads the shipped rules and dashboard: names from both
// (a rule's, a panel's, a variable's) and nothing that is not a name.
func TestUsedMetrics(t *testing.T) {
	used := UsedMetrics(t)
	for _, want := range []string{
		"up", // a rule's only
		"kedascalers_backend_request_duration_seconds_count", // rules and panels
		"grpc_server_handling_seconds_bucket",                // a panel's only
		"kedascalers_build_info",                             // the dashboard's variables
	} {
		if !slices.Contains(used, want) {
			t.Errorf("UsedMetrics lacks %s: %q", want, used)
		}
	}
	for _, name := range used {
		if slices.Contains(promKeywords, name) || strings.HasPrefix(name, "$") || name == "SERVICE" || name == "job" {
			t.Errorf("UsedMetrics returned %q, not a metric name", name)
		}
	}
	if !slices.IsSorted(used) || len(slices.Compact(slices.Clone(used))) != len(used) {
		t.Errorf("UsedMetrics is not sorted and unique: %q", used)
	}
}

func TestMissing(t *testing.T) {
	used := []string{"a_total", "b_total", "up"}
	tests := []struct {
		name        string
		exported    []string
		notExported map[string]string
		want        []string // fragments, one per problem, in order
	}{
		{"all exported", []string{"a_total", "b_total", "c"}, nil, nil},
		{"one missing", []string{"a_total"}, nil, []string{"b_total is used by the alerts or the dashboard but not exported"}},
		{"missing with a reason", []string{"a_total"}, map[string]string{"b_total": "another backend only"}, nil},
		{"a reason left empty", []string{"a_total"}, map[string]string{"b_total": " "}, []string{"b_total is listed as not exported without a reason"}},
		{"listed but exported", []string{"a_total", "b_total"}, map[string]string{"b_total": "another backend only"},
			[]string{"b_total is listed as not exported (another backend only) but the scaler exports it"}},
		{"listed but unused", []string{"a_total", "b_total"}, map[string]string{"gone": "old"},
			[]string{"gone is listed as not exported (old) but neither the alerts nor the dashboard use it"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exported := map[string]bool{}
			for _, n := range tt.exported {
				exported[n] = true
			}
			got := Missing(used, exported, tt.notExported)
			if len(got) != len(tt.want) {
				t.Fatalf("Missing = %q, want %d problems %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

func TestSeriesNames(t *testing.T) {
	text := `# HELP a_seconds A histogram.
# TYPE a_seconds histogram
a_seconds_bucket{kind="value",le="+Inf"} 3
a_seconds_sum{kind="value"} 0.5
a_seconds_count{kind="value"} 3
up 1

b_total{x="y z"} 2 1700000000000
`
	got, err := seriesNames(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range got {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := []string{"a_seconds_bucket", "a_seconds_count", "a_seconds_sum", "b_total", "up"}; !slices.Equal(names, want) {
		t.Errorf("seriesNames = %q, want %q", names, want)
	}
}
