package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// procFDs returns how many file descriptors process pid holds, or -1.
func procFDs(pid int) int {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(entries)
}

// infoInt returns an integer field (such as "connected_clients") of the
// text of a Redis INFO reply.
func infoInt(info, field string) (int64, error) {
	for _, line := range strings.Split(info, "\n") {
		name, value, ok := strings.Cut(strings.TrimRight(line, "\r"), ":")
		if !ok || name != field {
			continue
		}
		v, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("INFO field %s: %w", field, err)
		}
		return v, nil
	}
	return 0, fmt.Errorf("INFO has no field %s", field)
}

// metricValue returns the value of the unlabelled sample name (such as
// "go_goroutines") in a Prometheus text exposition.
func metricValue(text, name string) (float64, error) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != name {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return 0, fmt.Errorf("metric %s: %w", name, err)
		}
		return v, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read metrics: %w", err)
	}
	return 0, fmt.Errorf("no sample %s in the metrics", name)
}

// warnLines counts the log lines at level WARN or ERROR (a platform's
// problem, see libs/scalerkit/fault), in slog's JSON ("level":"WARN") or
// text (level=WARN) format.
func warnLines(log []byte) int {
	n := 0
	for _, line := range bytes.Split(log, []byte("\n")) {
		for _, level := range []string{"WARN", "ERROR"} {
			if bytes.Contains(line, []byte(`"level":"`+level+`"`)) || bytes.Contains(line, []byte("level="+level)) {
				n++
				break
			}
		}
	}
	return n
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of d,
// or 0 when d is empty. d is not modified.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(p/100*float64(len(s))+0.999999) - 1
	rank = max(0, min(rank, len(s)-1))
	return s[rank]
}

// metricSum returns the sum of every sample of metric name, whatever its
// labels, in a Prometheus text exposition (0 when there is none).
func metricSum(text, name string) float64 {
	sum := 0.0
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			sum += v
		}
	}
	return sum
}
