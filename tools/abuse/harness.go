package main

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
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
	if kb, err := procKB(s.pid(), "VmHWM"); err == nil {
		res.peakRSS = kb << 10
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
		if kb, err := procKB(s.pid(), "VmRSS"); err == nil && kb<<10 > rn.rssCeiling && res.ceiling == "" {
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

// evaluate fills res.missed with the aims of issue 8 this case missed.
func (rn *runner) evaluate(c *abuseCase, res *result) {
	miss := func(format string, args ...any) { res.missed = append(res.missed, fmt.Sprintf(format, args...)) }
	if res.peakRSS >= aimPeakRSS {
		miss("peak RSS %d MB >= 150 MB", res.peakRSS>>20)
	}
	if len(res.innocent) > 0 && !c.noInnocentAim {
		if m := percentile(res.innocent, 100); m > aimInnocent {
			miss("innocent GetMetrics max %v > 1s", m.Round(time.Millisecond))
		}
		if res.innocentErrs > 0 {
			miss("innocent GetMetrics failed %d times", res.innocentErrs)
		}
	}
	if res.servingErr != nil && (!c.noInnocentAim || strings.Contains(res.servingErr.Error(), "exited")) {
		miss("not serving after: %s", clip(res.servingErr.Error(), 160))
	}
	if c.service == "redis-session" {
		if res.peakConns >= aimRedisConns {
			miss("%d Redis connections >= 50", res.peakConns)
		}
		if res.acceptingErr != nil {
			miss("Redis refuses new clients: %s", clip(res.acceptingErr.Error(), 120))
		}
	}
	if res.exit > res.shutdownTimeout+aimExitSlack || res.killed {
		miss("exit %.1fs > SHUTDOWN_TIMEOUT %v + 1s", res.exit.Seconds(), res.shutdownTimeout)
	}
	for _, check := range c.checks {
		if m := check(res); m != "" {
			miss("%s", m)
		}
	}
}

// envDuration returns the duration of variable name in env, or def.
func envDuration(env []string, name string, def time.Duration) time.Duration {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			if d, err := time.ParseDuration(v); err == nil {
				return d
			}
		}
	}
	return def
}

// waitTimeout waits for wg, at most d.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// codeString formats code counts, most frequent first.
func codeString(m map[codes.Code]int) string {
	type kv struct {
		c codes.Code
		n int
	}
	var s []kv
	for c, n := range m {
		s = append(s, kv{c, n})
	}
	sort.Slice(s, func(i, j int) bool { return s[i].n > s[j].n || s[i].n == s[j].n && s[i].c < s[j].c })
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = fmt.Sprintf("%s %d", x.c, x.n)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}
