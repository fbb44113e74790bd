package proc

import (
	"testing"
	"time"
)

func TestStatusBytes(t *testing.T) {
	status := "Name:\tsleep\nVmHWM:\t    2048 kB\nVmRSS:\t1024 kB\nThreads:\t1\n"
	tests := []struct {
		field   string
		want    int64
		wantErr bool
	}{
		{"VmHWM", 2 << 20, false},
		{"VmRSS", 1 << 20, false},
		{"Threads", 0, true}, // no unit
		{"VmSwap", 0, true},  // absent
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			got, err := statusBytes(status, tt.field)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("statusBytes(%s) = %d, %v; want %d, error %v", tt.field, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestStatCPU(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    time.Duration
		wantErr bool
	}{
		{"plain", "42 (redis) S 1 42 42 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 4 0", 2 * time.Second, false},
		{"spaces and parentheses in the name", "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 4 0", 100 * time.Millisecond, false},
		{"no name", "42 S 1", 0, true},
		{"too short", "42 (x) S 1 2", 0, true},
		{"not a number", "42 (x) S 1 42 42 0 -1 4194560 100 0 0 0 x 3 0 0 20 0 4 0", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := statCPU(tt.stat)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("statCPU = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
