package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	// The module whose CRDs (config/crd/bases) the examples are checked
	// against. This small package keeps it required; KEDA's API types are
	// not compiled (they pull in controller-runtime and client-go).
	_ "github.com/kedacore/keda/v2/version"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// kedaModule is the module whose CRDs define ScaledObject and
// TriggerAuthentication, at the version go.mod requires.
const kedaModule = "github.com/kedacore/keda/v2"

// schema is the part of a CRD's structural OpenAPI v3 schema these tests
// enforce: types, fields (an unknown one is an error), required fields,
// enums, lengths, minimums and patterns. Not enforced: format and the CEL
// rules (x-kubernetes-validations), which only the API server evaluates.
type schema struct {
	Type                 string             `json:"type"`
	Properties           map[string]*schema `json:"properties"`
	AdditionalProperties *additional        `json:"additionalProperties"`
	Items                *schema            `json:"items"`
	Required             []string           `json:"required"`
	Enum                 []any              `json:"enum"`
	AnyOf                []*schema          `json:"anyOf"`
	MinItems             *int               `json:"minItems"`
	MinLength            *int               `json:"minLength"`
	Minimum              *float64           `json:"minimum"`
	Pattern              string             `json:"pattern"`
	Nullable             bool               `json:"nullable"`
	IntOrString          bool               `json:"x-kubernetes-int-or-string"`
	PreserveUnknown      bool               `json:"x-kubernetes-preserve-unknown-fields"`
}

// additional is additionalProperties: a schema for every value, or true.
type additional struct {
	any    bool
	schema *schema
}

func (a *additional) UnmarshalJSON(data []byte) error {
	if err := json.Unmarshal(data, &a.any); err == nil {
		return nil
	}
	return json.Unmarshal(data, &a.schema)
}

// crd is the part of a CustomResourceDefinition that holds the schemas.
type crd struct {
	Spec struct {
		Group string `json:"group"`
		Names struct {
			Kind string `json:"kind"`
		} `json:"names"`
		Versions []struct {
			Name   string `json:"name"`
			Schema struct {
				OpenAPIV3Schema *schema `json:"openAPIV3Schema"`
			} `json:"schema"`
		} `json:"versions"`
	} `json:"spec"`
}

// crdSchemas maps "group/version Kind" to its schema, for every CRD of
// KEDA's module (read from the module cache, not copied here).
var crdSchemas = sync.OnceValues(func() (map[string]*schema, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", kedaModule).Output()
	if err != nil {
		return nil, fmt.Errorf("go list -m %s: %w", kedaModule, err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "bases")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no CRDs in %s (%v)", dir, err)
	}
	schemas := map[string]*schema{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var c crd
		if err := yaml.Unmarshal(data, &c); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, v := range c.Spec.Versions {
			schemas[c.Spec.Group+"/"+v.Name+" "+c.Spec.Names.Kind] = v.Schema.OpenAPIV3Schema
		}
	}
	return schemas, nil
})

// decodeCRD checks doc against the schema of its CRD (gvk is "group/version
// Kind"), its metadata strictly against ObjectMeta, and then decodes it
// into a new T, appended to list.
func decodeCRD[T any](doc []byte, gvk string, list *[]*T) error {
	schemas, err := crdSchemas()
	if err != nil {
		return err
	}
	s := schemas[gvk]
	if s == nil {
		return fmt.Errorf("%s: no such CRD in %s", gvk, kedaModule)
	}
	if err := validateCR(doc, s); err != nil {
		return err
	}
	obj := new(T)
	if err := yaml.Unmarshal(doc, obj); err != nil {
		return err
	}
	*list = append(*list, obj)
	return nil
}

