package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

const (
	// kedaRetry is KEDA's first wait before it reopens a push stream; it
	// doubles after each stream that failed, up to kedaRetryMax.
	kedaRetry    = 2 * time.Second
	kedaRetryMax = time.Minute
	// lateAtEnd: a call the end of the run cut after waiting this long
	// counts as unanswered.
	lateAtEnd = 2 * time.Second
)

// so is one ScaledObject of the honest cluster.
type so struct {
	ref    *pb.ScaledObjectRef
	metric string
	push   bool
	phase  time.Duration // its polls' offset in the interval
	key    string        // redis-session: the set it counts
	// wrote is when its key was made active (UnixNano; 0: not yet), for
	// a push sample; pushed is set when the true that followed came.
	sample bool
	wrote  atomic.Int64
	pushed atomic.Bool
}

// scaleRun is one service's honest cluster and what it measured.
type scaleRun struct {
	name    string
	o       scaleOptions
	b       backend
	s       *scaler
	client  pb.ExternalScalerClient
	sos     []*so
	nsCount int

	mu         sync.Mutex
	codes      map[string]map[codes.Code]int // by RPC; OK counted too
	samples    map[string]string             // first message of each failing RPC and code
	unanswered map[string]int                // calls the end of the run cut after lateAtEnd
	pushLat    []time.Duration
	pollLat    []time.Duration // of GetMetrics answered

	peakRSS, peakRSSSeen  int64
	peakGoroutines        int
	peakStreams           float64
	peakConns, endConns   int
	reads0, reads1        float64
	t0, t1                time.Time
	opsPerSec             []int64
	exit                  time.Duration
	killed                bool
	endGoroutines, writes int
	staticSpecs           int // StreamMetricSpec ended Unimplemented after the spec
	streamCapReached      float64
	logSummary            string
	start                 time.Time // of the run
}

// newScaleRun lays out name's ScaledObjects: namespace j holds the
// ScaledObjects i with i % namespaces == j; the first o.push are push,
// the first o.targets of those read their target.
func newScaleRun(name string, o scaleOptions, b backend) *scaleRun {
	r := &scaleRun{name: name, o: o, b: b, codes: map[string]map[codes.Code]int{},
		samples: map[string]string{}, unanswered: map[string]int{}}
	n, nss := o.sos, o.namespaces
	if name == "postgres-query" {
		n, nss = o.pgSOs, max(1, o.namespaces/10)
	}
	r.nsCount = min(n, nss)
	for i := range n {
		ns := fmt.Sprintf("ns-%04d", i%nss)
		o := &so{phase: time.Duration(i) * o.interval / time.Duration(n)}
		var md map[string]string
		if name == "postgres-query" {
			md = map[string]string{"query": fmt.Sprintf("select count(*) from scale_items where k = %d", i), "targetQueryValue": "5"}
		} else {
			o.key = fmt.Sprintf("so:%s:%d", ns, i)
			md = map[string]string{"mode": "set", "key": o.key, "sessionSize": "5"}
			o.push = i < r.o.push
			if i < r.o.targets {
				md["sessionSizeKey"] = fmt.Sprintf("target:%s:%d", ns, i)
			}
			o.sample = o.push && i >= r.o.targets && i < r.o.targets+r.o.sample
		}
		o.ref = &pb.ScaledObjectRef{Name: fmt.Sprintf("so-%d", i), Namespace: ns, ScalerMetadata: md}
		o.metric = metricName(md)
		r.sos = append(r.sos, o)
	}
	return r
}

// run runs the cluster for o.duration: every ScaledObject starts at its
// phase (GetMetricSpec, its push streams), then is polled every interval;
// the push sample's keys are written after the ramp, spread.
func (r *scaleRun) run(ctx context.Context) {
	// Cancelled, not given a deadline: KEDA sets none on its streams, and
	// a deadline would reach the scaler (grpc-timeout), which would then
	// time out all 10,000 streams at the same instant, a timer goroutine
	// each, as no KEDA restart does.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer time.AfterFunc(r.o.duration, cancel).Stop()
	r.start = time.Now()
	var wg sync.WaitGroup
	for _, o := range r.sos {
		wg.Go(func() { r.live(ctx, o) })
	}
	wg.Go(func() { r.monitor(ctx) })
	wg.Go(func() { r.writeSample(ctx) })
	wg.Wait()
}

// live is one ScaledObject as KEDA runs it.
func (r *scaleRun) live(ctx context.Context, o *so) {
	sleep(ctx, o.phase)
	if ctx.Err() != nil {
		return
	}
	r.call(ctx, o, "GetMetricSpec", func(ctx context.Context) error {
		_, err := r.client.GetMetricSpec(ctx, o.ref)
		return err
	})
	var streams sync.WaitGroup
	defer streams.Wait()
	if o.push {
		streams.Go(func() { r.keepStream(ctx, o, "StreamIsActive") })
		streams.Go(func() { r.keepStream(ctx, o, "StreamMetricSpec") })
	}
	t := time.NewTicker(r.o.interval)
	defer t.Stop()
	for {
		r.poll(ctx, o)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// poll is one KEDA poll: GetMetricSpec (KEDA asks it on every poll and
// HPA read), GetMetrics, then IsActive unless GetMetrics failed.
func (r *scaleRun) poll(ctx context.Context, o *so) {
	r.call(ctx, o, "GetMetricSpec", func(ctx context.Context) error {
		_, err := r.client.GetMetricSpec(ctx, o.ref)
		return err
	})
	if !r.call(ctx, o, "GetMetrics", func(ctx context.Context) error {
		_, err := r.client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: o.ref, MetricName: o.metric})
		return err
	}) {
		return
	}
	r.call(ctx, o, "IsActive", func(ctx context.Context) error {
		_, err := r.client.IsActive(ctx, o.ref)
		return err
	})
}

