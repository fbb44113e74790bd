package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	corev1 "k8s.io/api/core/v1"
)

// guide is the contributors' guide whose "Adding a backend" this file
// follows.
const guide = "CONTRIBUTING.md"

// guideService is the backend the guide adds, spelt in two so that this
// file does not name it (TestGlue: no file but the guide's may).
const guideService = "file" + "-gauge"

// guideFile is a file of the guide: an HTML comment naming its path, then
// a fenced block holding it.
var guideFile = regexp.MustCompile("(?m)^<!-- file: (\\S+) -->\n```[a-z]*\n((?s:.*?))^```$")

// guideFiles returns the files the guide's "Adding a backend" writes, by
// path from the repository's root.
func guideFiles(t *testing.T) map[string][]byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, guide))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, m := range guideFile.FindAllSubmatch(data, -1) {
		files[string(m[1])] = m[2]
	}
	if len(files) == 0 {
		t.Fatalf("%s: no <!-- file: path --> blocks", guide)
	}
	return files
}

// TestNewBackendFromGuide adds a fourth backend as the guide says, in a copy
// of what it needs of the repository: the files the guide shows (a
// service, its six glue files), its go.work line and `go mod tidy`. Then
// the service's tests pass alone (GOWORK=off), the Dockerfile builds it
// unchanged, TestGlue's rules accept it, and its base and overlays render
// with the posture of every scaler, with its volume and without a Secret.
func TestNewBackendFromGuide(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a service: not with -short")
	}
	svc := guideService
	files := guideFiles(t)
	var glue []string
	for _, g := range glueFiles() {
		glue = append(glue, strings.ReplaceAll(g, "%s", svc))
	}
	for _, g := range append(glue, "services/"+svc+"/go.mod", "services/"+svc+"/main.go") {
		if _, ok := files[g]; !ok {
			t.Fatalf("%s does not show %s", guide, g)
		}
	}

	// The tree: what the build context and the glue need.
	root := t.TempDir()
	everything, err := patternmatcher.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"proto", "libs/scalerkit", "libs/testkit", "deploy/kustomize"} {
		copyFromContext(t, repoRoot, everything, dir, filepath.Join(root, dir), true)
	}
	for _, f := range []string{"go.work", "Dockerfile", ".dockerignore"} {
		copyFile(t, filepath.Join(repoRoot, f), filepath.Join(root, f))
	}
	for path, data := range files {
		writeFile(t, filepath.Join(root, path), data)
	}
	// go work use ./services/<name>, and go mod tidy, as the guide says.
	work := filepath.Join(root, "go.work")
	writeFile(t, work, bytes.Replace(mustRead(t, work), []byte("use (\n"), []byte("use (\n\t./services/"+svc+"\n"), 1))
	dir := filepath.Join(root, "services", svc)
	alone := map[string]string{"GOWORK": "off", "GOFLAGS": "-mod=mod"}
	run(t, dir, alone, "go", "mod", "tidy")
	run(t, dir, map[string]string{"GOWORK": "off"}, "go", "test", "-trimpath", "-count=1", "./...")

	t.Run("image", func(t *testing.T) {
		stages := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
		out := checkRuntimeStage(t, svc, stages[1])
		bin := replayBuildStage(t, root, dockerignore(t), stages[0], out, map[string]string{"SERVICE": svc, "VERSION": testVersion})
		checkStatic(t, bin)
		checkVersion(t, bin, svc)
	})

	t.Run("glue", func(t *testing.T) {
		tree := repoFiles(t)
		tree["go.work"] = mustRead(t, work)
		for path, data := range files {
			tree[path] = data
		}
		tree["services/"+svc+"/go.sum"] = mustRead(t, filepath.Join(dir, "go.sum"))
		for _, p := range glueProblems(tree, svc) {
			t.Error(p)
		}
	})

	t.Run("manifests", func(t *testing.T) {
		kust := filepath.Join(root, "deploy", "kustomize")
		dirs := []string{filepath.Join(kust, "base", svc)}
		for _, env := range environments {
			dirs = append(dirs, filepath.Join(kust, "overlays", env, svc))
		}
		for i, d := range dirs {
			o := render(t, d)
			checkScaler(t, o, svc, i > 0)
			c := o.deployment(t).Spec.Template.Spec.Containers[0]
			if len(c.EnvFrom) != 1 {
				t.Errorf("%s: envFrom %v: want the ConfigMap only (no credentials)", d, c.EnvFrom)
			}
			if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "files" && m.ReadOnly }) {
				t.Errorf("%s: mounts %v: want the volume \"files\" read-only (the base's patch)", d, c.VolumeMounts)
			}
		}
		ex := readDir(t, filepath.Join(kust, "examples", svc))
		if len(ex.scaledObjects) != 2 {
			t.Fatalf("%d ScaledObjects in the examples: want 2", len(ex.scaledObjects))
		}
		for _, so := range ex.scaledObjects {
			for _, tr := range so.Spec.Triggers {
				if want := svc + ".kedascalers.svc.cluster.local:9090"; tr.Metadata["scalerAddress"] != want {
					t.Errorf("ScaledObject %s: scalerAddress %q: want %q", so.Name, tr.Metadata["scalerAddress"], want)
				}
			}
		}
	})
}

// writeFile writes data at path, making its directory.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// mustRead returns the file at path.
func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
