package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	monv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
)

// alertsDir is the component of the alerts, their promtool tests and the
// dashboard.
var alertsDir = filepath.Join("kustomize", "components", "alerts")

// renderedRule returns the one PrometheusRule of svc's prod overlay.
func renderedRule(t *testing.T, svc string) *monv1.PrometheusRule {
	t.Helper()
	o := render(t, filepath.Join("kustomize", "overlays", "prod", svc))
	if len(o.prometheusRules) != 1 {
		t.Fatalf("%d PrometheusRules in prod/%s, want 1 (components/alerts)", len(o.prometheusRules), svc)
	}
	return o.prometheusRules[0]
}

// jobSelector is a selector of the job label, whatever its quotes.
var jobSelector = regexp.MustCompile(`job\s*=~?\s*["'` + "`" + `]([^"'` + "`" + `]*)`)

// TestAlertRulesSelectTheirScaler: each service's PrometheusRule is named
// for it and every expression reads that scaler's job only (the component
// filled in every placeholder).
func TestAlertRulesSelectTheirScaler(t *testing.T) {
	for _, svc := range services(t) {
		t.Run(svc, func(t *testing.T) {
			r := renderedRule(t, svc)
			if r.Name != svc {
				t.Errorf("PrometheusRule %q, want %q", r.Name, svc)
			}
			for _, g := range r.Spec.Groups {
				for _, rule := range g.Rules {
					expr := rule.Expr.String()
					jobs := jobSelector.FindAllStringSubmatch(expr, -1)
					if len(jobs) == 0 {
						t.Errorf("%s: %q selects no job: it would read every scaler's series", rule.Alert, expr)
					}
					for _, j := range jobs {
						if j[1] != svc {
							t.Errorf("%s: selects job %q, want %q: %s", rule.Alert, j[1], svc, expr)
						}
					}
				}
			}
		})
	}
}

// TestAlertRunbooks: every alert links its section of RUNBOOK.md, which
// exists, and says whose problem it is.
func TestAlertRunbooks(t *testing.T) {
	runbook, err := os.ReadFile(filepath.Join(repoRoot, "RUNBOOK.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(string(runbook), -1) {
		anchors[githubAnchor(m[1])] = true
	}
	const prefix = "https://github.com/kedascalers/kedascalers/blob/main/RUNBOOK.md#"
	r := renderedRule(t, services(t)[0])
	for _, g := range r.Spec.Groups {
		for _, rule := range g.Rules {
			url := rule.Annotations["runbook_url"]
			anchor, ok := strings.CutPrefix(url, prefix)
			switch {
			case !ok:
				t.Errorf("%s: runbook_url %q, want %s<section>", rule.Alert, url, prefix)
			case !anchors[anchor]:
				t.Errorf("%s: runbook_url %q: RUNBOOK.md has no section #%s", rule.Alert, url, anchor)
			case anchor != strings.ToLower(rule.Alert):
				t.Errorf("%s: runbook_url %q: want the section named for the alert", rule.Alert, url)
			}
			if w := rule.Labels["whose"]; w != "platform" && w != "tenant" {
				t.Errorf("%s: label whose=%q, want platform or tenant", rule.Alert, w)
			}
			if rule.Annotations["summary"] == "" || rule.Labels["severity"] == "" {
				t.Errorf("%s: want a summary and a severity", rule.Alert)
			}
		}
	}
}

// githubAnchor is the anchor GitHub gives a Markdown heading.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ' || r == '-':
			b.WriteRune('-')
		case r == '_' || ('a' <= r && r <= 'z') || ('0' <= r && r <= '9'):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestAlertRules runs promtool on each service's rendered rules: check
// rules (syntax, templates), then test rules with alerts_test.yaml, in
// which every alert fires and stays quiet at least once. Annotations are
// left out of the unit tests (promtool compares them whole); check rules
// parses their templates. make alerts-check runs it (make deploy-check
// skips it: it needs promtool, which tools/devtools/deps.sh installs).
func TestAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: run tools/devtools/deps.sh (Debian's prometheus package ships it)")
	}
	tests, err := os.ReadFile(filepath.Join(alertsDir, "alerts_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range services(t) {
		t.Run(svc, func(t *testing.T) {
			r := renderedRule(t, svc)
			dir := t.TempDir()
			writeYAML(t, filepath.Join(dir, "full.yaml"), r.Spec)
			tested := r.Spec.DeepCopy()
			alerts := map[string]bool{}
			for i := range tested.Groups {
				for j := range tested.Groups[i].Rules {
					tested.Groups[i].Rules[j].Annotations = nil
					alerts[tested.Groups[i].Rules[j].Alert] = true
				}
			}
			writeYAML(t, filepath.Join(dir, "rules.yaml"), tested)
			// Each alert tested quiet (exp_alerts: []) and firing.
			for a := range alerts {
				quiet := regexp.MustCompile(`alertname: ` + a + `, exp_alerts: \[\]`)
				firing := regexp.MustCompile(`alertname: ` + a + `\n\s+exp_alerts:\n\s+- exp_labels`)
				if !quiet.Match(tests) || !firing.Match(tests) {
					t.Errorf("alerts_test.yaml: %s is not tested both quiet and firing", a)
				}
			}
			testFile := filepath.Join(dir, "alerts_test.yaml")
			if err := os.WriteFile(testFile, bytes.ReplaceAll(tests, []byte("SERVICE"), []byte(svc)), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"check", "rules", filepath.Join(dir, "full.yaml")}, {"test", "rules", testFile}} {
				out, err := exec.Command(promtool, args...).CombinedOutput()
				if err != nil {
					t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
				}
			}
		})
	}
}

// writeYAML writes v as YAML to path.
func writeYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