// call makes one unary call, bounded by the interval (KEDA sets no
// deadline: an answer later than the next poll is a failure), and counts
// its code. It reports whether the call succeeded.
func (r *scaleRun) call(ctx context.Context, o *so, rpc string, f func(ctx context.Context) error) bool {
	cctx, cancel := context.WithTimeout(ctx, r.o.interval)
	defer cancel()
	t0 := time.Now()
	err := f(cctx)
	// A call cut by the run's end: cctx's own deadline may fire a moment
	// before ctx's, which has the same.
	ended := ctx.Err() != nil
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		ended = true
	}
	if ended && err != nil {
		if time.Since(t0) > lateAtEnd {
			r.mu.Lock()
			r.unanswered[rpc]++
			r.mu.Unlock()
		}
		return false
	}
	if err == nil && rpc == "GetMetrics" {
		r.mu.Lock()
		r.pollLat = append(r.pollLat, time.Since(t0))
		r.mu.Unlock()
	}
	r.count(rpc, err, fmt.Sprintf("%s/%s (push %v, target read %v), asked %v into the run",
		o.ref.Namespace, o.ref.Name, o.push, o.ref.ScalerMetadata["sessionSizeKey"] != "", t0.Sub(r.start).Round(time.Second)))
	return err == nil
}

// count counts err's code for rpc, keeping the first message of each,
// with who asked.
func (r *scaleRun) count(rpc string, err error, who string) {
	c := status.Code(err)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.codes[rpc] == nil {
		r.codes[rpc] = map[codes.Code]int{}
	}
	r.codes[rpc][c]++
	if k := rpc + " " + c.String(); err != nil && r.samples[k] == "" {
		r.samples[k] = clip(status.Convert(err).Message(), 200) + "; first: " + who
	}
}

// keepStream holds one push stream open as KEDA does: it reopens it
// after kedaRetry, doubling the wait after each stream that failed (a
// StreamMetricSpec that sent a message resets it), and stops for good
// after a StreamMetricSpec that ends Unimplemented (a static target).
// Each stream's opening (its first message) and each end but a clean
// one, a static target's or the run's end is counted.
func (r *scaleRun) keepStream(ctx context.Context, o *so, rpc string) {
	wait := kedaRetry
	for ctx.Err() == nil {
		opened, err := r.stream(ctx, o, rpc)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, io.EOF):
			wait = kedaRetry
		case rpc == "StreamMetricSpec" && opened && status.Code(err) == codes.Unimplemented:
			r.mu.Lock()
			r.staticSpecs++
			r.mu.Unlock()
			return
		case rpc == "StreamMetricSpec" && opened:
			r.count(rpc+" end", err, o.ref.Namespace+"/"+o.ref.Name)
			wait = kedaRetry
		default:
			if opened { // a failed opening is counted already
				r.count(rpc+" end", err, o.ref.Namespace+"/"+o.ref.Name)
			}
			wait = min(wait*2, kedaRetryMax)
		}
		sleep(ctx, wait)
	}
}

// stream runs one stream to its end and says whether it opened (sent a
// first message). A StreamIsActive of the push sample times the true
// that follows its key's write.
func (r *scaleRun) stream(ctx context.Context, o *so, rpc string) (bool, error) {
	var recv func() (bool, error)
	t0 := time.Now()
	if rpc == "StreamIsActive" {
		st, err := r.client.StreamIsActive(ctx, o.ref)
		if err != nil {
			return false, r.opened(ctx, o, rpc, err, t0)
		}
		recv = func() (bool, error) { m, err := st.Recv(); return m.GetResult(), err }
	} else {
		st, err := r.client.StreamMetricSpec(ctx, o.ref)
		if err != nil {
			return false, r.opened(ctx, o, rpc, err, t0)
		}
		recv = func() (bool, error) { _, err := st.Recv(); return false, err }
	}
	active, err := recv()
	if err := r.opened(ctx, o, rpc, err, t0); err != nil {
		return false, err
	}
	for {
		if w := o.wrote.Load(); active && w != 0 && o.pushed.CompareAndSwap(false, true) {
			r.mu.Lock()
			r.pushLat = append(r.pushLat, time.Since(time.Unix(0, w)))
			r.mu.Unlock()
		}
		if active, err = recv(); err != nil {
			return true, err
		}
	}
}

// opened counts a stream's opening: its first message, or the error that
// came instead (io.EOF: a clean end before any message).
func (r *scaleRun) opened(ctx context.Context, o *so, rpc string, err error, t0 time.Time) error {
	switch {
	case ctx.Err() != nil:
		if time.Since(t0) > lateAtEnd {
			r.mu.Lock()
			r.unanswered[rpc]++
			r.mu.Unlock()
		}
		return ctx.Err()
	case errors.Is(err, io.EOF):
		return err
	}
	r.count(rpc, err, o.ref.Namespace+"/"+o.ref.Name)
	return err
}
