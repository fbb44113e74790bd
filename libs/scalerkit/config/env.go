package config

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/kelseyhightower/envconfig"
)

// A field's tags besides envconfig's own:
//
//	was:"OLD_NAME"   the variable's previous name, still read for one release (Renamed warns)
//	file:"true"      the value names a file that must exist (Load checks it)
//
// A spec may also have a method EnvPrefixes() []string naming the
// prefixes of variables it reads by pattern (POSTGRES_URL_<NAME>), so that
// NearMisses takes them as known.

// variable is one variable a spec reads.
type variable struct {
	name, was string
	file      bool
	field     reflect.Value
	typ       reflect.StructField
}

// variables lists the variables of the struct spec points to, those of
// embedded structs included.
func variables(spec any) []variable {
	v := reflect.ValueOf(spec)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil
	}
	var out []variable
	var walk func(s reflect.Value)
	walk = func(s reflect.Value) {
		for i := range s.NumField() {
			f := s.Type().Field(i)
			switch {
			case f.Tag.Get("ignored") == "true" || !f.IsExported():
			case f.Anonymous && f.Type.Kind() == reflect.Struct:
				walk(s.Field(i))
			case f.Tag.Get("envconfig") != "":
				out = append(out, variable{name: f.Tag.Get("envconfig"), was: f.Tag.Get("was"),
					file: f.Tag.Get("file") == "true", field: s.Field(i), typ: f})
			}
		}
	}
	walk(v.Elem())
	return out
}

// Names returns the variables the struct spec points to reads, those of
// embedded structs included, in the order of its fields.
func Names(spec any) []string {
	var out []string
	for _, v := range variables(spec) {
		out = append(out, v.name)
	}
	return out
}

// loadRenamed sets, from its previous name, every variable of spec that is
// unset under its new name. The error names the previous name.
func loadRenamed(spec any) error {
	for _, v := range variables(spec) {
		if v.was == "" {
			continue
		}
		if _, set := os.LookupEnv(v.name); set {
			continue
		}
		if _, set := os.LookupEnv(v.was); !set {
			continue
		}
		// A struct of the one field under its previous name, read by
		// envconfig as the field itself would be.
		tag := reflect.StructTag(fmt.Sprintf(`envconfig:%q`, v.was))
		one := reflect.New(reflect.StructOf([]reflect.StructField{{Name: v.typ.Name, Type: v.typ.Type, Tag: tag}}))
		if err := envconfig.Process("", one.Interface()); err != nil {
			return explain(one.Interface(), err)
		}
		v.field.Set(one.Elem().Field(0))
	}
	return nil
}

// Renamed returns a warning for each variable of specs set under its
// previous name only: it still works for one release.
func Renamed(specs ...any) []string {
	var out []string
	for _, spec := range specs {
		for _, v := range variables(spec) {
			if v.was == "" {
				continue
			}
			_, setNew := os.LookupEnv(v.name)
			if _, setOld := os.LookupEnv(v.was); setOld {
				what := "is read as " + v.name
				if setNew {
					what = "is ignored: " + v.name + " is set too"
				}
				out = append(out, fmt.Sprintf("%s is renamed %s and %s; the old name stops working in the next release", v.was, v.name, what))
			}
		}
	}
	return out
}

// checkFiles returns an error naming the first variable of spec with a
// file tag whose file cannot be opened.
func checkFiles(spec any) error {
	for _, v := range variables(spec) {
		if !v.file || v.field.Kind() != reflect.String || v.field.String() == "" {
			continue
		}
		f, err := os.Open(v.field.String())
		if err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		_ = f.Close()
	}
	return nil
}

// NearMiss is a variable set in the environment that none of the specs
// reads, but whose name is a small edit of one they do: a typo.
type NearMiss struct {
	// Set is the variable as set, Want the one it is likely meant as.
	Set, Want string
}

func (m NearMiss) String() string {
	return fmt.Sprintf("%s is set but is not a variable of this scaler: did you mean %s?", m.Set, m.Want)
}

// serviceLink matches the variables Kubernetes sets for every Service of
// the namespace (REDIS_SESSION_SERVICE_HOST, REDIS_PORT_6379_TCP_ADDR...):
// never ours, whatever they are close to.
var serviceLink = regexp.MustCompile(`_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT|PORT_\d+_(TCP|UDP|SCTP)(_ADDR|_PORT|_PROTO)?)$`)

// NearMisses returns the variables of environ (as os.Environ returns it)
// that none of specs reads but that are a near miss of one they read:
// the same first word (REDIS_, CACHE_) and a name at most two edits away
// (one for names under eight characters), a swap of two letters being
// one. Variables Kubernetes sets for Services are never reported.
func NearMisses(environ []string, specs ...any) []NearMiss {
	known := map[string]bool{}
	var prefixes []string
	for _, spec := range specs {
		for _, v := range variables(spec) {
			known[v.name] = true
			if v.was != "" {
				known[v.was] = true
			}
		}
		if p, ok := spec.(interface{ EnvPrefixes() []string }); ok {
			prefixes = append(prefixes, p.EnvPrefixes()...)
		}
	}
	var out []NearMiss
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if known[name] || serviceLink.MatchString(name) || slices.ContainsFunc(prefixes, func(p string) bool {
			return strings.HasPrefix(name, p) && len(name) > len(p)
		}) {
			continue
		}
		best, bestD := "", 0
		for k := range known {
			if firstWord(k) != firstWord(name) {
				continue
			}
			limit := 2
			if len(k) < 8 {
				limit = 1
			}
			if d := distance(name, k); d <= limit && (best == "" || d < bestD || d == bestD && k < best) {
				best, bestD = k, d
			}
		}
		if best != "" {
			out = append(out, NearMiss{Set: name, Want: best})
		}
	}
	slices.SortFunc(out, func(a, b NearMiss) int { return strings.Compare(a.Set, b.Set) })
	return out
}

// firstWord is name up to its first underscore.
func firstWord(name string) string {
	w, _, _ := strings.Cut(name, "_")
	return w
}

// distance is the optimal string alignment distance of a and b: the
// insertions, deletions, substitutions and swaps of adjacent bytes that
// turn one into the other.
func distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
