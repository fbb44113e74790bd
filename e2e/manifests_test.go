package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/kedascalers/kedascalers/e2e/cluster"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
)

// repoRoot is the repository, seen from this package's directory.
const repoRoot = ".."

// TestManifests: every kustomize overlay of every service, and every
// example (each service's ScaledObjects, KEDA's client Certificate and the
// mTLS TriggerAuthentication), is accepted by the API server, with KEDA's,
// cert-manager's and the Prometheus Operator's CRDs installed: their
// schemas and validation rules are the API server's own, not a copy. The
// examples' scalerAddress is rewritten to the loopback address of a
// running scaler of that service, and stored as written.
func TestManifests(t *testing.T) {
	c := needCluster(t)
	svcs := services(t)
	overlays, err := filepath.Glob(filepath.Join(repoRoot, "deploy", "kustomize", "overlays", "*", "*"))
	if err != nil || len(overlays) == 0 {
		t.Fatalf("no overlays: %v", err)
	}
	if want := 3 * len(svcs); len(overlays) != want {
		t.Errorf("%d overlays, want %d (dev, staging, prod of %v)", len(overlays), want, svcs)
	}
	for _, dir := range overlays {
		rel, _ := filepath.Rel(filepath.Join(repoRoot, "deploy", "kustomize"), dir)
		t.Run(rel, func(t *testing.T) {
			objs := render(t, dir)
			kinds := map[string]int{}
			for _, o := range objs {
				if ns := o.GetNamespace(); ns != "" {
					if err := c.Kube().CreateNamespace(t.Context(), ns); err != nil {
						t.Fatal(err)
					}
				}
				if err := c.Kube().ApplyObject(t.Context(), "", o); err != nil {
					t.Error(err)
				}
				kinds[o.GetKind()]++
			}
			t.Logf("%d objects accepted: %v", len(objs), kinds)
		})
	}

	ns := newNamespace(t, "examples")
	t.Run("a misspelt field is refused", func(t *testing.T) {
		objs, err := cluster.Decode([]byte(`apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: misspelt}
spec:
  scaleTargetRef: {name: web}
  minReplicaCont: 1
  triggers: [{type: external, metadata: {scalerAddress: "127.0.0.1:1"}}]
`))
		if err != nil {
			t.Fatal(err)
		}
		err = c.Kube().ApplyObject(t.Context(), ns, objs[0])
		if err == nil || !strings.Contains(err.Error(), "minReplicaCont") {
			t.Fatalf("apply with spec.minReplicaCont: %v, want an error naming the field", err)
		}
		t.Logf("refused: %v", err)
	})
	examples := filepath.Join(repoRoot, "deploy", "kustomize", "examples")
	t.Run("examples/keda-client", func(t *testing.T) {
		applyFiles(t, ns, filepath.Join(examples, "keda-client"), nil)
	})
	for _, svc := range svcs {
		t.Run("examples/"+svc, func(t *testing.T) {
			addr := exampleScaler(t, svc)
			for _, o := range applyFiles(t, ns, filepath.Join(examples, svc), func(o *unstructured.Unstructured) {
				setScalerAddress(t, o, addr)
			}) {
				if o.GetKind() != "ScaledObject" {
					continue
				}
				got, err := c.Kube().Get(t.Context(), cluster.ScaledObjects, ns, o.GetName())
				if err != nil {
					t.Fatal(err)
				}
				triggers, _, _ := unstructured.NestedSlice(got.Object, "spec", "triggers")
				for i, tr := range triggers {
					a, _, _ := unstructured.NestedString(tr.(map[string]any), "metadata", "scalerAddress")
					if a != addr {
						t.Errorf("ScaledObject %s trigger %d: stored scalerAddress %q, want %q", o.GetName(), i, a, addr)
					}
				}
			}
		})
	}
}

// exampleScaler starts the service's scaler for the examples, with a
// throwaway backend where the test has one, and returns its address; for
// a service it knows no backend of, a free port.
// oracle-query has no Oracle here: it serves (and would answer Unavailable)
// with a connection nobody listens on.
func exampleScaler(t *testing.T, svc string) string {
	t.Helper()
	var env []string
	switch svc {
	case "redis-session":
		env = append(env, "REDIS_URL="+testenv.NewRedis(t).URL())
	case "postgres-query":
		env = append(env, "POSTGRES_URL="+testenv.NewPostgres(t).URL(), "POSTGRES_ALLOW_SUPERUSER=true")
	case "oracle-query":
		port, err := cluster.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		env = append(env, "ORACLE_URL=oracle://scaler:secret@127.0.0.1:"+strconv.Itoa(port)+"/FREEPDB1")
	default:
		// A service needs no glue here: without a backend to start, its
		// manifests point at a free port, which the API server accepts as
		// it is (it checks the schema, not the address).
		port, err := cluster.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: no backend known to this test: its manifests are checked with scalerAddress 127.0.0.1:%d, no scaler started", svc, port)
		return "127.0.0.1:" + strconv.Itoa(port)
	}
	return startScaler(t, svc, env...).Addr
}

// setScalerAddress points every trigger of a ScaledObject at addr.
func setScalerAddress(t *testing.T, o *unstructured.Unstructured, addr string) {
	t.Helper()
	if o.GetKind() != "ScaledObject" {
		return
	}
	triggers, _, err := unstructured.NestedSlice(o.Object, "spec", "triggers")
	if err != nil || len(triggers) == 0 {
		t.Fatalf("ScaledObject %s: no triggers (%v)", o.GetName(), err)
	}
	for _, tr := range triggers {
		if err := unstructured.SetNestedField(tr.(map[string]any), addr, "metadata", "scalerAddress"); err != nil {
			t.Fatal(err)
		}
	}
	if err := unstructured.SetNestedSlice(o.Object, triggers, "spec", "triggers"); err != nil {
		t.Fatal(err)
	}
}

// applyFiles applies every *.yaml file of dir in ns, each object passed
// through edit first (when not nil), and returns the objects.
func applyFiles(t *testing.T, ns, dir string, edit func(*unstructured.Unstructured)) []*unstructured.Unstructured {
	t.Helper()
	c := needCluster(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("%s: no *.yaml files (%v)", dir, err)
	}
	var all []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := cluster.Decode(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, o := range objs {
			if edit != nil {
				edit(o)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			if err := c.Kube().ApplyObject(ctx, ns, o); err != nil {
				t.Errorf("%s: %v", filepath.Base(f), err)
			}
			cancel()
			all = append(all, o)
		}
		t.Logf("%s: %d objects accepted", filepath.Base(f), len(objs))
	}
	return all
}

// render builds the kustomization in dir, as kubectl apply -k would.
func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range res.Resources() {
		m, err := r.Map()
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	return objs
}

// services lists the services (services/*/go.mod).
func services(t *testing.T) []string {
	t.Helper()
	mods, err := filepath.Glob(filepath.Join(repoRoot, "services", "*", "go.mod"))
	if err != nil || len(mods) == 0 {
		t.Fatalf("no services/*/go.mod: %v", err)
	}
	var names []string
	for _, m := range mods {
		names = append(names, filepath.Base(filepath.Dir(m)))
	}
	slices.Sort(names)
	return names
}
