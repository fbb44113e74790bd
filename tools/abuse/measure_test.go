package main

import (
	"testing"
	"time"
)

func TestInfoInt(t *testing.T) {
	info := "# Clients\r\nconnected_clients:9993\r\nblocked_clients:0\r\n# Memory\r\nused_memory:1089456\r\nused_memory_human:1.04M\r\n"
	tests := []struct {
		field   string
		want    int64
		wantErr bool
	}{
		{"connected_clients", 9993, false},
		{"used_memory", 1089456, false},
		{"used_memory_human", 0, true}, // not an integer
		{"maxclients", 0, true},        // missing
		{"connected", 0, true},         // a prefix is not the field
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			got, err := infoInt(info, tt.field)
			if (err != nil) != tt.wantErr {
				t.Fatalf("infoInt(%s) error = %v, want error %v", tt.field, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("infoInt(%s) = %d, want %d", tt.field, got, tt.want)
			}
		})
	}
}

func TestMetricValue(t *testing.T) {
	text := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 10005
go_goroutines_extra 3
go_memstats_alloc_bytes 1.2345e+06
kedascalers_open_streams{rpc="StreamIsActive"} 4
`
	tests := []struct {
		name    string
		want    float64
		wantErr bool
	}{
		{"go_goroutines", 10005, false},
		{"go_memstats_alloc_bytes", 1234500, false},
		{"go_threads", 0, true},               // missing
		{"kedascalers_open_streams", 0, true}, // labelled samples are not read
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := metricValue(text, tt.name)
			if (err != nil) != tt.wantErr {
				t.Fatalf("metricValue(%s) error = %v, want error %v", tt.name, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("metricValue(%s) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}

func TestWarnLines(t *testing.T) {
	log := []byte(`{"time":"x","level":"INFO","msg":"serving"}
{"time":"x","level":"WARN","msg":"too many channels"}
time=x level=WARN msg="too many channels"
{"time":"x","level":"INFO","msg":"WARN in the message is not a level"}
{"time":"x","level":"ERROR","msg":"backend read failed"}
time=x level=ERROR msg="backend read failed"
`)
	if got := warnLines(log); got != 4 {
		t.Errorf("warnLines = %d, want 4 (WARN and ERROR)", got)
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		d := make([]time.Duration, len(v))
		for i, x := range v {
			d[i] = time.Duration(x) * time.Millisecond
		}
		return d
	}
	tests := []struct {
		name string
		d    []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 50, 7 * time.Millisecond},
		{"median of odd", ms(5, 1, 3), 50, 3 * time.Millisecond},
		{"median of even is the lower", ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{"max", ms(4, 1, 9, 2), 100, 9 * time.Millisecond},
		{"p99 of 100", ms(make([]int, 99)...), 99, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.d, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.d, tt.p, got, tt.want)
			}
		})
	}
	d := ms(3, 1, 2)
	percentile(d, 50)
	if d[0] != 3*time.Millisecond {
		t.Error("percentile sorted its argument in place")
	}
}

func TestMetricSum(t *testing.T) {
	text := `# HELP kedascalers_open_streams Push streams open.
kedascalers_open_streams{rpc="StreamIsActive"} 200
kedascalers_open_streams{rpc="StreamMetricSpec"} 4100
kedascalers_open_streams_other 7
kedascalers_backend_request_duration_seconds_count{kind="value",result="ok"} 12
kedascalers_backend_request_duration_seconds_count 3
`
	tests := []struct {
		name string
		want float64
	}{
		{"kedascalers_open_streams", 4300},
		{"kedascalers_backend_request_duration_seconds_count", 15},
		{"go_goroutines", 0},
	}
	for _, tt := range tests {
		if got := metricSum(text, tt.name); got != tt.want {
			t.Errorf("metricSum(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
}
