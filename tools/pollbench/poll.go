package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// figures are what one measured phase of polls cost one server.
type figures struct {
	cpuPerPoll    time.Duration // process CPU time per poll
	allocsPerPoll float64       // heap allocations per poll
	pollsPerSec   float64
	p99           time.Duration // of one poll, GetMetrics then IsActive, at the client
}

// target is a server under load and the question asked of it.
type target struct {
	srv    *server
	client pb.ExternalScalerClient
	conn   *grpc.ClientConn
	md     map[string]string
	metric string
	// scrapeAllocs is what one /metrics scrape allocates, taken off the
	// delta of go_memstats_mallocs_total around a phase.
	scrapeAllocs float64
}

// dial connects to srv the way KEDA does: one connection for every
// ScaledObject, round_robin over the addresses.
func dial(ctx context.Context, srv *server, md map[string]string, metric string) (*target, error) {
	conn, err := grpc.NewClient(srv.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	if err != nil {
		return nil, err
	}
	t := &target{srv: srv, client: pb.NewExternalScalerClient(conn), conn: conn, md: md, metric: metric}
	// Two scrapes back to back: the second's delta is what a scrape costs.
	// The smallest of a few, as a GC may run in between.
	t.scrapeAllocs = -1
	for range 3 {
		a, err := srv.mallocs(ctx)
		if err != nil {
			conn.Close()
			return nil, err
		}
		b, err := srv.mallocs(ctx)
		if err != nil {
			conn.Close()
			return nil, err
		}
		if d := b - a; t.scrapeAllocs < 0 || d < t.scrapeAllocs {
			t.scrapeAllocs = d
		}
	}
	return t, nil
}

// poll is one KEDA poll of ScaledObject name: GetMetrics, then IsActive
// (KEDA skips IsActive when GetMetrics failed).
func (t *target) poll(ctx context.Context, ref *pb.ScaledObjectRef) error {
	if _, err := t.client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: t.metric}); err != nil {
		return fmt.Errorf("%s GetMetrics: %w", t.srv.name, err)
	}
	if _, err := t.client.IsActive(ctx, ref); err != nil {
		return fmt.Errorf("%s IsActive: %w", t.srv.name, err)
	}
	return nil
}

// load runs n polls from workers goroutines, each polling a ScaledObject
// of its own, and returns each poll's duration.
func (t *target) load(ctx context.Context, n, workers int) ([]time.Duration, error) {
	took := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		ref := &pb.ScaledObjectRef{Namespace: "bench", Name: fmt.Sprintf("so-%d", w), ScalerMetadata: t.md}
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				start := time.Now()
				if err := t.poll(ctx, ref); err != nil {
					errs <- err
					next.Store(int64(n)) // stop the others too
					return
				}
				took[i] = time.Since(start)
			}
		})
	}
	wg.Wait()
	close(errs)
	return took, <-errs
}

// sample is what one chunk of polls cost a server.
type sample struct {
	cpu     time.Duration
	mallocs float64
	elapsed time.Duration
	took    []time.Duration
}

// chunk runs n polls and returns what they cost the server.
func (t *target) chunk(ctx context.Context, n, workers int) (sample, error) {
	m0, err := t.srv.mallocs(ctx)
	if err != nil {
		return sample{}, err
	}
	cpu0, err := t.srv.cpu()
	if err != nil {
		return sample{}, err
	}
	start := time.Now()
	took, err := t.load(ctx, n, workers)
	if err != nil {
		return sample{}, err
	}
	elapsed := time.Since(start)
	cpu1, err := t.srv.cpu()
	if err != nil {
		return sample{}, err
	}
	m1, err := t.srv.mallocs(ctx)
	if err != nil {
		return sample{}, err
	}
	return sample{cpu: cpu1 - cpu0, mallocs: max(0, m1-m0-t.scrapeAllocs), elapsed: elapsed, took: took}, nil
}

// chunks is how many pieces a run's polls of each server are cut into:
// the servers take turns (ABBA), so that both see the same load from
// whatever else runs on the machine.
const chunks = 10

// measure runs n polls of each target, in turns, and returns the figures
// of each.
func measure(ctx context.Context, ts []*target, n, workers int) ([]figures, error) {
	per := n / chunks
	sums := make([]sample, len(ts))
	for c := range chunks {
		for j := range ts {
			i := j
			if c%2 == 1 {
				i = len(ts) - 1 - j
			}
			s, err := ts[i].chunk(ctx, per, workers)
			if err != nil {
				return nil, err
			}
			sums[i].cpu += s.cpu
			sums[i].mallocs += s.mallocs
			sums[i].elapsed += s.elapsed
			sums[i].took = append(sums[i].took, s.took...)
		}
	}
	fs := make([]figures, len(ts))
	for i, s := range sums {
		polls := per * chunks
		slices.Sort(s.took)
		fs[i] = figures{
			cpuPerPoll:    s.cpu / time.Duration(polls),
			allocsPerPoll: s.mallocs / float64(polls),
			pollsPerSec:   float64(polls) / s.elapsed.Seconds(),
			p99:           s.took[(len(s.took)*99+99)/100-1],
		}
	}
	return fs, nil
}
