package deploy

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// maxGlueLines bounds each glue file (CONTRIBUTING.md, "Adding a backend"): a
// line count of 20 or more means something shared was copied in.
const maxGlueLines = 20

// glueFiles are the files outside services/<name>/ that a service must
// have, and may have, with its name for %s: its base (its name and its own
// settings), its overlay in each environment (its image's tag) and its two
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
// does not need it (CONTRIBUTING.md, "Adding a backend", says so).
func mayName(rel string) bool {
	switch {
	case strings.HasSuffix(rel, ".md"): // documentation
		return true
	case rel == ".gitignore": // the binary `go build` leaves in its folder
		return true
	case strings.HasPrefix(rel, "tools/demo/"), strings.HasPrefix(rel, "tools/abuse/"), strings.HasPrefix(rel, "tools/pollbench/"): // make demo, abuse and pollbench drive what runs locally
		return true
	case strings.HasPrefix(rel, "e2e/"): // scenarios under KEDA; TestManifests covers a service it does not name
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
	files := repoFiles(t)
	for _, svc := range services(t) {
		t.Run(svc, func(t *testing.T) {
			for _, p := range glueProblems(files, svc) {
				t.Error(p)
			}
		})
	}
}

// TestGlueRefuses: glueProblems accepts a new service with exactly the
// glue of "Adding a backend", and refuses one glue file missing, one too
// long, one holding a shared part, an extra file, and any other file that
// names the service.
func TestGlueRefuses(t *testing.T) {
	// A new service, modelled on an existing one; its name is spelt in two
	// so that this file does not name it.
	svc, model := "new"+"-backend", services(t)[0]
	tree := repoFiles(t)
	with := func(change func(files map[string][]byte)) map[string][]byte {
		files := map[string][]byte{}
		for k, v := range tree {
			files[k] = v
		}
		files["go.work"] = bytes.Replace(files["go.work"], []byte("use (\n"), []byte("use (\n\t./services/"+svc+"\n"), 1)
		for _, g := range glueFiles() {
			from := strings.ReplaceAll(g, "%s", model)
			files[strings.ReplaceAll(g, "%s", svc)] = bytes.ReplaceAll(files[from], []byte(model), []byte(svc))
		}
		change(files)
		return files
	}
	base := "deploy/kustomize/base/" + svc + "/kustomization.yaml"
	cases := map[string]struct {
		change func(files map[string][]byte)
		want   string // in a problem; "": none
	}{
		"exactly the glue": {func(map[string][]byte) {}, ""},
		"a patch in an overlay (a volume)": {func(f map[string][]byte) {
			p := "deploy/kustomize/overlays/prod/" + svc + "/kustomization.yaml"
			f[p] = append(bytes.Clone(f[p]), "patches:\n  - target: {kind: Deployment}\n    patch: '[]'\n"...)
		}, ""},
		"a case in make bench (tools/pollbench)": {func(f map[string][]byte) {
			f["tools/pollbench/backends.go"] = []byte("// " + svc + " with a throwaway backend\n")
		}, ""},
		"a base without credentials": {func(f map[string][]byte) {
			f[base] = bytes.ReplaceAll(f[base], []byte("- ../../components/scaler\n"), []byte("- ../../components/scaler\n  - ../../components/no-credentials\n"))
		}, ""},
		"a base with another component": {func(f map[string][]byte) {
			f[base] = bytes.ReplaceAll(f[base], []byte("- ../../components/scaler\n"), []byte("- ../../components/scaler\n  - ../../components/tls\n"))
		}, "want [../../components/scaler ../../components/no-credentials]"},
		"no go.work line": {func(f map[string][]byte) {
			f["go.work"] = tree["go.work"]
		}, "go.work: no line"},
		"an overlay missing": {func(f map[string][]byte) {
			delete(f, "deploy/kustomize/overlays/staging/"+svc+"/kustomization.yaml")
		}, "overlays/staging/" + svc + "/kustomization.yaml: missing"},
		"a glue file of 20 lines": {func(f map[string][]byte) {
			f[base] = append(f[base], strings.Repeat("# more\n", maxGlueLines)...)
		}, "want fewer than 20"},
		"an image of its own in an overlay": {func(f map[string][]byte) {
			p := "deploy/kustomize/overlays/prod/" + svc + "/kustomization.yaml"
			f[p] = append(bytes.Clone(f[p]), "images:\n  - {name: x, newName: y}\n"...)
		}, "images: a service's glue holds only"},
		"a shared part copied into the base": {func(f map[string][]byte) {
			f[base] = append(f[base], "resources:\n  - deployment.yaml\n"...)
		}, "resources: a service's glue holds only"},
		"a base without the shared component": {func(f map[string][]byte) {
			f[base] = bytes.ReplaceAll(f[base], []byte("components/scaler"), []byte("components/mine"))
		}, "want [../../components/scaler]"},
		"an example that is not a ScaledObject": {func(f map[string][]byte) {
			p := "deploy/kustomize/examples/" + svc + "/scaledobject-external.yaml"
			f[p] = bytes.Replace(f[p], []byte("kind: ScaledObject"), []byte("kind: TriggerAuthentication"), 1)
		}, "a service's examples are its ScaledObjects"},
		"an extra file in its deploy part": {func(f map[string][]byte) {
			f["deploy/kustomize/base/"+svc+"/deployment.yaml"] = []byte("name: " + svc + "\n")
		}, "a file beyond the glue"},
		"its own release workflow": {func(f map[string][]byte) {
			f[".github/workflows/release-"+svc+".yml"] = []byte("tags: [services/" + svc + "/v*]\n")
		}, "release-" + svc + ".yml names " + svc},
		"its own Dockerfile line": {func(f map[string][]byte) {
			f["Dockerfile"] = append(bytes.Clone(f["Dockerfile"]), "# "+svc+" needs\n"...)
		}, "Dockerfile names " + svc},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			problems := glueProblems(with(c.change), svc)
			if c.want == "" {
				if len(problems) != 0 {
					t.Errorf("problems %q: want none", problems)
				}
				return
			}
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, c.want) }) {
				t.Errorf("problems %q: want one saying %q", problems, c.want)
			}
		})
	}
}

