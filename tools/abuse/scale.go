package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kedascalers/kedascalers/libs/testkit/proc"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// kedaServiceConfig is the service config KEDA v2.21 dials scalers with
// (pkg/scalers/external_scaler.go): one connection per scaler address,
// shared by every ScaledObject.
const kedaServiceConfig = `{"loadBalancingConfig": [{"round_robin":{}}]}`

// scaleOptions are the flags of `abuse scale`.
type scaleOptions struct {
	bin        string
	services   []string
	duration   time.Duration
	interval   time.Duration
	sos        int    // redis-session ScaledObjects
	namespaces int    // they are spread over
	push       int    // of them external-push
	targets    int    // of the push ones, with a backend-read target
	pgSOs      int    // postgres-query ScaledObjects, distinct queries
	sample     int    // push ScaledObjects whose key is written during the run
	maxStreams int    // GRPC_MAX_CONCURRENT_STREAMS; 0 leaves the default
	memLimit   string // GOMEMLIMIT of the scaler, as the prod overlay sets it; "" for none
	gogc       string // GOGC of the scaler, as the deploy files set it; "" for the Go default
}

// scaleMain is `abuse scale`: an honest cluster at the scalers' defaults
// (issue 14), as KEDA calls them. It returns the exit status: 1 when a
// call was refused or left unanswered.
func scaleMain(ctx context.Context, args []string, out io.Writer) int {
	fs := flag.NewFlagSet("abuse scale", flag.ContinueOnError)
	var o scaleOptions
	var services string
	fs.StringVar(&o.bin, "bin", "bin", "directory of the service binaries (make build)")
	fs.StringVar(&services, "services", "redis-session,postgres-query", "services to run, comma-separated")
	fs.DurationVar(&o.duration, "duration", 90*time.Second, "how long each service is polled (the first -interval ramps up)")
	fs.DurationVar(&o.interval, "interval", 30*time.Second, "KEDA's pollingInterval: each ScaledObject is polled this often, spread")
	fs.IntVar(&o.sos, "sos", 10_000, "redis-session ScaledObjects, each with a key of its own")
	fs.IntVar(&o.namespaces, "namespaces", 1_000, "namespaces the redis-session ScaledObjects are spread over (postgres-query: a tenth)")
	fs.IntVar(&o.push, "push", 5_000, "of the redis-session ScaledObjects, external-push ones (StreamIsActive and StreamMetricSpec open, as KEDA)")
	fs.IntVar(&o.targets, "targets", 1_000, "of the push ones, with a backend-read target (sessionSizeKey)")
	fs.IntVar(&o.pgSOs, "pg-sos", 1_000, "postgres-query ScaledObjects, each with a distinct query")
	fs.IntVar(&o.sample, "push-sample", 200, "push ScaledObjects whose key is written once during the run, to time the push")
	fs.IntVar(&o.maxStreams, "max-streams", 0, "GRPC_MAX_CONCURRENT_STREAMS of the scaler; 0 leaves its default")
	fs.StringVar(&o.memLimit, "gomemlimit", "256MiB", "GOMEMLIMIT of the scaler: the prod overlay sets the container's memory limit (256Mi); empty for none")
	fs.StringVar(&o.gogc, "gogc", "40", "GOGC of the scaler, as the deploy files set it; empty for the Go default (100)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	o.services = strings.Split(services, ",")
	if o.sos < 1 || o.sos > 100_000 || o.namespaces < 1 || o.push > o.sos || o.targets > o.push || o.sample > o.push-o.targets ||
		o.pgSOs < 0 || o.pgSOs > 100_000 || o.duration < o.interval+10*time.Second || o.duration > time.Hour || o.interval < time.Second {
		fmt.Fprintln(os.Stderr, "abuse scale: want 1 <= -sos <= 1e5, -targets <= -push <= -sos, -push-sample <= -push - -targets, "+
			"-interval >= 1s, -interval + 10s <= -duration <= 1h")
		return 2
	}
	dir, err := os.MkdirTemp("", "abuse-scale-*")
	if err != nil {
		fmt.Fprintf(os.Stderr, "abuse scale: %v\n", err)
		return 2
	}
	defer os.RemoveAll(dir)
	bs := &backends{}
	defer bs.close()
	status := 0
	for _, name := range o.services {
		r, err := runScale(ctx, o, bs, dir, name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "abuse scale: %s: %v\n", name, err)
			status = 1
			continue
		}
		r.report(out)
		if r.failures() > 0 {
			status = 1
		}
	}
	return status
}

// runScale starts name's backend and scaler, fills the backend, runs the
// cluster for o.duration and returns what it measured.
func runScale(ctx context.Context, o scaleOptions, bs *backends, dir, name string) (*scaleRun, error) {
	b, err := bs.get(ctx, name)
	if err != nil {
		return nil, err
	}
	b.reset(ctx)
	r := newScaleRun(name, o, b)
	if err := r.fill(ctx); err != nil {
		return nil, err
	}
	var env []string
	if o.memLimit != "" {
		env = append(env, "GOMEMLIMIT="+o.memLimit)
	}
	if o.gogc != "" {
		env = append(env, "GOGC="+o.gogc)
	}
	if o.maxStreams > 0 {
		env = append(env, fmt.Sprintf("GRPC_MAX_CONCURRENT_STREAMS=%d", o.maxStreams))
	}
	fmt.Fprintf(os.Stderr, "%s  scale %s: %d ScaledObjects in %d namespaces, %v\n",
		time.Now().UTC().Format("15:04:05"), name, len(r.sos), r.nsCount, o.duration)
	s, err := startScaler(ctx, o.bin, dir, name, append(b.env(false), env...), true)
	if err != nil {
		return nil, err
	}
	defer s.kill()
	r.s = s
	conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(kedaServiceConfig))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	r.client = pb.NewExternalScalerClient(conn)
	r.run(ctx)
	if u, err := proc.UsageOf(s.pid()); err == nil {
		r.peakRSS = u.PeakRSS
	}
	if s.exited() {
		return r, fmt.Errorf("the scaler exited during the run (%v):\n%s", s.waitErr(), s.logTail(5))
	}
	r.logSummary = warnSummary(s.logBytes())
	r.exit, r.killed = s.terminate()
	return r, nil
}
