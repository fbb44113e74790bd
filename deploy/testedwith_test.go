package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// e2eModules are the modules whose versions e2e/build/go.mod pins, by the
// column of CHANGELOG.md's "Tested with" table that records them (its
// header cell starts with the name).
var e2eModules = []struct{ column, module string }{
	{"KEDA", "github.com/kedacore/keda/v2"},
	{"Kubernetes", "k8s.io/kubernetes"},
	{"etcd", "go.etcd.io/etcd/server/v3"},
}

// TestTestedWithMatchesE2E: the newest "Tested with" table of CHANGELOG.md
// (the release being prepared, or the last one) has a row for every
// service, and says the KEDA, Kubernetes and etcd versions e2e/build/go.mod
// pins, the ones make e2e runs: bumping e2e/build without the table (or
// the reverse) fails here, naming the row and the cell to change.
func TestTestedWithMatchesE2E(t *testing.T) {
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "e2e", "build", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	versions, err := moduleVersions(gomod)
	if err != nil {
		t.Fatalf("e2e/build/go.mod: %v", err)
	}
	changelog, err := os.ReadFile(filepath.Join(repoRoot, "CHANGELOG.md"))
	if err != nil {
		t.Fatal(err)
	}
	release, header, rows, err := testedWith(changelog)
	if err != nil {
		t.Fatalf("CHANGELOG.md: %v", err)
	}
	for _, m := range e2eModules {
		want, ok := versions[m.module]
		if !ok {
			t.Errorf("e2e/build/go.mod does not require %s (the %s of make e2e)", m.module, m.column)
			continue
		}
		col := slices.IndexFunc(header, func(h string) bool { return strings.HasPrefix(h, m.column) })
		if col < 0 {
			t.Errorf("CHANGELOG.md, %q, Tested with: no %s column (header %q)", release, m.column, header)
			continue
		}
		for _, svc := range slices.Sorted(maps.Keys(rows)) {
			cells := rows[svc]
			if col >= len(cells) || cells[col] != want {
				got := ""
				if col < len(cells) {
					got = cells[col]
				}
				t.Errorf("CHANGELOG.md, %q, Tested with: update the row %s, column %s, from %q to %s "+
					"(e2e/build/go.mod requires %s %s; if that release is out, add a Tested with table under Unreleased)",
					release, svc, m.column, got, want, m.module, want)
			}
		}
	}
	for _, svc := range services(t) {
		if _, ok := rows[svc]; !ok {
			t.Errorf("CHANGELOG.md, %q, Tested with: no row for %s", release, svc)
		}
	}
}

// moduleVersions returns the version go.mod selects for each module it
// requires (one require line, or a require block), after its replace
// directives that name a version (of every version of the module, or of
// the one required). A simple line parse of what e2e/build/go.mod holds,
// rather than a new dependency on golang.org/x/mod.
func moduleVersions(gomod []byte) (map[string]string, error) {
	required, replaced := map[string]string{}, map[string]string{}
	block := ""
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "//")
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
			continue
		case block != "" && fields[0] == ")":
			block = ""
			continue
		case block == "" && len(fields) == 2 && fields[1] == "(":
			block = fields[0]
			continue
		}
		verb := block
		if verb == "" {
			verb, fields = fields[0], fields[1:]
		}
		switch verb {
		case "require":
			if len(fields) != 2 {
				return nil, fmt.Errorf("line %d: require %q: want a module and a version", n, strings.Join(fields, " "))
			}
			required[fields[0]] = fields[1]
		case "replace":
			// old [v] => new v; a replacement by a directory (old =>
			// ../dir) has no version and is left out.
			i := slices.Index(fields, "=>")
			if (i != 1 && i != 2) || len(fields) != i+3 {
				continue
			}
			key := fields[0] // every version of old
			if i == 2 {
				key += "@" + fields[1] // that version only
			}
			replaced[key] = fields[i+2]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for m, v := range required {
		if r, ok := replaced[m+"@"+v]; ok {
			required[m] = r
		} else if r, ok := replaced[m]; ok {
			required[m] = r
		}
	}
	return required, nil
}

