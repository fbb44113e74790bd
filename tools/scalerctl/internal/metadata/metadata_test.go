package metadata

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseList(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr string
	}{
		{name: "one pair", in: "a=1", want: map[string]string{"a": "1"}},
		{name: "several pairs", in: "a=1,b=2", want: map[string]string{"a": "1", "b": "2"}},
		{name: "value with equals", in: "query=SELECT x FROM t WHERE y=1", want: map[string]string{"query": "SELECT x FROM t WHERE y=1"}},
		{name: "escaped comma", in: `hosts=a\,b\,c,n=3`, want: map[string]string{"hosts": "a,b,c", "n": "3"}},
		{name: "escaped backslash before comma", in: `p=x\\,q=y`, want: map[string]string{"p": `x\`, "q": "y"}},
		{name: "other backslashes kept", in: `re=\d+\.\w`, want: map[string]string{"re": `\d+\.\w`}},
		{name: "empty value", in: "a=", want: map[string]string{"a": ""}},
		{name: "key trimmed, value not", in: "a=1, b= 2", want: map[string]string{"a": "1", "b": " 2"}},
		{name: "empty items skipped", in: "a=1,,b=2,", want: map[string]string{"a": "1", "b": "2"}},
		{name: "later wins", in: "a=1,a=2", want: map[string]string{"a": "2"}},
		{name: "empty", in: "", want: map[string]string{}},
		{name: "missing equals", in: "a=1,b", wantErr: `"b": want key=value`},
		{name: "empty key", in: "=1", wantErr: "empty key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]string{}
			err := ParseList(tt.in, got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseList(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseList(%q): %v", tt.in, err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("ParseList(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseFile(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr string
	}{
		{name: "lines", in: "a=1\nb=x=y\r\n\n# comment\n  # indented comment\nc=1,2\\,3\n",
			want: map[string]string{"a": "1", "b": "x=y", "c": `1,2\,3`}},
		{name: "no trailing newline", in: "a=1", want: map[string]string{"a": "1"}},
		{name: "bad line", in: "a=1\nnope\n", wantErr: "f.txt:2: want key=value"},
		{name: "empty key", in: " =1\n", wantErr: "f.txt:1: empty key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]string{}
			err := ParseFile(strings.NewReader(tt.in), "f.txt", got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseFile error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("ParseFile = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFlagBuild(t *testing.T) {
	file := filepath.Join(t.TempDir(), "meta.txt")
	if err := os.WriteFile(file, []byte("a=file\nb=file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var f Flag
	for _, arg := range []string{"b=flag1,c=1", "c=flag2"} {
		if err := f.Set(arg); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Set("broken"); err == nil {
		t.Error("Set(broken) succeeded, want an error")
	}
	got, err := f.Build(file)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "file", "b": "flag1", "c": "flag2"}
	if !maps.Equal(got, want) {
		t.Errorf("Build = %q, want %q", got, want)
	}
	if _, err := f.Build(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("Build with a missing file succeeded")
	}
}

func TestFormatRoundTrip(t *testing.T) {
	in := map[string]string{"a": "1", "list": "x,y", "path": `C:\dir\`, "eq": "k=v", "comma": `\,`}
	s := Format(in)
	got := map[string]string{}
	if err := ParseList(s, got); err != nil {
		t.Fatalf("ParseList(Format) %q: %v", s, err)
	}
	if !maps.Equal(got, in) {
		t.Errorf("round trip of %q via %q = %q", in, s, got)
	}
	if want := `a=1,comma=\\\,,eq=k=v,list=x\,y,path=C:\\dir\\`; s != want {
		t.Errorf("Format = %q, want %q", s, want)
	}
}
