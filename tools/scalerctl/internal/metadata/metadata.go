// Package metadata parses the trigger metadata given on scalerctl's command
// line (--metadata k=v,k2=v2, repeatable) or in a file (--metadata-file, one
// key=value a line), which scalerctl sends as ScaledObjectRef.scalerMetadata.
package metadata

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// ParseList parses one --metadata argument, a comma-separated list of
// key=value pairs, into m. Each pair is split on its first '=', so values may
// contain '='. A comma inside a value is written `\,` and a backslash before a
// comma `\\`; any other backslash is kept as it is. Keys are trimmed of
// surrounding spaces, values are not. Empty items are skipped; an item
// without '=' or with an empty key is an error. Later keys overwrite earlier
// ones.
func ParseList(s string, m map[string]string) error {
	for _, item := range splitEscaped(s) {
		if strings.TrimSpace(item) == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		k = strings.TrimSpace(k)
		if !ok {
			return fmt.Errorf("metadata %q: want key=value", item)
		}
		if k == "" {
			return fmt.Errorf("metadata %q: empty key", item)
		}
		m[k] = v
	}
	return nil
}

// splitEscaped splits s on commas not preceded by a backslash and resolves
// the escapes `\,` and `\\`.
func splitEscaped(s string) []string {
	var items []string
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && (s[i+1] == ',' || s[i+1] == '\\'):
			b.WriteByte(s[i+1])
			i++
		case c == ',':
			items = append(items, b.String())
			b.Reset()
		default:
			b.WriteByte(c)
		}
	}
	return append(items, b.String())
}

// ParseFile reads key=value lines from r into m. Each line is split on its
// first '='; the value is the rest of the line as it is (no comma splitting,
// no escapes; a trailing "\r" is dropped). Blank lines and lines starting
// with '#' are skipped. name is used in error messages.
func ParseFile(r io.Reader, name string, m map[string]string) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok {
			return fmt.Errorf("%s:%d: want key=value", name, n)
		}
		if k == "" {
			return fmt.Errorf("%s:%d: empty key", name, n)
		}
		m[k] = v
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Flag is a flag.Value collecting repeated --metadata arguments.
type Flag struct {
	values []string
}

// String returns the arguments given so far, for flag's usage output.
func (f *Flag) String() string {
	if f == nil {
		return ""
	}
	return strings.Join(f.values, " ")
}

// Set records one --metadata argument after checking its syntax.
func (f *Flag) Set(s string) error {
	if err := ParseList(s, map[string]string{}); err != nil {
		return err
	}
	f.values = append(f.values, s)
	return nil
}

// Build returns the metadata from the file (if file is not empty) and then
// the --metadata arguments in order, later keys overwriting earlier ones.
func (f *Flag) Build(file string) (map[string]string, error) {
	m := map[string]string{}
	if file != "" {
		fh, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer fh.Close()
		if err := ParseFile(fh, file, m); err != nil {
			return nil, err
		}
	}
	for _, v := range f.values {
		if err := ParseList(v, m); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Format renders m as sorted, comma-separated key=value pairs, escaping
// backslashes and commas so that ParseList reads it back (keys containing
// '=' excepted).
func Format(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	esc := strings.NewReplacer(`\`, `\\`, ",", `\,`)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = esc.Replace(k) + "=" + esc.Replace(m[k])
	}
	return strings.Join(parts, ",")
}
