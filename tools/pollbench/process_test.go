package main

import (
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       time.Duration
		wantErr    bool
	}{
		{"plain", "42 (redis-session) S 1 42 42 0 -1 4194560 1 0 0 0 150 25 0 0 20 0 8 0 100 0 0", 1750 * time.Millisecond, false},
		{"name with spaces and parens", "7 (a b) c)) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0", 70 * time.Millisecond, false},
		{"truncated", "7 (x) R 1 2", 0, true},
		{"no name", "garbage", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatCPU(tc.stat)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseStatCPU = %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestMetricValue(t *testing.T) {
	body := "# HELP go_memstats_mallocs_total x\n# TYPE go_memstats_mallocs_total counter\ngo_memstats_mallocs_total_other 1\ngo_memstats_mallocs_total 1.234e+06\n"
	if v, err := metricValue(body, "go_memstats_mallocs_total"); err != nil || v != 1.234e6 {
		t.Errorf("metricValue = %v, %v; want 1.234e6", v, err)
	}
	if _, err := metricValue(body, "absent"); err == nil {
		t.Error("an absent metric read without an error")
	}
}
