package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// imageComponent is where the repository of every scaler's image is set.
var imageComponent = filepath.Join("kustomize", "components", "image", "kustomization.yaml")

// kustomization is the part of a kustomization.yaml these tests read.
type kustomization struct {
	ConfigMapGenerator []struct {
		Name     string   `json:"name"`
		Literals []string `json:"literals"`
	} `json:"configMapGenerator"`
}

// literal returns the value of key in the generated ConfigMap name of the
// kustomization at path.
func literal(t *testing.T, path, name, key string) string {
	t.Helper()
	var k kustomization
	readYAML(t, path, &k)
	for _, g := range k.ConfigMapGenerator {
		if g.Name != name {
			continue
		}
		for _, l := range g.Literals {
			if v, ok := strings.CutPrefix(l, key+"="); ok {
				return v
			}
		}
	}
	t.Fatalf("%s: no %s=... in the ConfigMap %s", path, key, name)
	return ""
}

// readYAML decodes the YAML file at path into v and returns its text.
func readYAML(t *testing.T, path string, v any) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return data
}

// imageRepository is the repository components/image sets.
func imageRepository(t *testing.T) string {
	t.Helper()
	return literal(t, imageComponent, "kedascalers-image", "repository")
}

// TestImageRepositoryOnePlace: the image repository is written once in
// deploy/ (components/image), is the default of `make images` and of the
// release workflow, and changing that one line moves every overlay.
func TestImageRepositoryOnePlace(t *testing.T) {
	repo := imageRepository(t)
	makefile, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "IMAGE_REPO ?= " + repo + "\n"; !bytes.Contains(makefile, []byte(want)) {
		t.Errorf("Makefile: no %q: make images must push where the overlays pull", strings.TrimSpace(want))
	}
	text, _ := readReleaseWorkflow(t)
	if want := "${IMAGE_REPO:-" + repo + "}"; !strings.Contains(text, want) {
		t.Errorf("%s: no %s: the release must push where the overlays pull by default", releaseWorkflowPath, want)
	}
	// No other kustomize file names a repository.
	err = filepath.WalkDir("kustomize", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || path == imageComponent {
			return err
		}
		data, err := os.ReadFile(path)
		if err == nil && bytes.Contains(data, []byte(repo)) {
			t.Errorf("%s names %s: the repository belongs in %s only", path, repo, imageComponent)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	// A fork sets its repository in that one place: every overlay follows.
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("kustomize")); err != nil {
		t.Fatal(err)
	}
	comp := filepath.Join(dir, "components", "image", "kustomization.yaml")
	data, err := os.ReadFile(comp)
	if err != nil {
		t.Fatal(err)
	}
	const fork = "registry.example.com/platform/scalers"
	if err := os.WriteFile(comp, bytes.Replace(data, []byte("repository="+repo), []byte("repository="+fork), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, env := range environments {
		for _, svc := range services(t) {
			overlay := filepath.Join("overlays", env, svc)
			tag := literal(t, filepath.Join("kustomize", overlay, "kustomization.yaml"), "release", "tag")
			o := render(t, filepath.Join(dir, overlay))
			if got, want := o.deployment(t).Spec.Template.Spec.Containers[0].Image, fork+"/"+svc+":"+tag; got != want {
				t.Errorf("%s with repository=%s: image %q, want %q", overlay, fork, got, want)
			}
		}
	}
}

// TestPinnedTagsRecorded: every tag an overlay pins is a release CHANGELOG.md
// records for that service (services/<name>/vX.Y.Z), released or the one
// being prepared: an overlay never points at a version nobody announced.
func TestPinnedTagsRecorded(t *testing.T) {
	changelog, err := os.ReadFile(filepath.Join(repoRoot, "CHANGELOG.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, env := range environments {
		for _, svc := range services(t) {
			path := filepath.Join("kustomize", "overlays", env, svc, "kustomization.yaml")
			tag, _, _ := strings.Cut(literal(t, path, "release", "tag"), "@")
			if !pinnedTag.MatchString(tag) {
				t.Errorf("%s: tag %q: want vX.Y.Z (or vX.Y.Z@sha256:...)", path, tag)
				continue
			}
			if !regexp.MustCompile(`(?m)^#+ .*` + regexp.QuoteMeta("services/"+svc+"/"+tag) + `\b`).Match(changelog) {
				t.Errorf("%s pins %s: CHANGELOG.md has no heading naming services/%s/%s", path, tag, svc, tag)
			}
		}
	}
}
