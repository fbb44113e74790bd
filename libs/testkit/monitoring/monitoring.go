// Package monitoring checks the alerting rules and the Grafana dashboard
// every scaler ships (deploy/kustomize/components/alerts) against the
// /metrics of a running scaler: UsedMetrics lists the metric names the
// rules and the dashboard read, Scrape the names a scaler exports, and
// Check compares them, so that a renamed metric fails a test, not an
// alert in production. Start runs a service's main in process, with mTLS,
// for that scrape.
package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// AlertsDir is the directory of the rules and the dashboard, relative to
// the repository's root (where go.work is).
const AlertsDir = "deploy/kustomize/components/alerts"

// Synthesized are the series Prometheus makes itself while scraping: used
// by the rules, exported by no scaler.
var Synthesized = []string{"up"}

// UsedMetrics returns the metric names, sorted and unique, of every
// expression of the rules (prometheusrule.yaml) and of every query and
// variable of the dashboard (dashboard.json) of the repository holding
// the working directory.
func UsedMetrics(t testing.TB) []string {
	t.Helper()
	names, err := usedIn(filepath.Join(repoRoot(t), AlertsDir))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 10 {
		t.Fatalf("found only %d metrics in the rules and the dashboard (%v): the extraction is broken", len(names), names)
	}
	return names
}

// repoRoot is the nearest directory above the working directory holding
// go.work.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.work above the working directory: run the test inside the repository")
		}
		dir = parent
	}
}

// usedIn is UsedMetrics for the rules and the dashboard in dir.
func usedIn(dir string) ([]string, error) {
	var rule struct {
		Spec struct {
			Groups []struct {
				Rules []struct {
					Expr string `json:"expr"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "prometheusrule.yaml"))
	if err != nil {
		return nil, err
	}
	if err := yaml.Unmarshal(data, &rule); err != nil {
		return nil, fmt.Errorf("prometheusrule.yaml: %w", err)
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
	data, err = os.ReadFile(filepath.Join(dir, "dashboard.json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		return nil, fmt.Errorf("dashboard.json: %w", err)
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
		s, _ := q["query"].(string)
		if m := labelValues.FindStringSubmatch(s); m != nil {
			names = append(names, m[1])
		}
	}
	for _, e := range exprs {
		if strings.TrimSpace(e) == "" {
			return nil, fmt.Errorf("an empty expression in the rules or the dashboard")
		}
		names = append(names, MetricNames(e)...)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
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

// MetricNames returns the metric names a PromQL expression reads:
// identifiers that are neither functions (followed by a parenthesis),
// keywords, nor part of a number or a duration.
func MetricNames(expr string) []string {
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

// Missing compares the names the rules and the dashboard use with those
// a scaler exports and returns one problem per line: a name used but not
// exported, unless notExported gives the reason this service lacks it (a
// metric of another backend only), and an entry of notExported that is
// stale (the service exports the name, or nothing uses it any more).
func Missing(used []string, exported map[string]bool, notExported map[string]string) []string {
	var out []string
	for _, name := range used {
		_, excused := notExported[name]
		if !exported[name] && !excused && !slices.Contains(Synthesized, name) {
			out = append(out, fmt.Sprintf("%s is used by the alerts or the dashboard but not exported by a running scaler", name))
		}
	}
	var excused []string
	for name := range notExported {
		excused = append(excused, name)
	}
	slices.Sort(excused)
	for _, name := range excused {
		switch {
		case strings.TrimSpace(notExported[name]) == "":
			out = append(out, fmt.Sprintf("%s is listed as not exported without a reason", name))
		case exported[name]:
			out = append(out, fmt.Sprintf("%s is listed as not exported (%s) but the scaler exports it: remove it from the list", name, notExported[name]))
		case !slices.Contains(used, name):
			out = append(out, fmt.Sprintf("%s is listed as not exported (%s) but neither the alerts nor the dashboard use it: remove it from the list", name, notExported[name]))
		}
	}
	return out
}

// Check fails t with every problem Missing finds between the names the
// rules and the dashboard use and exported. notExported names the metrics
// used that this service does not export, each with the reason.
func Check(t testing.TB, exported map[string]bool, notExported map[string]string) {
	t.Helper()
	for _, p := range Missing(UsedMetrics(t), exported, notExported) {
		t.Error(p)
	}
}
