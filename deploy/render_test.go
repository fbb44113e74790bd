package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	monv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/yaml"
)

// repoRoot is the repository, seen from this module's directory (where go
// test runs).
const repoRoot = ".."

// environments are the overlays of every service, in promotion order.
var environments = []string{"dev", "staging", "prod"}

// services returns the scalers of the repository: every services/*/go.mod.
// Each must have a base, an overlay per environment, examples, a
// Dockerfile and a release workflow.
func services(t *testing.T) []string {
	t.Helper()
	mods, err := filepath.Glob(filepath.Join(repoRoot, "services", "*", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range mods {
		names = append(names, filepath.Base(filepath.Dir(m)))
	}
	if len(names) == 0 {
		t.Fatal("no services/*/go.mod found")
	}
	slices.Sort(names)
	return names
}

// objects is what one kustomization renders to (or one examples directory
// holds), decoded into typed structs: strictly into the Go types of
// Kubernetes, cert-manager and the Prometheus Operator, and against the
// CRDs' schemas for KEDA's. Every object must be of a known kind: an
// object the tests cannot type is an error, not a skip.
type objects struct {
	source string // the directory, for messages
	yaml   string // everything, as YAML

	deployments     []*appsv1.Deployment
	services        []*corev1.Service
	serviceAccounts []*corev1.ServiceAccount
	configMaps      []*corev1.ConfigMap
	pdbs            []*policyv1.PodDisruptionBudget
	networkPolicies []*networkingv1.NetworkPolicy
	certificates    []*cmv1.Certificate
	serviceMonitors []*monv1.ServiceMonitor
	prometheusRules []*monv1.PrometheusRule
	scaledObjects   []*scaledObject
	triggerAuths    []*triggerAuthentication
}

// scaledObject is what these tests read of a KEDA ScaledObject, once the
// whole object has been checked against KEDA's CRD (crd_test.go).
type scaledObject struct {
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ScaleTargetRef struct {
			Name string `json:"name"`
		} `json:"scaleTargetRef"`
		Triggers []scaleTrigger `json:"triggers"`
	} `json:"spec"`
}

// scaleTrigger is one trigger of a ScaledObject.
type scaleTrigger struct {
	Type              string            `json:"type"`
	Metadata          map[string]string `json:"metadata"`
	AuthenticationRef *struct {
		Name string `json:"name"`
		Kind string `json:"kind"`
	} `json:"authenticationRef"`
}

// triggerAuthentication is what these tests read of a KEDA
// TriggerAuthentication, once checked against KEDA's CRD.
type triggerAuthentication struct {
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SecretTargetRef []struct {
			Parameter string `json:"parameter"`
			Name      string `json:"name"`
			Key       string `json:"key"`
		} `json:"secretTargetRef"`
	} `json:"spec"`
}

// add decodes one YAML document strictly (an unknown or misspelt field is
// an error) into the type its apiVersion and kind name.
func (o *objects) add(doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	var err error
	switch gvk := tm.APIVersion + " " + tm.Kind; gvk {
	case "apps/v1 Deployment":
		err = decodeInto(doc, &o.deployments)
	case "v1 Service":
		err = decodeInto(doc, &o.services)
	case "v1 ServiceAccount":
		err = decodeInto(doc, &o.serviceAccounts)
	case "v1 ConfigMap":
		err = decodeInto(doc, &o.configMaps)
	case "policy/v1 PodDisruptionBudget":
		err = decodeInto(doc, &o.pdbs)
	case "networking.k8s.io/v1 NetworkPolicy":
		err = decodeInto(doc, &o.networkPolicies)
	case "cert-manager.io/v1 Certificate":
		err = decodeInto(doc, &o.certificates)
	case "monitoring.coreos.com/v1 ServiceMonitor":
		err = decodeInto(doc, &o.serviceMonitors)
	case "monitoring.coreos.com/v1 PrometheusRule":
		err = decodeInto(doc, &o.prometheusRules)
	case "keda.sh/v1alpha1 ScaledObject":
		err = decodeCRD(doc, gvk, &o.scaledObjects)
	case "keda.sh/v1alpha1 TriggerAuthentication":
		err = decodeCRD(doc, gvk, &o.triggerAuths)
	default:
		return fmt.Errorf("%s: no type known to these tests: add it to objects.add", gvk)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", tm.Kind, firstLine(doc), err)
	}
	o.yaml += "---\n" + string(doc)
	return nil
}

