package deploy

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// releaseWorkflowPath is the one release workflow of every service.
var releaseWorkflowPath = filepath.Join(repoRoot, ".github", "workflows", "release.yml")

// releaseWorkflow is the part of the release workflow these tests read.
type releaseWorkflow struct {
	On struct {
		Push struct {
			Tags     []string `yaml:"tags"`
			Branches []string `yaml:"branches"`
		} `yaml:"push"`
	} `yaml:"on"`
	Jobs map[string]struct {
		Steps []struct {
			ID   string            `yaml:"id"`
			Uses string            `yaml:"uses"`
			Run  string            `yaml:"run"`
			With map[string]string `yaml:"with"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

func readReleaseWorkflow(t *testing.T) (string, releaseWorkflow) {
	t.Helper()
	data, err := os.ReadFile(releaseWorkflowPath)
	if err != nil {
		t.Fatal(err)
	}
	var wf releaseWorkflow
	if err := yaml.Unmarshal(data, &wf); err != nil {
		t.Fatalf("%s: %v", releaseWorkflowPath, err)
	}
	return string(data), wf
}

// TestReleaseWorkflow: one workflow releases every service, each on its
// own tags (services/<name>/vX.Y.Z) only, from the one Dockerfile with the
// service as a build argument, and names no service: a new service needs
// nothing in it.
func TestReleaseWorkflow(t *testing.T) {
	text, wf := readReleaseWorkflow(t)
	if want := []string{"services/*/v*"}; !slices.Equal(wf.On.Push.Tags, want) || len(wf.On.Push.Branches) != 0 {
		t.Errorf("on.push: tags %q, branches %q: want tags %q only", wf.On.Push.Tags, wf.On.Push.Branches, want)
	}
	var build map[string]string
	for _, job := range wf.Jobs {
		for _, s := range job.Steps {
			if strings.HasPrefix(s.Uses, "docker/build-push-action@") {
				build = s.With
			}
		}
	}
	switch {
	case build == nil:
		t.Fatal("no docker/build-push-action step")
	case build["file"] != "Dockerfile" || build["context"] != ".":
		t.Errorf("build-push file %q, context %q: want the one Dockerfile, from the repository root", build["file"], build["context"])
	case !strings.Contains(build["build-args"], "SERVICE=${{ needs.service.outputs.service }}"):
		t.Errorf("build-args %q: want SERVICE from the tag", build["build-args"])
	case !strings.Contains(build["cache-from"], "scope=${{ needs.service.outputs.service }}"):
		t.Errorf("cache-from %q: want a build cache of the service's own", build["cache-from"])
	}
	for _, svc := range services(t) {
		if strings.Contains(text, svc) {
			t.Errorf("%s names %s: the release workflow must read the service from the tag", releaseWorkflowPath, svc)
		}
	}
}

// TestReleaseTagParsing runs the workflow's own tag step (bash, as the
// runner would) on good and bad tags: each service's tag releases that
// service and version, and a tag that names no service stops the release.
func TestReleaseTagParsing(t *testing.T) {
	_, wf := readReleaseWorkflow(t)
	var script string
	for _, s := range wf.Jobs["service"].Steps {
		if s.ID == "tag" {
			script = s.Run
		}
	}
	if script == "" {
		t.Fatal("no step with id tag in job service")
	}
	type want struct{ service, version string }
	cases := map[string]*want{
		"services/nosuch/v1.0.0":   nil,
		"services/../v1.0.0":       nil,
		"services/Bad_Name/v1.0.0": nil,
		"v1.0.0":                   nil,
	}
	for _, svc := range services(t) {
		cases["services/"+svc+"/v1.2.3"] = &want{svc, "v1.2.3"}
		cases["services/"+svc+"/v0.3.0-rc.1"] = &want{svc, "v0.3.0-rc.1"}
		cases["services/"+svc+"/1.2.3"] = nil
		cases["services/"+svc+"/v1.2"] = nil
	}
	for tag, w := range cases {
		t.Run(tag, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "output")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "bash", "-e", "-c", script)
			cmd.Dir = repoRoot
			cmd.Env = append(os.Environ(), "GITHUB_REF_NAME="+tag, "GITHUB_OUTPUT="+out)
			msg, err := cmd.CombinedOutput()
			if w == nil {
				if err == nil {
					t.Errorf("tag %s released: want the step to fail", tag)
				}
				return
			}
			if err != nil {
				t.Fatalf("tag %s: %v\n%s", tag, err, msg)
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if got, exp := string(data), "service="+w.service+"\nversion="+w.version+"\n"; got != exp {
				t.Errorf("tag %s: outputs %q: want %q", tag, got, exp)
			}
		})
	}
}