// validateCR checks a custom resource against its CRD's schema; the
// metadata, which a CRD leaves to the API server, strictly as ObjectMeta.
func validateCR(doc []byte, s *schema) error {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	if md, ok := v["metadata"]; ok {
		raw, _ := json.Marshal(md)
		var meta metav1.ObjectMeta
		if err := yaml.UnmarshalStrict(raw, &meta); err != nil {
			return fmt.Errorf("metadata: %w", err)
		}
	}
	root := *s
	root.Properties = map[string]*schema{}
	for k, p := range s.Properties {
		if k != "metadata" {
			root.Properties[k] = p
		}
	}
	root.Properties["metadata"] = &schema{PreserveUnknown: true, Type: "object"}
	if errs := validate("", v, &root); len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// validate returns what is wrong with v under s, by path.
func validate(path string, v any, s *schema) []string {
	at := path
	if at == "" {
		at = "."
	}
	if v == nil {
		if s.Nullable {
			return nil
		}
		return []string{at + ": null"}
	}
	if len(s.AnyOf) > 0 {
		ok := false
		for _, alt := range s.AnyOf {
			ok = ok || len(validate(path, v, alt)) == 0
		}
		if !ok {
			return []string{fmt.Sprintf("%s: %v matches none of its schemas", at, v)}
		}
	}
	if s.IntOrString {
		if _, isStr := v.(string); isStr || isInteger(v) {
			return nil
		}
		return []string{fmt.Sprintf("%s: %v: want an integer or a string", at, v)}
	}
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, at+": "+fmt.Sprintf(format, args...)) }
	if len(s.Enum) > 0 && !slices.ContainsFunc(s.Enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		bad("%v: want one of %v", v, s.Enum)
	}
	switch s.Type {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			bad("%T: want an object", v)
			break
		}
		for _, r := range s.Required {
			if _, ok := m[r]; !ok {
				bad("missing required field %s", r)
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			switch p := s.Properties[k]; {
			case p != nil:
				errs = append(errs, validate(path+"."+k, m[k], p)...)
			case s.AdditionalProperties != nil && s.AdditionalProperties.schema != nil:
				errs = append(errs, validate(path+"."+k, m[k], s.AdditionalProperties.schema)...)
			case s.AdditionalProperties != nil && s.AdditionalProperties.any, s.PreserveUnknown:
			default:
				bad("unknown field %q", k)
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			bad("%T: want an array", v)
			break
		}
		if s.MinItems != nil && len(a) < *s.MinItems {
			bad("%d items: want at least %d", len(a), *s.MinItems)
		}
		if s.Items != nil {
			for i, x := range a {
				errs = append(errs, validate(path+"["+strconv.Itoa(i)+"]", x, s.Items)...)
			}
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			bad("%v: want a string", v)
			break
		}
		if s.MinLength != nil && len(str) < *s.MinLength {
			bad("%q: want at least %d characters", str, *s.MinLength)
		}
		if s.Pattern != "" {
			re, err := regexp.Compile(s.Pattern)
			if err != nil {
				bad("pattern %q: %v", s.Pattern, err)
			} else if !re.MatchString(str) {
				bad("%q does not match %s", str, s.Pattern)
			}
		}
	case "integer", "number":
		n, ok := v.(json.Number)
		if !ok || (s.Type == "integer" && !isInteger(v)) {
			bad("%v: want an %s", v, s.Type)
			break
		}
		if f, err := n.Float64(); err == nil && s.Minimum != nil && f < *s.Minimum {
			bad("%v: want at least %v", v, *s.Minimum)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			bad("%v: want a boolean", v)
		}
	}
	return errs
}

func isInteger(v any) bool {
	n, ok := v.(json.Number)
	if !ok {
		return false
	}
	_, err := strconv.ParseInt(string(n), 10, 64)
	return err == nil
}

// TestCRDSchemaCatches: the schema check fails on what a strict decode
// into KEDA's Go types failed on (an unknown or misspelt field, a wrong
// type) and on what the CRD requires, and passes a valid object.
func TestCRDSchemaCatches(t *testing.T) {
	const valid = `apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: web, labels: {a: b}}
spec:
  scaleTargetRef: {name: web}
  pollingInterval: 30
  fallback: {failureThreshold: 3, replicas: 10}
  triggers:
    - type: external
      metadata: {scalerAddress: "x:9090", mode: dbsize}
      authenticationRef: {name: kedascalers-mtls}
`
	cases := map[string]struct {
		old, new string // a change to valid; none: valid itself
		want     string // in the error; "": no error
	}{
		"valid":                 {"", "", ""},
		"misspelt spec field":   {"pollingInterval", "pollingIntervall", `unknown field "pollingIntervall"`},
		"unknown trigger field": {"      authenticationRef", "      authRef", `unknown field "authRef"`},
		"unknown metadata":      {"labels: {a: b}", "label: {a: b}", `unknown field "label"`},
		"string for integer":    {"pollingInterval: 30", `pollingInterval: "30"`, "want an integer"},
		"integer for string":    {"type: external", "type: 1", "want a string"},
		"missing required":      {"    - type: external\n", "    - name: x\n", "missing required field type"},
		"non-string metadata":   {"mode: dbsize", "mode: {a: b}", "want a string"},
	}
	schemas, err := crdSchemas()
	if err != nil {
		t.Fatal(err)
	}
	s := schemas["keda.sh/v1alpha1 ScaledObject"]
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			doc := valid
			if c.old != "" {
				if !strings.Contains(doc, c.old) {
					t.Fatalf("%q not in the valid object", c.old)
				}
				doc = strings.Replace(doc, c.old, c.new, 1)
			}
			err := validateCR([]byte(doc), s)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("valid object refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("error %v: want one saying %q", err, c.want)
			}
		})
	}
}
