package redissession

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		name    string
		md      map[string]string
		cluster bool
		want    spec
	}{
		{
			name: "defaults",
			md:   map[string]string{"scalerAddress": "redis-session:9090", "enableTLS": "false"},
			want: spec{metricName: "session_size", sessionSize: 100, mode: modeDBSize, db: 2},
		},
		{
			name: "pattern with everything",
			md: map[string]string{"mode": "pattern", "keyPattern": "spring:session:sessions:*", "sessionSize": "12.5",
				"activationSessionSize": "3", "metricName": "web.sessions", "databaseIndex": "7", "onError": "inactive",
				"sessionSizeKey": "capacity"},
			want: spec{metricName: "web.sessions", sessionSize: 12.5, activation: 3, mode: modePattern,
				keyPattern: "spring:session:sessions:*", db: 7, onError: scaler.ErrorInactive, sessionSizeKey: "capacity"},
		},
		{
			name: "set",
			md:   map[string]string{"mode": "set", "key": "sessions"},
			want: spec{metricName: "session_size", sessionSize: 100, mode: modeSet, key: "sessions", db: 2},
		},
		{
			name: "zset now",
			md:   map[string]string{"mode": "zset", "key": "expiry", "minScore": "now"},
			want: spec{metricName: "session_size", sessionSize: 100, mode: modeZSet, key: "expiry", minScore: "now", db: 2},
		},
		{
			name: "zset now_ms",
			md:   map[string]string{"mode": "zset", "key": "expiry", "minScore": "NOW_MS"},
			want: spec{metricName: "session_size", sessionSize: 100, mode: modeZSet, key: "expiry", minScore: "now_ms", db: 2},
		},
		{
			name: "zset number in canonical form",
			md:   map[string]string{"mode": "zset", "key": "expiry", "minScore": "1.50"},
			want: spec{metricName: "session_size", sessionSize: 100, mode: modeZSet, key: "expiry", minScore: "1.5", db: 2},
		},
		{
			name: "counter with activeKey",
			md:   map[string]string{"mode": "counter", "key": "active_sessions", "activeKey": "scale:on"},
			want: spec{metricName: "session_size", sessionSize: 100, mode: modeCounter, key: "active_sessions", activeKey: "scale:on", db: 2},
		},
		{
			name:    "cluster database 0",
			md:      map[string]string{"mode": "hash", "key": "h", "databaseIndex": "0"},
			cluster: true,
			want:    spec{metricName: "session_size", sessionSize: 100, mode: modeHash, key: "h"},
		},
		{
			name: "blank values are absent",
			md:   map[string]string{"mode": " ", "sessionSize": "", "activeKey": "  "},
			want: spec{metricName: "session_size", sessionSize: 100, mode: modeDBSize, db: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defaultDB := 2
			if tt.cluster {
				defaultDB = 0
			}
			got, err := parseSpec(metadata.NewParser(tt.md), defaultDB, tt.cluster)
			if err != nil {
				t.Fatalf("parseSpec: %v", err)
			}
			if *got != tt.want {
				t.Errorf("parseSpec =\n%+v\nwant\n%+v", *got, tt.want)
			}
		})
	}
}

