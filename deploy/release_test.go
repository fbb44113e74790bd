package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// releaseWorkflow is the part of a release workflow these tests read.
type releaseWorkflow struct {
	On struct {
		Push struct {
			Tags     []string `yaml:"tags"`
			Branches []string `yaml:"branches"`
		} `yaml:"push"`
	} `yaml:"on"`
	Env  map[string]string `yaml:"env"`
	Jobs map[string]struct {
		Steps []struct {
			Uses string            `yaml:"uses"`
			With map[string]string `yaml:"with"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

// TestReleaseWorkflows: each service's release runs on its own tags only,
// builds its own Dockerfile into its own image, and mentions no other
// service; and the release workflows are one file with the service's name
// changed, so that a fix to one reaches them all.
func TestReleaseWorkflows(t *testing.T) {
	svcs := services(t)
	read := func(svc string) string {
		data, err := os.ReadFile(filepath.Join(repoRoot, ".github", "workflows", "release-"+svc+".yml"))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	first := read(svcs[0])
	for _, svc := range svcs {
		t.Run(svc, func(t *testing.T) {
			text := read(svc)
			var wf releaseWorkflow
			if err := yaml.Unmarshal([]byte(text), &wf); err != nil {
				t.Fatal(err)
			}
			if want := []string{"services/" + svc + "/v*"}; !slices.Equal(wf.On.Push.Tags, want) || len(wf.On.Push.Branches) != 0 {
				t.Errorf("on.push: tags %q, branches %q: want tags %q only", wf.On.Push.Tags, wf.On.Push.Branches, want)
			}
			if wf.Env["SERVICE"] != svc || wf.Env["MODULE"] != "services/"+svc {
				t.Errorf("env %v: want SERVICE=%s, MODULE=services/%s", wf.Env, svc, svc)
			}
			var file, images string
			for _, job := range wf.Jobs {
				for _, s := range job.Steps {
					switch {
					case strings.HasPrefix(s.Uses, "docker/build-push-action@"):
						file = s.With["file"]
					case strings.HasPrefix(s.Uses, "docker/metadata-action@"):
						images = s.With["images"]
					}
				}
			}
			if file != "services/"+svc+"/Dockerfile" {
				t.Errorf("build-push file %q: want services/%s/Dockerfile", file, svc)
			}
			if images == "" {
				t.Errorf("no docker/metadata-action images")
			}
			for _, other := range svcs {
				if other != svc && strings.Contains(text, other) {
					t.Errorf("mentions %s: one service's release touches nothing of another's", other)
				}
			}
			if strings.ReplaceAll(first, svcs[0], svc) != text {
				t.Errorf("differs from release-%s.yml by more than the service's name: keep the release workflows one file", svcs[0])
			}
		})
	}
}
