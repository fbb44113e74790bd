package main

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kedascalers/kedascalers/libs/testkit/proc"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// runner runs cases against the binaries in bin.
type runner struct {
	bin        string
	dir        string // scaler logs
	scale      float64
	rssCeiling int64
	memCeiling int64
	backends   *backends
	loadStart  string // load average when the run began
}

// scaled returns count times the scale, at least 1.
func (rn *runner) scaled(count int) int {
	return max(1, int(math.Round(float64(count)*rn.scale)))
}

// holdScale shortens holds in quick runs, down to 30 %.
func (rn *runner) holdScale(d time.Duration) time.Duration {
	return time.Duration(float64(d) * min(1, max(0.3, rn.scale)))
}

// run runs one case and returns what it measured; it never leaves the
// scaler running.
func (rn *runner) run(ctx context.Context, c *abuseCase) (res *result) {
	res = &result{
		name: c.name, service: c.service, n: max(c.min, rn.scaled(c.count)),
		codes: map[codes.Code]int{}, codeSamples: map[codes.Code]string{},
		marks: map[string]int64{}, values: map[string]float64{},
		shutdownTimeout: envDuration(c.env, "SHUTDOWN_TIMEOUT", defaultShutdown),
	}
	defer func() {
		if p := recover(); p != nil {
			res.missed = append(res.missed, fmt.Sprintf("the abuse suite panicked: %v", p))
		}
	}()
	b, err := rn.backends.get(ctx, c.service)
	if err != nil {
		res.skipped = "backend: " + err.Error()
		return res
	}
	b.reset(ctx)
	defer b.reset(context.Background())

	s, err := startScaler(ctx, rn.bin, rn.dir, c.service, append(b.env(c.superuser), c.env...), !c.expectRefusal)
	if err != nil {
		res.skipped = err.Error()
		return res
	}
	defer s.kill()
	if c.expectRefusal && !rn.superuserStarts(ctx, s, res) {
		return res // refused, as it should
	}

	conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		res.skipped = err.Error()
		return res
	}
	defer conn.Close()
	client := pb.NewExternalScalerClient(conn)
	innocent := &pb.GetMetricsRequest{
		ScaledObjectRef: &pb.ScaledObjectRef{Name: "innocent", Namespace: "tenant-b", ScalerMetadata: b.innocent()},
		MetricName:      metricName(b.innocent()),
	}
	// Warm up: the innocent's first call opens its connection.
	if _, err := client.GetMetrics(ctx, innocent); err != nil {
		res.note("innocent's first GetMetrics, before any attack: %v", err)
	}
	res.baseConns, res.baseMem, _ = b.sample(ctx)

	attackCtx, cancelAttack := context.WithTimeout(ctx, c.limit+rn.holdScale(30*time.Second))
	defer cancelAttack()
	mon := rn.monitor(attackCtx, s, b, res, cancelAttack)
	innCtx, stopInnocent := context.WithCancel(ctx)
	innDone := make(chan struct{})
	go func() {
		defer close(innDone)
		rn.innocent(innCtx, client, innocent, res)
	}()

	a := &attack{client: client, n: res.n, limit: c.limit, hold: rn.holdScale(15 * time.Second), scaler: s, backend: b, res: res}
	start := time.Now()
	func() {
		limited, cancel := context.WithTimeout(attackCtx, c.limit)
		defer cancel()
		c.attack(limited, a)
	}()
	res.attackTook = time.Since(start)
	stopInnocent()
	<-innDone

	// Still serving: the innocent's question, once more, and health.
	t0 := time.Now()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = client.GetMetrics(cctx, innocent)
	cancel()
	if err != nil {
		res.servingErr = fmt.Errorf("GetMetrics after the attack: %w", err)
	} else if d := time.Since(t0); d > aimInnocent {
		res.servingErr = fmt.Errorf("GetMetrics after the attack took %v", d.Round(time.Millisecond))
	}
	if s.exited() {
		res.servingErr = fmt.Errorf("the scaler exited during the attack (%v)", s.waitErr())
	}
	res.acceptingErr = b.accepting(ctx)
	mon()
	if u, err := proc.UsageOf(s.pid()); err == nil {
		res.peakRSS = u.PeakRSS
	}
	_, res.endMem, _ = b.sample(ctx)

	if !s.exited() {
		res.exit, res.killed = s.terminate()
	}
	cancelAttack()
	waitTimeout(&a.wg, waitAttackAtExit)
	if strings.Contains(string(s.logBytes()), "panic") {
		res.note("the scaler's log mentions a panic:\n%s", s.logTail(5))
	}
	rn.evaluate(c, res)
	return res
}

// superuserStarts waits for a scaler started as a superuser to be ready or
// to exit. It reports whether it became ready (and the case goes on).
func (rn *runner) superuserStarts(ctx context.Context, s *scaler, res *result) bool {
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		if s.exited() {
			res.note("refused to start (%v): %s", s.waitErr(), strings.TrimSpace(s.logTail(1)))
			res.values["refused"] = 1
			return false
		}
		if code, _ := s.get(ctx, "/readyz"); code == 200 {
			res.note("started and became ready as a superuser, with no POSTGRES_ALLOW_SUPERUSER")
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	res.skipped = "neither ready nor exited within " + readyTimeout.String()
	return false
}

// monitor samples the scaler and its backend every sampleEvery, keeping
// the peaks in res, and stops the attack (stop) at a ceiling. It returns a
// function that stops it and waits for it.
func (rn *runner) monitor(ctx context.Context, s *scaler, b backend, res *result, stop func()) func() {
	done := make(chan struct{})
	quit := make(chan struct{})
	var once sync.Once
	sample := func() {
		if g, err := s.goroutines(ctx); err == nil {
			res.peakGoroutines = max(res.peakGoroutines, g)
		}
		res.peakFDs = max(res.peakFDs, procFDs(s.pid()))
		if conns, mem, err := b.sample(ctx); err == nil {
			res.peakConns = max(res.peakConns, conns)
			res.peakMem = max(res.peakMem, mem)
			if mem > rn.memCeiling && res.ceiling == "" {
				res.ceiling = fmt.Sprintf("backend memory passed %d MB: attack stopped", rn.memCeiling>>20)
				stop()
			}
		}
		if u, err := proc.UsageOf(s.pid()); err == nil && u.RSS > rn.rssCeiling && res.ceiling == "" {
			res.ceiling = fmt.Sprintf("scaler RSS passed %d MB: attack stopped", rn.rssCeiling>>20)
			stop()
		}
	}
	go func() {
		defer close(done)
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		for {
			sample()
			select {
			case <-t.C:
			case <-quit:
				sample()
				return
			}
		}
	}()
	return func() {
		once.Do(func() { close(quit) })
		<-done
	}
}

// innocent asks the innocent tenant's question every innocentEvery until
// ctx ends, recording each latency and error.
func (rn *runner) innocent(ctx context.Context, client pb.ExternalScalerClient, req *pb.GetMetricsRequest, res *result) {
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, innocentTimeout)
		t0 := time.Now()
		_, err := client.GetMetrics(cctx, req)
		d := time.Since(t0)
		cancel()
		if ctx.Err() != nil {
			return // cut by the end of the attack: not an answer
		}
		res.innocent = append(res.innocent, d)
		if err != nil {
			res.innocentErrs++
			if res.innocentErrSample == "" {
				res.innocentErrSample = clip(err.Error(), 160)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(innocentEvery):
		}
	}
}