func TestParseRejectsBadMetadata(t *testing.T) {
	tests := []struct {
		name    string
		md      map[string]string
		cluster bool
		key     string // the metadata key the message must name
	}{
		{"unknown mode", map[string]string{"mode": "nope"}, false, "mode"},
		{"sessionSize not a number", map[string]string{"sessionSize": "abc"}, false, "sessionSize"},
		{"sessionSize negative", map[string]string{"sessionSize": "-1"}, false, "sessionSize"},
		{"sessionSize zero", map[string]string{"sessionSize": "0"}, false, "sessionSize"},
		{"sessionSize infinite", map[string]string{"sessionSize": "+Inf"}, false, "sessionSize"},
		{"activation negative", map[string]string{"activationSessionSize": "-1"}, false, "activationSessionSize"},
		{"pattern without keyPattern", map[string]string{"mode": "pattern"}, false, "keyPattern"},
		{"set without key", map[string]string{"mode": "set"}, false, "key"},
		{"counter without key", map[string]string{"mode": "counter"}, false, "key"},
		{"key without its mode", map[string]string{"key": "sessions"}, false, "key"},
		{"keyPattern with mode set", map[string]string{"mode": "set", "key": "s", "keyPattern": "sess:*"}, false, "keyPattern"},
		{"key with mode pattern", map[string]string{"mode": "pattern", "keyPattern": "sess:*", "key": "s"}, false, "key"},
		{"minScore with mode set", map[string]string{"mode": "set", "key": "s", "minScore": "now"}, false, "minScore"},
		{"minScore not a number", map[string]string{"mode": "zset", "key": "z", "minScore": "yesterday"}, false, "minScore"},
		{"minScore NaN", map[string]string{"mode": "zset", "key": "z", "minScore": "NaN"}, false, "minScore"},
		{"databaseIndex not a number", map[string]string{"databaseIndex": "x"}, false, "databaseIndex"},
		{"databaseIndex negative", map[string]string{"databaseIndex": "-1"}, false, "databaseIndex"},
		{"databaseIndex on a cluster", map[string]string{"databaseIndex": "1"}, true, "databaseIndex"},
		{"onError unknown", map[string]string{"onError": "maybe"}, false, "onError"},
		{"metricName with a space", map[string]string{"metricName": "Bad Name"}, false, "metricName"},
		{"activeKey and activation", map[string]string{"activeKey": "on", "activationSessionSize": "5"}, false, "activationSessionSize"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &Backend{cluster: tt.cluster}
			_, err := b.Parse(metadata.NewParser(tt.md))
			if err == nil {
				t.Fatal("Parse accepted bad metadata")
			}
			if code := status.Code(err); code != codes.InvalidArgument {
				t.Errorf("code = %v, want InvalidArgument (%v)", code, err)
			}
			if !strings.Contains(err.Error(), `"`+tt.key+`"`) {
				t.Errorf("error %q does not name the key %q", err, tt.key)
			}
		})
	}
}

func TestProbeKeys(t *testing.T) {
	key := func(md map[string]string) string {
		t.Helper()
		s, err := parseSpec(metadata.NewParser(md), 0, false)
		if err != nil {
			t.Fatal(err)
		}
		return s.probeKey()
	}
	base := map[string]string{"mode": "zset", "key": "z", "minScore": "now"}
	with := func(k, v string) map[string]string {
		md := map[string]string{k: v}
		for bk, bv := range base {
			if _, ok := md[bk]; !ok {
				md[bk] = bv
			}
		}
		return md
	}
	// The target, activation, metric name and error policy do not change
	// what Redis is asked: such triggers share one call.
	for _, md := range []map[string]string{
		with("sessionSize", "5"), with("activationSessionSize", "2"), with("metricName", "other"), with("onError", "inactive"),
	} {
		if got, want := key(md), key(base); got != want {
			t.Errorf("key(%v) = %q, want the shared %q", md, got, want)
		}
	}
	// Everything Redis is asked changes the key.
	seen := map[string]bool{key(base): true}
	for _, md := range []map[string]string{
		with("key", "y"), with("minScore", "now_ms"), with("minScore", "10"), with("databaseIndex", "1"),
		with("activeKey", "on"), {"mode": "set", "key": "z"}, {"mode": "pattern", "keyPattern": "z"}, {},
		{"mode": "set", "key": `z" keyPattern="`},
	} {
		k := key(md)
		if seen[k] {
			t.Errorf("key(%v) = %q is shared with another question", md, k)
		}
		seen[k] = true
	}
}

func TestZCountMinFollowsTheClock(t *testing.T) {
	now := time.Unix(1700000000, 123456789)
	for _, tt := range []struct{ minScore, want string }{
		{"now", "1700000000"}, {"now_ms", "1700000000123"}, {"-2.5", "-2.5"},
	} {
		s := spec{minScore: tt.minScore}
		if got := s.zcountMin(now); got != tt.want {
			t.Errorf("zcountMin(%q) = %q, want %q", tt.minScore, got, tt.want)
		}
	}
}

// TestMisspeltKey: a typo of a key is refused rather than silently replaced
// by its default (sesionSize=10 would scale on sessionSize=100).
func TestMisspeltKey(t *testing.T) {
	s := scalertest.Serve(t, &Backend{}, scalertest.Options{})
	ctx := scalertest.Context(t, 10*time.Second)
	_, err := s.Client.GetMetricSpec(ctx, scalertest.Ref(map[string]string{"mode": "dbsize", "sesionSize": "10"}))
	scalertest.WantStatus(t, err, codes.InvalidArgument, `metadata "sesionSize" is not a known key: did you mean "sessionSize"?`)
	_, err = s.Client.GetMetricSpec(ctx, scalertest.Ref(map[string]string{"mode": "set", "key": "s", "minscore": "now"}))
	scalertest.WantStatus(t, err, codes.InvalidArgument, `did you mean "minScore"?`)
}
