package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

func TestNewcomersServed(t *testing.T) {
	tests := []struct {
		name   string
		probes []probe
		want   []string // substrings of the miss; none when empty
	}{
		{"no probe ran", nil, []string{"tried no new trigger"}},
		{"every kind within 1s", []probe{
			{kind: "poll", answer: 20 * time.Millisecond},
			{kind: "push", answer: time.Second, change: time.Second},
		}, nil},
		{"an answer past the aim", []probe{{kind: "target", answer: 1001 * time.Millisecond}}, []string{"target trigger answered in 1.001s"}},
		{"a change past the aim", []probe{{kind: "notifyChannel", answer: time.Millisecond, change: 5 * time.Second}}, []string{"notifyChannel change pushed in 5s"}},
		{"an error, however fast", []probe{
			{kind: "databaseIndex", answer: time.Millisecond, err: errors.New("ResourceExhausted: REDIS_MAX_DATABASES")},
			{kind: "push", answer: 2 * time.Second},
		}, []string{"databaseIndex trigger: ResourceExhausted: REDIS_MAX_DATABASES", "push trigger answered in 2s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := newcomersServed(&result{probes: tt.probes})
			if len(tt.want) == 0 && got != "" {
				t.Fatalf("newcomersServed = %q, want no miss", got)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("newcomersServed = %q, want it to contain %q", got, w)
				}
			}
		})
	}
}

func TestScaleRunFailures(t *testing.T) {
	r := &scaleRun{
		codes: map[string]map[codes.Code]int{
			"GetMetrics":     {codes.OK: 100, codes.ResourceExhausted: 2},
			"StreamIsActive": {codes.OK: 50, codes.DeadlineExceeded: 1},
		},
		unanswered: map[string]int{"GetMetricSpec": 3},
		writes:     10,
		pushLat:    make([]time.Duration, 8),
	}
	// 2 refused + 1 late stream + 3 unanswered + 2 writes never pushed.
	if got := r.failures(); got != 8 {
		t.Errorf("failures() = %d, want 8", got)
	}
}

func TestNewScaleRunLayout(t *testing.T) {
	o := scaleOptions{sos: 100, namespaces: 10, push: 50, targets: 10, sample: 5, interval: 10 * time.Second}
	r := newScaleRun("redis-session", o, nil)
	nss := map[string]int{}
	var push, targets, sample int
	for _, s := range r.sos {
		nss[s.ref.Namespace]++
		if s.push {
			push++
		}
		if s.ref.ScalerMetadata["sessionSizeKey"] != "" {
			targets++
			if !s.push || s.sample {
				t.Errorf("%s reads a target but is not push or is in the sample", s.ref.Name)
			}
		}
		if s.sample {
			sample++
		}
		if s.phase < 0 || s.phase >= o.interval {
			t.Errorf("%s's phase %v is outside the interval", s.ref.Name, s.phase)
		}
	}
	if len(r.sos) != 100 || len(nss) != 10 || push != 50 || targets != 10 || sample != 5 {
		t.Errorf("%d ScaledObjects in %d namespaces, %d push, %d targets, %d sampled; want 100, 10, 50, 10, 5",
			len(r.sos), len(nss), push, targets, sample)
	}
	for ns, n := range nss {
		if n != 10 {
			t.Errorf("namespace %s holds %d ScaledObjects, want 10", ns, n)
		}
	}
	if pg := newScaleRun("postgres-query", scaleOptions{pgSOs: 30, namespaces: 50, interval: time.Second}, nil); len(pg.sos) != 30 || pg.nsCount != 5 {
		t.Errorf("postgres-query: %d ScaledObjects in %d namespaces, want 30 in 5", len(pg.sos), pg.nsCount)
	}
}

func TestEvilFilled(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]float64
		miss   bool
	}{
		{"every place held", map[string]float64{"evilHeld": 200}, false},
		{"one short", map[string]float64{"evilHeld": 199}, true},
		{"a flood sets none", map[string]float64{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := evilFilled(&result{n: 200, values: tt.values}); (got != "") != tt.miss {
				t.Errorf("evilFilled = %q, want a miss: %v", got, tt.miss)
			}
		})
	}
}
