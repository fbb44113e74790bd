package scaler_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
)

// BenchmarkPushFeeds measures what 5,000 push streams in 1,000 namespaces
// hold at the defaults (MAX_FEEDS 1000), with one question for all
// ("shared": one feed) and a question each ("distinct": 5,000 feeds, 1,000
// watched): the difference is what the feeds cost. Client and server run
// in the one process, so the absolute figures include both ends of every
// stream. Run it once:
//
//	go test -run XXX -bench PushFeeds -benchtime 1x ./scaler
func BenchmarkPushFeeds(b *testing.B) {
	const namespaces, each = 1000, 5
	for _, distinct := range []bool{false, true} {
		name := map[bool]string{false: "shared", true: "distinct"}[distinct]
		b.Run(name, func(b *testing.B) {
			for range b.N {
				b.Setenv("GRPC_MAX_CONCURRENT_STREAMS", fmt.Sprint(2*namespaces*each)) // one connection carries them all
				s := scalertest.Serve(b, newFake(), scalertest.Options{})
				before := memory()
				goroutines := runtime.NumGoroutine()
				for n := range namespaces {
					for i := range each {
						key := "k"
						if distinct {
							key = fmt.Sprintf("ns%d-k%d", n, i)
						}
						ch, _ := openActive(b, s, refIn(fmt.Sprint("ns", n), fmt.Sprint("so", i), map[string]string{"key": key}))
						scalertest.Next(b, ch, answer, "StreamIsActive")
					}
				}
				after := memory()
				b.ReportMetric(float64(runtime.NumGoroutine()-goroutines), "goroutines")
				b.ReportMetric(float64(after.StackInuse-before.StackInuse)/(1<<20), "stack-MiB")
				b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/(1<<20), "heap-MiB")
				b.ReportMetric(gaugeValue(b, s.Metrics.Held.WithLabelValues("feeds")), "watched")
				b.ReportMetric(gaugeValue(b, s.Metrics.Held.WithLabelValues("feeds_polled")), "polled")
			}
		})
	}
}

func memory() runtime.MemStats {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m
}
