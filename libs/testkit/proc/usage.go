package proc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Usage is what a running process has cost so far, from /proc.
type Usage struct {
	// PeakRSS is the highest resident set size so far (VmHWM), in bytes.
	PeakRSS int64
	// RSS is the resident set size now (VmRSS), in bytes.
	RSS int64
	// CPU is the CPU time used so far, user and system (utime+stime).
	CPU time.Duration
}

// Usage reads the process's usage from /proc; an error once it has exited.
func (p *Proc) Usage() (Usage, error) { return UsageOf(p.Pid()) }

// UsageOf reads the usage of process pid from /proc/<pid>/status and stat.
func UsageOf(pid int) (Usage, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Usage{}, fmt.Errorf("usage of pid %d: %w", pid, err)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Usage{}, fmt.Errorf("usage of pid %d: %w", pid, err)
	}
	var u Usage
	if u.PeakRSS, err = statusBytes(string(status), "VmHWM"); err != nil {
		return Usage{}, fmt.Errorf("usage of pid %d: %w", pid, err)
	}
	if u.RSS, err = statusBytes(string(status), "VmRSS"); err != nil {
		return Usage{}, fmt.Errorf("usage of pid %d: %w", pid, err)
	}
	if u.CPU, err = statCPU(string(stat)); err != nil {
		return Usage{}, fmt.Errorf("usage of pid %d: %w", pid, err)
	}
	return u, nil
}

// statusBytes returns a "<n> kB" field of /proc/<pid>/status, in bytes.
func statusBytes(status, field string) (int64, error) {
	for line := range strings.SplitSeq(status, "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || name != field {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc status field %s: want \"<n> kB\", got %q", field, strings.TrimSpace(rest))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc status field %s: %w", field, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("/proc status has no field %s", field)
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// statCPU returns utime+stime of a /proc/<pid>/stat line; its fields are
// counted after the command name, which is in parentheses and may hold
// spaces.
func statCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc stat %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc stat %q", stat)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed /proc stat %q: %w", stat, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