// glueProblems returns what svc needs beyond its folder, its go.work line
// and its glue files, or what is wrong with those, given every file of the
// repository by path.
func glueProblems(files map[string][]byte, svc string) []string {
	var problems []string
	var glue []string
	for _, g := range glueFiles() {
		glue = append(glue, strings.ReplaceAll(g, "%s", svc))
	}
	for _, g := range glue {
		data, ok := files[g]
		if !ok {
			problems = append(problems, g+": missing (a glue file of CONTRIBUTING.md's \"Adding a backend\")")
			continue
		}
		if n := bytes.Count(data, []byte("\n")); n >= maxGlueLines {
			problems = append(problems, fmt.Sprintf("%s: %d lines: want fewer than %d (what is shared belongs in deploy/kustomize/components)", g, n, maxGlueLines))
		}
		problems = append(problems, glueContentProblems(g, svc, data)...)
	}
	if !bytes.Contains(files["go.work"], []byte("./services/"+svc+"\n")) {
		problems = append(problems, fmt.Sprintf("go.work: no line ./services/%s (go work use ./services/%s)", svc, svc))
	}
	for rel, data := range files {
		if strings.HasPrefix(rel, "services/"+svc+"/") || slices.Contains(glue, rel) || mayName(rel) || !bytes.Contains(data, []byte(svc)) {
			continue
		}
		switch {
		case rel == "go.work":
			if n := bytes.Count(data, []byte(svc)); n != 1 {
				problems = append(problems, fmt.Sprintf("go.work names %s %d times: want the one line ./services/%s", svc, n, svc))
			}
		case strings.HasPrefix(rel, "deploy/kustomize/") && slices.Contains(strings.Split(rel, "/"), svc):
			problems = append(problems, fmt.Sprintf("%s: a file beyond the glue of CONTRIBUTING.md (\"Adding a backend\": %d files)", rel, len(glue)))
		default:
			problems = append(problems, fmt.Sprintf("%s names %s: a service needs no glue beyond CONTRIBUTING.md (\"Adding a backend\")", rel, svc))
		}
	}
	slices.Sort(problems)
	return problems
}

// glueContentProblems: a base holds the service's ConfigMap and the shared
// component; an overlay holds its base, its environment's component, its
// image tag and perhaps settings; an example holds a ScaledObject.
func glueContentProblems(rel, svc string, data []byte) []string {
	var problems []string
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return []string{fmt.Sprintf("%s: %v", rel, err)}
	}
	keys := func(allowed ...string) {
		for k := range doc {
			if !slices.Contains(allowed, k) {
				problems = append(problems, fmt.Sprintf("%s: %s: a service's glue holds only %v", rel, k, allowed))
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
			problems = append(problems, fmt.Sprintf("%s: %s %v: want %v", rel, key, s, want))
		}
	}
	parts := strings.Split(rel, "/")
	switch parts[2] {
	case "base":
		keys("apiVersion", "kind", "components", "configMapGenerator", "patches")
		if got, _ := doc["components"].([]any); len(got) == 2 {
			list("components", "../../components/scaler", "../../components/no-credentials")
		} else {
			list("components", "../../components/scaler")
		}
	case "overlays":
		keys("apiVersion", "kind", "resources", "components", "configMapGenerator", "patches")
		list("resources", "../../../base/"+svc)
		list("components", "../../../components/"+parts[3])
	case "examples":
		if doc["kind"] != "ScaledObject" {
			problems = append(problems, fmt.Sprintf("%s: kind %v: a service's examples are its ScaledObjects (the rest is examples/keda-client)", rel, doc["kind"]))
		}
	}
	return problems
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
