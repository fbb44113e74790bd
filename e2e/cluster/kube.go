package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// Resources the scenarios read.
var (
	Deployments   = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	ScaledObjects = schema.GroupVersionResource{Group: "keda.sh", Version: "v1alpha1", Resource: "scaledobjects"}
	HPAs          = schema.GroupVersionResource{Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers"}
	Events        = schema.GroupVersionResource{Version: "v1", Resource: "events"}
	Namespaces    = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	CRDs          = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
)

// FieldManager is the field manager of every server-side apply here.
const FieldManager = "kedascalers-e2e"

// Kube applies and reads objects through the dynamic client.
type Kube struct {
	// Client is the dynamic client.
	Client    dynamic.Interface
	discovery discovery.DiscoveryInterface
	mapper    *restmapper.DeferredDiscoveryRESTMapper
}

func newKube(cfg *rest.Config, client dynamic.Interface) (*Kube, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery client: %w", err)
	}
	return &Kube{
		Client:    client,
		discovery: dc,
		mapper:    restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)),
	}, nil
}

// Decode splits YAML (or JSON) documents into objects; empty documents are
// skipped.
func Decode(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("decode: %w", err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// Apply applies every object of the YAML documents server-side (forcing
// conflicts, strict field validation), in namespace when an object is namespaced and names none.
func (k *Kube) Apply(ctx context.Context, namespace string, docs []byte) error {
	objs, err := Decode(docs)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := k.ApplyObject(ctx, namespace, o); err != nil {
			return err
		}
	}
	return nil
}

// ApplyObject applies one object server-side, like Apply, with strict
// field validation.
func (k *Kube) ApplyObject(ctx context.Context, namespace string, o *unstructured.Unstructured) error {
	ri, err := k.Resource(o, namespace)
	if err != nil {
		return err
	}
	data, err := json.Marshal(o)
	if err != nil {
		return fmt.Errorf("%s %s: %w", o.GetKind(), o.GetName(), err)
	}
	force := true
	// Strict: a field the schema does not know is an error, not dropped.
	opts := metav1.PatchOptions{FieldManager: FieldManager, Force: &force, FieldValidation: "Strict"}
	if _, err := ri.Patch(ctx, o.GetName(), types.ApplyPatchType, data, opts); err != nil {
		return fmt.Errorf("apply %s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
	}
	return nil
}

// Resource returns the client for o's kind, setting o's namespace to
// namespace when the kind is namespaced and o names none.
func (k *Kube) Resource(o *unstructured.Unstructured, namespace string) (dynamic.ResourceInterface, error) {
	gvk := o.GroupVersionKind()
	m, err := k.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		// A kind a CRD just added: read discovery again.
		k.mapper.Reset()
		m, err = k.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", gvk, o.GetName(), err)
	}
	if m.Scope.Name() != meta.RESTScopeNameNamespace {
		return k.Client.Resource(m.Resource), nil
	}
	if o.GetNamespace() == "" {
		o.SetNamespace(namespace)
	}
	return k.Client.Resource(m.Resource).Namespace(o.GetNamespace()), nil
}

// ApplyFiles applies every file, like Apply.
func (k *Kube) ApplyFiles(ctx context.Context, namespace string, files ...string) error {
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if err := k.Apply(ctx, namespace, data); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	return nil
}

// WaitCRDsEstablished waits until every CustomResourceDefinition is
// Established, at most timeout, and makes their kinds known to Apply.
func (k *Kube) WaitCRDsEstablished(ctx context.Context, timeout time.Duration) error {
	err := Eventually(ctx, timeout, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		list, err := k.Client.Resource(CRDs).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, crd := range list.Items {
			if Condition(&crd, "Established") != "True" {
				return false, fmt.Errorf("CRD %s not Established yet", crd.GetName())
			}
		}
		return true, nil
	})
	k.mapper.Reset()
	return err
}

// externalMetricsReady is ready when the aggregated external metrics API
// answers through the API server.
func (k *Kube) externalMetricsReady(ctx context.Context) error {
	_, err := k.discovery.RESTClient().Get().AbsPath("/apis/external.metrics.k8s.io/v1beta1").DoRaw(ctx)
	return err
}