// decodeInto decodes doc strictly into a new T and appends it to list.
func decodeInto[T any](doc []byte, list *[]*T) error {
	obj := new(T)
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return err
	}
	*list = append(*list, obj)
	return nil
}

func firstLine(doc []byte) string {
	var m struct {
		Metadata struct{ Name string } `json:"metadata"`
	}
	_ = yaml.Unmarshal(doc, &m)
	return m.Metadata.Name
}

// render builds the kustomization in dir, as kubectl apply -k would.
func render(t *testing.T, dir string) *objects {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resources, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	o := &objects{source: dir}
	for _, r := range resources.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if err := o.add(doc); err != nil {
			t.Errorf("%s: %v", dir, err)
		}
	}
	return o
}

// readDir decodes every *.yaml file of dir (examples are plain files).
func readDir(t *testing.T, dir string) *objects {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("%s: no *.yaml files", dir)
	}
	o := &objects{source: dir}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		nodes, err := kio.FromBytes(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, n := range nodes {
			doc, err := n.String()
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if err := o.add([]byte(doc)); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
	}
	return o
}

// The lookups below fail the test when the object is not there.

func (o *objects) deployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	return only(t, o, "Deployment", o.deployments)
}

func (o *objects) service(t *testing.T) *corev1.Service {
	t.Helper()
	return only(t, o, "Service", o.services)
}

func only[T any](t *testing.T, o *objects, kind string, list []*T) *T {
	t.Helper()
	if len(list) != 1 {
		t.Fatalf("%s: %d objects of kind %s, want exactly one (one scaler per kustomization)", o.source, len(list), kind)
	}
	return list[0]
}

func (o *objects) configMap(name string) *corev1.ConfigMap {
	for _, c := range o.configMaps {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (o *objects) serviceAccount(name string) *corev1.ServiceAccount {
	for _, s := range o.serviceAccounts {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func (o *objects) certificateForSecret(secret string) *cmv1.Certificate {
	for _, c := range o.certificates {
		if c.Spec.SecretName == secret {
			return c
		}
	}
	return nil
}

func (o *objects) triggerAuth(name string) *triggerAuthentication {
	for _, a := range o.triggerAuths {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// namespaces returns the distinct namespaces of every object.
func (o *objects) namespaces() []string {
	var all []string
	add := func(m metav1.ObjectMeta) { all = append(all, m.Namespace) }
	for _, x := range o.deployments {
		add(x.ObjectMeta)
	}
	for _, x := range o.services {
		add(x.ObjectMeta)
	}
	for _, x := range o.serviceAccounts {
		add(x.ObjectMeta)
	}
	for _, x := range o.configMaps {
		add(x.ObjectMeta)
	}
	for _, x := range o.pdbs {
		add(x.ObjectMeta)
	}
	for _, x := range o.networkPolicies {
		add(x.ObjectMeta)
	}
	for _, x := range o.certificates {
		add(x.ObjectMeta)
	}
	for _, x := range o.serviceMonitors {
		add(x.ObjectMeta)
	}
	for _, x := range o.prometheusRules {
		add(x.ObjectMeta)
	}
	slices.Sort(all)
	return slices.Compact(all)
}

// effectiveEnv is the container's environment as the kubelet builds it
// from what the render defines: envFrom ConfigMaps in order, then env.
// Secrets are not rendered (operators create them) and add nothing here.
func (o *objects) effectiveEnv(c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil {
			continue
		}
		if cm := o.configMap(from.ConfigMapRef.Name); cm != nil {
			for k, v := range cm.Data {
				env[from.Prefix+k] = v
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
		}
	}
	return env
}

// containerPort resolves a port given by number or by name against the
// container's ports; 0 when it names no port.
func containerPort(c corev1.Container, name string, number int32) int32 {
	if name == "" {
		return number
	}
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// hasWord reports whether s holds word as a whole word (a placeholder
// left behind by a component).
func hasWord(s, word string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], word)
		if j < 0 {
			return false
		}
		j += i
		before := j == 0 || !isWordByte(s[j-1])
		after := j+len(word) == len(s) || !isWordByte(s[j+len(word)])
		if before && after {
			return true
		}
		i = j + len(word)
	}
}

func isWordByte(b byte) bool {
	return b == '_' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}
