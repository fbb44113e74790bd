package redissession

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// BenchmarkPushStreamsAtScale holds the push streams of the sizing target
// (issue 14) at the defaults, with keyspace notifications on: 5,000
// StreamIsActive with a set each, in 1,000 namespaces, and the
// StreamMetricSpec of the 1,000 of them that read their target
// (sessionSizeKey). It reports the goroutines and memory they hold, and
// logs the goroutines by the function that started them (client and
// server share the process: grpc-go's client side is listed too). Run it
// once:
//
//	go test -run XXX -bench PushStreamsAtScale -benchtime 1x ./redissession
func BenchmarkPushStreamsAtScale(b *testing.B) {
	for _, watched := range []int{1000, 6000} {
		b.Run(fmt.Sprint("watched=", watched), func(b *testing.B) { benchmarkPushStreams(b, watched) })
	}
}

// benchmarkPushStreams runs BenchmarkPushStreamsAtScale with MAX_FEEDS
// and REDIS_MAX_WATCHED_KEYS at watched.
func benchmarkPushStreams(b *testing.B, watched int) {
	const namespaces, push, targets = 1000, 5000, 1000
	for range b.N {
		b.Setenv("MAX_FEEDS", fmt.Sprint(watched))
		r := testenv.NewRedis(b, "--notify-keyspace-events", "KEA")
		cfg := testConfig(r)
		cfg.MaxWatchedKeys = watched
		e := &env{r: r, rdb: client(b, r, 0), b: newBackend(b, cfg)}
		e.s = scalertest.Serve(b, e.b, scalertest.Options{})
		ctx, cancel := context.WithCancel(context.Background())
		b.Cleanup(cancel)
		before, goroutines := memory(), runtime.NumGoroutine()
		for i := range push {
			md := map[string]string{"mode": "set", "key": "s" + strconv.Itoa(i), "sessionSize": "10"}
			ref := &pb.ScaledObjectRef{Namespace: fmt.Sprint("ns", i%namespaces), Name: fmt.Sprint("so", i), ScalerMetadata: md}
			st, err := e.s.Client.StreamIsActive(ctx, ref)
			must(b, err)
			if _, err := st.Recv(); err != nil {
				b.Fatal(err)
			}
			if i < targets {
				md := map[string]string{"mode": "set", "key": "s" + strconv.Itoa(i), "sessionSize": "10", "sessionSizeKey": "t" + strconv.Itoa(i)}
				ref := &pb.ScaledObjectRef{Namespace: ref.Namespace, Name: ref.Name, ScalerMetadata: md}
				sp, err := e.s.Client.StreamMetricSpec(ctx, ref)
				must(b, err)
				if _, err := sp.Recv(); err != nil {
					b.Fatal(err)
				}
			}
		}
		time.Sleep(2 * time.Second) // watches and readers in place
		after := memory()
		n := runtime.NumGoroutine() - goroutines
		b.ReportMetric(float64(n), "goroutines")
		b.ReportMetric(float64(n)/float64(push+targets), "goroutines/stream")
		b.ReportMetric(float64(after.StackInuse-before.StackInuse)/(1<<20), "stack-MiB")
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/(1<<20), "heap-MiB")
		b.Log("goroutines by the function that started them:\n" + goroutinesByCreator())
		cancel()
	}
}

func memory() runtime.MemStats {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m
}

var createdBy = regexp.MustCompile(`(?m)^created by (\S+)`)

// goroutinesByCreator counts the goroutines by the function that started
// them, most first.
func goroutinesByCreator() string {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 2)
	counts := map[string]int{}
	for _, m := range createdBy.FindAllSubmatch(buf.Bytes(), -1) {
		counts[string(m[1])]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return counts[keys[i]] > counts[keys[j]] })
	var out bytes.Buffer
	for _, k := range keys {
		if counts[k] >= 10 {
			fmt.Fprintf(&out, "%7d %s\n", counts[k], k)
		}
	}
	return out.String()
}
