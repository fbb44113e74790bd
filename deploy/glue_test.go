package deploy

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// maxGlueLines bounds each glue file (README.md, "Adding a backend"): a
// line count of 20 or more means something shared was copied in.
const maxGlueLines = 20

// glueFiles are the files outside services/<name>/ that a service must
// have, and may have, with its name for %s: its base (its name and its own
// settings), its overlay in each environment (its pinned image) and its two
// example ScaledObjects. Everything else a service's manifests, image and
// release need is shared (deploy/kustomize/components, the Dockerfile,
// .github/workflows/release.yml).
func glueFiles() []string {
	files := []string{"deploy/kustomize/base/%s/kustomization.yaml"}
	for _, env := range environments {
		files = append(files, "deploy/kustomize/overlays/"+env+"/%s/kustomization.yaml")
	}
	return append(files,
		"deploy/kustomize/examples/%s/scaledobject-external.yaml",
		"deploy/kustomize/examples/%s/scaledobject-external-push.yaml")
}

// mayName reports whether a file outside the service's folder and its glue
// may still name the service: it describes it or uses it, and the service
// does not need it (README.md, "Adding a backend", says so).
func mayName(rel string) bool {
	switch {
	case strings.HasSuffix(rel, ".md"): // documentation
		return true
	case rel == ".gitignore": // the binary `go build` leaves in its folder
		return true
	case strings.HasPrefix(rel, "tools/demo/"): // make demo shows what runs locally
		return true
	case rel == ".github/workflows/ci.yml": // a live-test job, for a backend no Debian package provides
		return true
	}
	return false
}

// TestGlue: a service needs nothing outside its folder but one line in
// go.work and its glue files, each short and holding only what is its own;
// no other file names it.
func TestGlue(t *testing.T) {
	svcs := services(t)
	files := repoFiles(t)
	for _, svc := range svcs {
		t.Run(svc, func(t *testing.T) {
			var glue []string
			for _, g := range glueFiles() {
				glue = append(glue, strings.ReplaceAll(g, "%s", svc))
			}
			for _, g := range glue {
				data, err := os.ReadFile(filepath.Join(repoRoot, g))
				if err != nil {
					t.Errorf("glue file: %v", err)
					continue
				}
				if n := bytes.Count(data, []byte("\n")); n >= maxGlueLines {
					t.Errorf("%s: %d lines: want fewer than %d (what is shared belongs in deploy/kustomize/components)", g, n, maxGlueLines)
				}
				checkGlueContent(t, g, svc, data)
			}
			if !bytes.Contains(files["go.work"], []byte("./services/"+svc+"\n")) {
				t.Errorf("go.work: no line ./services/%s (go work use ./services/%s)", svc, svc)
			}
			for rel, data := range files {
				dir := "services/" + svc + "/"
				if strings.HasPrefix(rel, dir) || slices.Contains(glue, rel) || mayName(rel) || !bytes.Contains(data, []byte(svc)) {
					continue
				}
				if rel == "go.work" {
					if n := bytes.Count(data, []byte(svc)); n != 1 || !bytes.Contains(data, []byte("./services/"+svc+"\n")) {
						t.Errorf("go.work names %s %d times: want the one line ./services/%s", svc, n, svc)
					}
					continue
				}
				if strings.HasPrefix(rel, "deploy/kustomize/") && slices.Contains(strings.Split(rel, "/"), svc) {
					t.Errorf("%s: a file beyond the glue of README.md (\"Adding a backend\": %d files)", rel, len(glue))
					continue
				}
				t.Errorf("%s names %s: a service needs no glue beyond README.md (\"Adding a backend\")", rel, svc)
			}
		})
	}
}

// checkGlueContent: a base holds the service's ConfigMap and the shared
// component; an overlay holds its base, its environment's component, its
// pinned image and perhaps settings; an example holds ScaledObjects.
func checkGlueContent(t *testing.T, rel, svc string, data []byte) {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Errorf("%s: %v", rel, err)
		return
	}
	keys := func(allowed ...string) {
		for k := range doc {
			if !slices.Contains(allowed, k) {
				t.Errorf("%s: %s: a service's glue holds only %v", rel, k, allowed)
			}
		}
	}
	list := func(key string, want ...string) {
		got, _ := doc[key].([]any)
		var s []string
		for _, g := range got {
			str, _ := g.(string)
			s = append(s, str)
		}
		if !slices.Equal(s, want) {
			t.Errorf("%s: %s %v: want %v", rel, key, s, want)
		}
	}
	parts := strings.Split(rel, "/")
	switch parts[2] {
	case "base":
		keys("apiVersion", "kind", "components", "configMapGenerator")
		list("components", "../../components/scaler")
	case "overlays":
		keys("apiVersion", "kind", "resources", "components", "images", "configMapGenerator")
		list("resources", "../../../base/"+svc)
		list("components", "../../../components/"+parts[3])
	case "examples":
		if doc["kind"] != "ScaledObject" {
			t.Errorf("%s: kind %v: a service's examples are its ScaledObjects (the rest is examples/keda-client)", rel, doc["kind"])
		}
	}
}

// repoFiles reads the repository's text files, by path relative to its
// root: what git would track, less .git and built binaries.
func repoFiles(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repoRoot, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == ".git" || rel == "bin" {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.Contains(data, []byte{0}) { // a binary is not glue
			files[rel] = data
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