// Get reads one object.
func (k *Kube) Get(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string) (*unstructured.Unstructured, error) {
	o, err := k.Client.Resource(gvr).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get %s %s/%s: %w", gvr.Resource, namespace, name, err)
	}
	return o, nil
}

// Replicas returns a Deployment's spec.replicas.
func (k *Kube) Replicas(ctx context.Context, namespace, name string) (int64, error) {
	d, err := k.Get(ctx, Deployments, namespace, name)
	if err != nil {
		return 0, err
	}
	n, _, err := unstructured.NestedInt64(d.Object, "spec", "replicas")
	return n, err
}

// WatchReplicas watches a Deployment and sends its spec.replicas, with the
// time the change was seen, until ctx ends. The first value is the current
// one.
func (k *Kube) WatchReplicas(ctx context.Context, namespace, name string) (<-chan Observed, error) {
	w, err := k.Client.Resource(Deployments).Namespace(namespace).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		return nil, fmt.Errorf("watch deployment %s/%s: %w", namespace, name, err)
	}
	ch := make(chan Observed, 64)
	go func() {
		defer close(ch)
		defer w.Stop()
		last := int64(-1)
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.ResultChan():
				if !ok {
					return
				}
				if ev.Type != watch.Added && ev.Type != watch.Modified {
					continue
				}
				u, ok := ev.Object.(*unstructured.Unstructured)
				if !ok {
					continue
				}
				n, _, _ := unstructured.NestedInt64(u.Object, "spec", "replicas")
				if n == last {
					continue
				}
				last = n
				select {
				case ch <- Observed{Replicas: n, At: time.Now()}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return ch, nil
}

// Observed is a Deployment's spec.replicas seen at a time.
type Observed struct {
	Replicas int64
	At       time.Time
}

// Event is the part of a core/v1 Event the scenarios check.
type Event struct {
	Type, Reason, Message, Object string
}

// Events lists the events of a namespace, oldest first.
func (k *Kube) Events(ctx context.Context, namespace string) ([]Event, error) {
	list, err := k.Client.Resource(Events).Namespace(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	var evs []Event
	for _, e := range list.Items {
		kind, _, _ := unstructured.NestedString(e.Object, "involvedObject", "kind")
		name, _, _ := unstructured.NestedString(e.Object, "involvedObject", "name")
		typ, _, _ := unstructured.NestedString(e.Object, "type")
		reason, _, _ := unstructured.NestedString(e.Object, "reason")
		msg, _, _ := unstructured.NestedString(e.Object, "message")
		evs = append(evs, Event{Type: typ, Reason: reason, Message: msg, Object: kind + "/" + name})
	}
	return evs, nil
}

// CreateNamespace creates a namespace (it may exist already).
func (k *Kube) CreateNamespace(ctx context.Context, name string) error {
	ns := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name},
	}}
	_, err := k.Client.Resource(Namespaces).Create(ctx, ns, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// Condition returns the status ("True", "False", "Unknown") of a condition
// of o's status.conditions, or "" when o has none of that type.
func Condition(o *unstructured.Unstructured, typ string) string {
	c := ConditionOf(o, typ)
	if c == nil {
		return ""
	}
	s, _ := c["status"].(string)
	return s
}

// ConditionOf returns the condition of that type of o's status.conditions,
// or nil.
func ConditionOf(o *unstructured.Unstructured, typ string) map[string]any {
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == typ {
			return m
		}
	}
	return nil
}

// finalError is an error of cond after which Eventually does not try
// again.
type finalError struct{ error }

func (e finalError) Unwrap() error { return e.error }

// Final marks err as final: Eventually returns it at once instead of
// trying again (a process that exited will not become ready).
func Final(err error) error { return finalError{err} }

// Eventually calls cond every interval until it returns true, at most
// timeout; the error says what cond last reported. An error marked Final
// ends it at once.
func Eventually(ctx context.Context, timeout, interval time.Duration, cond func(ctx context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		if f := (finalError{}); errors.As(err, &f) {
			return f.error
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("not after %v: %w", timeout, last)
			}
			return fmt.Errorf("not after %v", timeout)
		case <-time.After(interval):
		}
	}
}
