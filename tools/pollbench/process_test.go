package main

import (
	"testing"
)

func TestMetricValue(t *testing.T) {
	body := "# HELP go_memstats_mallocs_total x\n# TYPE go_memstats_mallocs_total counter\ngo_memstats_mallocs_total_other 1\ngo_memstats_mallocs_total 1.234e+06\n"
	if v, err := metricValue(body, "go_memstats_mallocs_total"); err != nil || v != 1.234e6 {
		t.Errorf("metricValue = %v, %v; want 1.234e6", v, err)
	}
	if _, err := metricValue(body, "absent"); err == nil {
		t.Error("an absent metric read without an error")
	}
}
