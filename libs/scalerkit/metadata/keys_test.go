package metadata_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
)

// readSession asks for the keys a session backend would.
func readSession(p *metadata.Parser) {
	p.Float("sessionSize", 100, metadata.Positive[float64]())
	p.Float("activationSessionSize", 0, metadata.Any[float64]())
	p.String("key", "")
	p.Has("mode")
}

func TestCheckKeys(t *testing.T) {
	tests := []struct {
		name         string
		md           map[string]string
		wantKey      string // the key an *UnknownKeyError names
		wantSuggest  string
		wantWarnings []string
	}{
		{name: "only asked-about keys", md: map[string]string{"sessionSize": "10", "mode": "set"}},
		{name: "KEDA's own keys", md: map[string]string{
			"scalerAddress": "s:9090", "enableTLS": "true", "unsafeSsl": "false", "caCert": "pem",
			"tlsClientCert": "pem", "tlsClientKey": "pem", "tlsCertFile": "/x"}},
		{name: "a letter missing", md: map[string]string{"sesionSize": "10"}, wantKey: "sesionSize", wantSuggest: "sessionSize"},
		{name: "another case", md: map[string]string{"SessionSize": "10"}, wantKey: "SessionSize", wantSuggest: "sessionSize"},
		{name: "all lower case", md: map[string]string{"activationsessionsize": "1"}, wantKey: "activationsessionsize", wantSuggest: "activationSessionSize"},
		{name: "neighbours swapped", md: map[string]string{"sessoinSize": "10"}, wantKey: "sessoinSize", wantSuggest: "sessionSize"},
		{name: "two edits", md: map[string]string{"sesionSise": "10"}, wantKey: "sesionSise", wantSuggest: "sessionSize"},
		{name: "a short key one edit away", md: map[string]string{"kye": "a"}, wantKey: "kye", wantSuggest: "key"},
		{name: "the typo is named even beside the key", md: map[string]string{"sessionSize": "5", "sesionSize": "10"}, wantKey: "sesionSize", wantSuggest: "sessionSize"},
		{name: "three edits is another key", md: map[string]string{"sessionsCount": "1"},
			wantWarnings: []string{`metadata "sessionsCount" is not a known key: ignored`}},
		{name: "a short unrelated key", md: map[string]string{"db": "1"},
			wantWarnings: []string{`metadata "db" is not a known key: ignored`}},
		{name: "close to a KEDA key", md: map[string]string{"enableTls": "true"},
			wantWarnings: []string{`metadata "enableTls" is not a known key: ignored (KEDA reads "enableTLS")`}},
		{name: "warnings sorted", md: map[string]string{"zz": "1", "aa": "1", "scalerAddress": "x"},
			wantWarnings: []string{`metadata "aa" is not a known key: ignored`, `metadata "zz" is not a known key: ignored`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := metadata.NewParser(tt.md)
			readSession(p)
			warnings, err := p.CheckKeys()
			if tt.wantKey != "" {
				var uk *metadata.UnknownKeyError
				if !errors.As(err, &uk) {
					t.Fatalf("CheckKeys() error = %v, want an *UnknownKeyError", err)
				}
				if uk.Key != tt.wantKey || uk.Suggestion != tt.wantSuggest {
					t.Errorf("UnknownKeyError{%q, %q}, want {%q, %q}", uk.Key, uk.Suggestion, tt.wantKey, tt.wantSuggest)
				}
				st, _ := status.FromError(err)
				want := fmt.Sprintf("metadata %q is not a known key: did you mean %q?", tt.wantKey, tt.wantSuggest)
				if st.Code() != codes.InvalidArgument || st.Message() != want {
					t.Errorf("status = %v %q, want InvalidArgument %q", st.Code(), st.Message(), want)
				}
				return
			}
			if err != nil {
				t.Fatalf("CheckKeys() error = %v", err)
			}
			if strings.Join(warnings, "\n") != strings.Join(tt.wantWarnings, "\n") {
				t.Errorf("warnings = %q, want %q", warnings, tt.wantWarnings)
			}
		})
	}
}

func TestCheckKeysBoundsWarnings(t *testing.T) {
	md := map[string]string{}
	n := metadata.MaxWarnings + 5
	for i := range n {
		md[fmt.Sprintf("unrelated%03d", i)] = "x"
	}
	md[strings.Repeat("k", 10000)] = "x"
	p := metadata.NewParser(md)
	readSession(p)
	warnings, err := p.CheckKeys()
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != metadata.MaxWarnings+1 {
		t.Fatalf("%d warnings, want %d: %q", len(warnings), metadata.MaxWarnings+1, warnings)
	}
	if last, want := warnings[len(warnings)-1], fmt.Sprintf("%d more unknown metadata keys ignored", n+1-metadata.MaxWarnings); last != want {
		t.Errorf("last warning %q, want %q", last, want)
	}
	for _, w := range warnings {
		if len(w) > metadata.ClipLen+100 {
			t.Errorf("warning of %d bytes not clipped", len(w))
		}
	}
}

// A key is known once the backend asked about it, whichever method asked
// and whether or not it was set.
func TestCheckKeysCountsEveryAsk(t *testing.T) {
	md := map[string]string{"a": "x", "b": "true", "c": "1", "d": "1", "e": "1s", "f": "x", "g": "x", "h": "1"}
	p := metadata.NewParser(md)
	p.String("a", "")
	p.Bool("b", false)
	p.Int("c", 0, metadata.Any[int64]())
	p.Float("d", 0, metadata.Any[float64]())
	p.Duration("e", 0, metadata.Range[time.Duration]{})
	p.OneOf("f", "x", "x")
	p.RequiredString("g", "x")
	p.RequiredFloat("h", metadata.Any[float64]())
	if w, err := p.CheckKeys(); err != nil || len(w) != 0 {
		t.Errorf("CheckKeys() = %q, %v; want nothing", w, err)
	}
}

func BenchmarkCheckKeys(b *testing.B) {
	md := map[string]string{"sessionSize": "10", "mode": "set", "key": "k", "scalerAddress": "s:9090", "unrelated": "x"}
	for b.Loop() {
		p := metadata.NewParser(md)
		readSession(p)
		if _, err := p.CheckKeys(); err != nil {
			b.Fatal(err)
		}
	}
}
