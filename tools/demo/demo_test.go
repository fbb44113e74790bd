package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCleanLogs(t *testing.T) {
	tests := []struct {
		name     string
		failed   bool
		wantKept bool
	}{
		{"success removes the logs and names none", false, false},
		{"failure keeps the logs and names them", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			d := &demo{}
			for _, n := range []string{"demo-redis-session.log", "demo-postgres-query.log"} {
				p := filepath.Join(dir, n)
				if err := os.WriteFile(p, []byte("msg=serving\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				d.logs = append(d.logs, p)
			}
			var out bytes.Buffer
			d.cleanLogs(tt.failed, &out)
			for _, p := range d.logs {
				_, err := os.Stat(p)
				if kept := err == nil; kept != tt.wantKept {
					t.Errorf("%s kept = %v, want %v", p, kept, tt.wantKept)
				}
				if named := strings.Contains(out.String(), p); named != tt.wantKept {
					t.Errorf("%s named = %v, want %v:\n%s", p, named, tt.wantKept, out.String())
				}
			}
		})
	}
}

// A step whose outcome is not the one the demo prints fails the demo.
func TestOutcomeCheck(t *testing.T) {
	want := outcome{1, "GetMetrics fails with Unavailable", []string{`code = Unavailable`}}
	tests := []struct {
		name   string
		exit   int
		out    string
		wantOK bool
	}{
		{"as expected", 1, "scalerctl: GetMetrics: code = Unavailable desc = connection refused\n", true},
		{"another status", 0, "value 120\n", false},
		{"another error", 1, "scalerctl: GetMetrics: code = Internal desc = bug\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := want.check(tt.exit, tt.out)
			if (err == nil) != tt.wantOK {
				t.Errorf("check(%d, %q) = %v, want ok: %v", tt.exit, tt.out, err, tt.wantOK)
			}
		})
	}
	if s := want.String(); s != "GetMetrics fails with Unavailable (exit status 1)" {
		t.Errorf("String() = %q: want what it shows and the status", s)
	}
}
