package scalertest

import (
	"slices"
	"testing"
	"time"
)

// ReportLatency reports the median, 99th percentile and maximum of
// samples as the benchmark's p50-ms, p99-ms and max-ms: for latencies
// whose spread matters more than their mean (ns/op).
func ReportLatency(b *testing.B, samples []time.Duration) {
	b.Helper()
	if len(samples) == 0 {
		return
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(Percentile(s, 50)), "p50-ms")
	b.ReportMetric(ms(Percentile(s, 99)), "p99-ms")
	b.ReportMetric(ms(s[len(s)-1]), "max-ms")
}

// Percentile returns the p-th percentile (nearest rank) of sorted, which
// must be sorted in increasing order and not empty.
func Percentile(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100 // the smallest rank covering p%
	return sorted[max(i-1, 0)]
}