// testedWith returns the first "Tested with" table of changelog (the
// newest): the heading of the release it is under, the cells of its
// header, and the cells of each row by the row's first cell (the service).
func testedWith(changelog []byte) (release string, header []string, rows map[string][]string, err error) {
	lines := strings.Split(string(changelog), "\n")
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "### ") {
			release = strings.TrimSpace(strings.TrimLeft(l, "#"))
		}
		if strings.HasPrefix(l, "#") && strings.TrimSpace(strings.TrimLeft(l, "#")) == "Tested with" {
			start = i + 1
			break
		}
	}
	if start < 0 {
		return "", nil, nil, fmt.Errorf(`no "Tested with" heading`)
	}
	rows = map[string][]string{}
	for _, l := range lines[start:] {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "|") {
			if len(header) > 0 {
				break // the table's end
			}
			continue
		}
		cells := strings.Split(strings.Trim(l, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		switch {
		case header == nil:
			header = cells
		case strings.Trim(strings.Join(cells, ""), "-: ") == "": // the separator row
		default:
			rows[cells[0]] = cells
		}
	}
	if len(rows) == 0 {
		return "", nil, nil, fmt.Errorf("the Tested with table under %q has no rows", release)
	}
	return release, header, rows, nil
}

func TestModuleVersions(t *testing.T) {
	gomod := `module example.com/m // a comment

go 1.26.0

tool example.com/a/cmd/x

require example.com/one v1.0.0

require (
	example.com/two v2.0.0 // indirect
	example.com/three v0.3.0
	example.com/four v0.4.0
	example.com/five v0.5.0
)

replace example.com/two => example.com/two v2.0.1

replace (
	example.com/three v0.3.0 => example.com/fork v0.3.9
	example.com/four v0.1.0 => example.com/four v0.1.1
	example.com/five => ../five
)

exclude example.com/one v0.9.0
`
	got, err := moduleVersions([]byte(gomod))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"example.com/one":   "v1.0.0",
		"example.com/two":   "v2.0.1", // replaced at every version
		"example.com/three": "v0.3.9", // replaced at the version required
		"example.com/four":  "v0.4.0", // a replace of another version
		"example.com/five":  "v0.5.0", // a directory: no version to read
	}
	if !maps.Equal(got, want) {
		t.Errorf("moduleVersions = %v, want %v", got, want)
	}
	if _, err := moduleVersions([]byte("require example.com/one\n")); err == nil {
		t.Error("a require without a version: no error")
	}
}

func TestTestedWithTable(t *testing.T) {
	changelog := `# Changelog

## Unreleased

### svc-a/v0.2.0

#### Tested with

| service | KEDA | Kubernetes (kube-apiserver) | etcd | how |
|---|---|---|---|---|
| svc-a | v2.21.0 | v1.36.5 | v3.7.1 | e2e |
| svc-b | v2.21.0 | v1.36.5 | v3.7.1 | e2e |

Text after.

### svc-a/v0.1.0

#### Tested with

| service | KEDA | Kubernetes | etcd | how |
|---|---|---|---|---|
| svc-a | v2.20.0 | v1.35.0 | v3.6.0 | e2e |
`
	release, header, rows, err := testedWith([]byte(changelog))
	if err != nil {
		t.Fatal(err)
	}
	if release != "svc-a/v0.2.0" {
		t.Errorf("release = %q, want the newest, svc-a/v0.2.0", release)
	}
	if want := []string{"service", "KEDA", "Kubernetes (kube-apiserver)", "etcd", "how"}; !slices.Equal(header, want) {
		t.Errorf("header = %q, want %q", header, want)
	}
	if len(rows) != 2 || rows["svc-b"][1] != "v2.21.0" || rows["svc-a"][3] != "v3.7.1" {
		t.Errorf("rows = %q, want svc-a and svc-b of the newest table", rows)
	}
	if _, _, _, err := testedWith([]byte("## Unreleased\n\nNothing.\n")); err == nil {
		t.Error("no Tested with table: no error")
	}
}
