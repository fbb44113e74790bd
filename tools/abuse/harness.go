package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// Aims of issue 8, with default settings.
const (
	aimPeakRSS       = 150 << 20
	aimRedisConns    = 50
	aimInnocent      = time.Second
	aimExitSlack     = time.Second
	defaultShutdown  = 10 * time.Second
	sampleEvery      = 500 * time.Millisecond
	callTimeout      = 20 * time.Second
	innocentEvery    = 100 * time.Millisecond
	innocentTimeout  = 15 * time.Second
	waitAttackAtExit = 15 * time.Second
)

// abuseCase is one attack: which service, with what settings, doing what,
// and what must hold besides the aims every case checks.
type abuseCase struct {
	name    string
	service string // redis-session or postgres-query
	what    string // one line for the report
	env     []string
	count   int           // at -scale 1
	min     int           // the least count, whatever the scale
	limit   time.Duration // bound on the attack
	attack  func(ctx context.Context, a *attack)
	checks  []func(r *result) string // each returns the aim missed, or ""
	// superuser connects as the database's superuser.
	superuser bool
	// expectRefusal: the service should refuse to start; when it starts
	// anyway, the attack runs.
	expectRefusal bool
	// noInnocentAim: the case runs with settings that are not the
	// defaults, where the innocent's 1 s aim does not apply.
	noInnocentAim bool
}

// result is what one case measured.
type result struct {
	name, service     string
	n                 int
	attackTook        time.Duration
	peakRSS           int64 // bytes, VmHWM
	peakGoroutines    int
	peakFDs           int
	baseConns         int
	peakConns         int
	baseMem, peakMem  int64
	endMem            int64
	marks             map[string]int64 // backend memory at points the attack chose
	innocent          []time.Duration
	innocentErrs      int
	innocentErrSample string
	codes             map[codes.Code]int
	codeSamples       map[codes.Code]string
	servingErr        error
	acceptingErr      error
	shutdownTimeout   time.Duration
	exit              time.Duration
	killed            bool
	values            map[string]float64
	probes            []probe // what namespace good got, in a cross-tenant case
	notes             []string
	missed            []string
	ceiling           string
	skipped           string // why the case did not run
}

func (r *result) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// attack is what an attack function works with.
type attack struct {
	client  pb.ExternalScalerClient
	n       int
	limit   time.Duration
	hold    time.Duration // how long to hold what was opened
	scaler  *scaler
	backend backend
	res     *result

	mu sync.Mutex
	wg sync.WaitGroup // calls left in flight on purpose (shutdown case)
}

// record counts the gRPC code of err.
func (a *attack) record(err error) {
	st := status.Convert(err)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.res.codes[st.Code()]++
	if _, ok := a.res.codeSamples[st.Code()]; !ok && err != nil {
		a.res.codeSamples[st.Code()] = clip(st.Message(), 160)
	}
}

// value sets a measured value the checks read.
func (a *attack) value(key string, v float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.res.values[key] = v
}

// mark samples the backend's memory now, under key.
func (a *attack) mark(ctx context.Context, key string) {
	_, mem, err := a.backend.sample(ctx)
	if err != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.res.marks[key] = mem
}

// fanout runs call(i) for i in [0, n) on workers goroutines, stopping at
// n calls or when ctx ends, and records each code. It returns how many
// calls were made.
func (a *attack) fanout(ctx context.Context, n, workers int, call func(ctx context.Context, i int) error) int {
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	made := 0
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				cctx, cancel := context.WithTimeout(ctx, callTimeout)
				err := call(cctx, i)
				cancel()
				if ctx.Err() != nil && status.Code(err) == codes.Canceled {
					continue // our own stop, not an answer
				}
				a.record(err)
				mu.Lock()
				made++
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return made
}

// ref is a ScaledObjectRef of the attacking tenant.
func ref(i int, md map[string]string) *pb.ScaledObjectRef {
	return &pb.ScaledObjectRef{Name: fmt.Sprintf("hostile-%d", i), Namespace: "tenant-a", ScalerMetadata: md}
}

// getMetrics asks as KEDA does on a poll (GetMetrics; IsActive is skipped
// here, it reads the same cached value).
func (a *attack) getMetrics(ctx context.Context, i int, md map[string]string) error {
	_, err := a.client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref(i, md), MetricName: metricName(md)})
	return err
}

// metricName is the metric name a trigger's spec gives.
func metricName(md map[string]string) string {
	if n := md["metricName"]; n != "" {
		return n
	}
	if _, ok := md["query"]; ok {
		return "query_value"
	}
	return "session_size"
}
