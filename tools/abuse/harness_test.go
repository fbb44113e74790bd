package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

func TestEvaluate(t *testing.T) {
	ok := func() *result {
		return &result{
			peakRSS: 40 << 20, peakConns: 3, shutdownTimeout: defaultShutdown, exit: time.Second,
			innocent: []time.Duration{time.Millisecond, 900 * time.Millisecond},
			codes:    map[codes.Code]int{codes.InvalidArgument: 5}, values: map[string]float64{},
		}
	}
	redisCase := &abuseCase{service: "redis-session"}
	pgCase := &abuseCase{service: "postgres-query"}
	tests := []struct {
		name   string
		c      *abuseCase
		change func(r *result)
		want   []string // substrings of the aims missed, in order; none when empty
	}{
		{"every aim met", redisCase, func(*result) {}, nil},
		{"peak RSS at the aim", pgCase, func(r *result) { r.peakRSS = 150 << 20 }, []string{"peak RSS 150 MB"}},
		{"slow innocent", pgCase, func(r *result) { r.innocent = append(r.innocent, 1100*time.Millisecond) }, []string{"innocent GetMetrics max 1.1s"}},
		{"innocent errors", pgCase, func(r *result) { r.innocentErrs = 2 }, []string{"failed 2 times"}},
		{"innocent aim off", &abuseCase{service: "postgres-query", noInnocentAim: true}, func(r *result) {
			r.innocentErrs = 2
			r.servingErr = errors.New("GetMetrics after the attack took 3s")
		}, nil},
		{"exited counts even with the innocent aim off", &abuseCase{service: "postgres-query", noInnocentAim: true}, func(r *result) {
			r.servingErr = errors.New("the scaler exited during the attack")
		}, []string{"not serving after"}},
		{"49 Redis connections", redisCase, func(r *result) { r.peakConns = 49 }, nil},
		{"50 Redis connections", redisCase, func(r *result) { r.peakConns = 50 }, []string{"50 Redis connections"}},
		{"PostgreSQL connections are not capped at 50", pgCase, func(r *result) { r.peakConns = 60 }, nil},
		{"Redis refuses clients", redisCase, func(r *result) { r.acceptingErr = errors.New("max clients") }, []string{"Redis refuses new clients"}},
		{"exit at the aim", pgCase, func(r *result) { r.exit = 11 * time.Second }, nil},
		{"exit past the aim", pgCase, func(r *result) { r.exit = 11*time.Second + time.Millisecond }, []string{"exit 11.0s"}},
		{"killed", pgCase, func(r *result) { r.killed = true }, []string{"exit"}},
		{"own check", &abuseCase{service: "postgres-query", checks: []func(*result) string{allCodes(codes.InvalidArgument)}},
			func(r *result) { r.codes[codes.Unavailable] = 1 }, []string{"want every call InvalidArgument, got InvalidArgument 5, Unavailable 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok()
			tt.change(r)
			(&runner{}).evaluate(tt.c, r)
			if len(r.missed) != len(tt.want) {
				t.Fatalf("missed = %q, want %d aims %q", r.missed, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(r.missed[i], w) {
					t.Errorf("missed[%d] = %q, want it to contain %q", i, r.missed[i], w)
				}
			}
		})
	}
}

func TestEnvDuration(t *testing.T) {
	env := []string{"BACKEND_TIMEOUT=60s", "SHUTDOWN_TIMEOUT=2s", "BAD=x"}
	if got := envDuration(env, "SHUTDOWN_TIMEOUT", defaultShutdown); got != 2*time.Second {
		t.Errorf("SHUTDOWN_TIMEOUT = %v, want 2s", got)
	}
	if got := envDuration(env, "TIMEOUT", defaultShutdown); got != defaultShutdown {
		t.Errorf("a suffix matched: got %v", got)
	}
	if got := envDuration(env, "BAD", time.Minute); got != time.Minute {
		t.Errorf("an unparsable value: got %v, want the default", got)
	}
}

func TestScaled(t *testing.T) {
	rn := &runner{scale: 0.05}
	if got := rn.scaled(100_000); got != 5000 {
		t.Errorf("scaled(100000) = %d, want 5000", got)
	}
	if got := rn.scaled(1); got != 1 {
		t.Errorf("scaled(1) = %d, want at least 1", got)
	}
	if got := rn.holdScale(10 * time.Second); got != 3*time.Second {
		t.Errorf("holdScale(10s) = %v, want the 30 %% floor", got)
	}
}

func TestCodeChecks(t *testing.T) {
	r := &result{
		codes:       map[codes.Code]int{codes.InvalidArgument: 3, codes.ResourceExhausted: 1},
		codeSamples: map[codes.Code]string{codes.InvalidArgument: "over the limit of 16384 (MAX_METADATA_BYTES)", codes.ResourceExhausted: "grpc: received message larger than max"},
	}
	tests := []struct {
		name  string
		check func(*result) string
		miss  bool
	}{
		{"one code, two got", allCodes(codes.InvalidArgument), true},
		{"either code", allCodes(codes.InvalidArgument, codes.ResourceExhausted), false},
		{"a message without the variable", messagesContain("MAX_METADATA_BYTES"), true},
		{"every message names grpc or the variable", messagesContain(""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.check(r); (got != "") != tt.miss {
				t.Errorf("check = %q, want a miss: %v", got, tt.miss)
			}
		})
	}
}
