// Command pollbench measures what a KEDA poll costs a scaler, against the
// floor of a bare gRPC server of the same proto that answers constants.
//
// For each service it starts a throwaway backend, the service's binary
// (bin/<service>, built by make build) and the bare server (this binary,
// run as "pollbench floor"), warms both up, then, in each run, polls each
// server as KEDA does (GetMetrics then IsActive, from -workers
// ScaledObjects at once over one connection) -polls times, the two taking
// turns in tenths of that. It reports per
// server the CPU time per poll (utime+stime from /proc/<pid>/stat), the
// heap allocations per poll (go_memstats_mallocs_total), polls/s and the
// p99 of a poll, and the ratios scaler/floor; the last row holds the
// median of each figure, and of each ratio, over the runs.
//
//	go run ./tools/pollbench --bin bin
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == floorArg {
		if err := serveFloor(os.Getenv("GRPC_ADDR"), os.Getenv("HTTP_ADDR")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "pollbench:", err)
		os.Exit(1)
	}
}

type options struct {
	bin      string
	services []string
	polls    int
	warmup   int
	workers  int
	runs     int
	cacheTTL time.Duration
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("pollbench", flag.ContinueOnError)
	var o options
	var services string
	fs.StringVar(&o.bin, "bin", "bin", "directory of the service binaries (make build)")
	fs.StringVar(&services, "services", "redis-session,postgres-query", "services to measure, comma-separated")
	fs.IntVar(&o.polls, "polls", 20000, "polls per server and run")
	fs.IntVar(&o.warmup, "warmup", 2000, "polls per server before the runs")
	fs.IntVar(&o.workers, "workers", 8, "ScaledObjects polled at once")
	fs.IntVar(&o.runs, "runs", 3, "runs; the median is reported")
	fs.DurationVar(&o.cacheTTL, "cache-ttl", 2*time.Second, "CACHE_TTL of the scalers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.polls < 10*chunks || o.polls > 1_000_000 || o.workers < 1 || o.workers > 256 || o.runs < 1 || o.runs > 15 || o.warmup < 0 {
		return fmt.Errorf("want 100 <= -polls <= 1e6, 1 <= -workers <= 256, 1 <= -runs <= 15, -warmup >= 0")
	}
	o.services = strings.Split(services, ",")
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "pollbench: %d polls (GetMetrics then IsActive) per server and run, %d at once, %d runs, CACHE_TTL=%v\n",
		o.polls, o.workers, o.runs, o.cacheTTL)
	for _, name := range o.services {
		if err := bench(ctx, o, self, name, out); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// bench measures one service against the floor.
func bench(ctx context.Context, o options, self, name string, out io.Writer) error {
	mk, ok := setups[name]
	if !ok {
		return fmt.Errorf("no benchmark setup for %s", name)
	}
	su, err := mk(ctx)
	if err != nil {
		return err
	}
	defer su.close()
	bin, err := filepath.Abs(filepath.Join(o.bin, name))
	if err != nil {
		return err
	}
	svc, err := start(ctx, name, []string{bin}, append(su.env, "CACHE_TTL="+o.cacheTTL.String()))
	if err != nil {
		return err
	}
	defer svc.stop()
	fl, err := start(ctx, "floor", []string{self, floorArg}, nil)
	if err != nil {
		return err
	}
	defer fl.stop()
	targets := make([]*target, 2)
	for i, s := range []*server{svc, fl} {
		if targets[i], err = dial(ctx, s, su.md, su.metric); err != nil {
			return err
		}
		defer targets[i].conn.Close()
		if o.warmup > 0 {
			if _, err := targets[i].load(ctx, o.warmup, o.workers); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(out, "\n%s (pid %d) against the bare server (pid %d)\n\n", name, svc.p.Pid(), fl.p.Pid())
	fmt.Fprintln(out, "| run | CPU/poll | bare | ratio | allocs/poll | bare | polls/s | bare | ratio | p99 | bare |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|---|---|")
	var all [2][]figures
	for r := range o.runs {
		f, err := measure(ctx, targets, o.polls, o.workers)
		if err != nil {
			return err
		}
		for i := range f {
			all[i] = append(all[i], f[i])
		}
		row(out, fmt.Sprint(r+1), f[0], f[1])
	}
	ms, mb := median(all[0]), median(all[1])
	cpu, rate := medianRatios(all[0], all[1])
	fmt.Fprintf(out, "| median | %v | %v | %.2f | %.1f | %.1f | %.0f | %.0f | %.2f | %v | %v |\n",
		ms.cpuPerPoll.Round(time.Microsecond/10), mb.cpuPerPoll.Round(time.Microsecond/10), cpu,
		ms.allocsPerPoll, mb.allocsPerPoll, ms.pollsPerSec, mb.pollsPerSec, rate,
		ms.p99.Round(time.Microsecond), mb.p99.Round(time.Microsecond))
	return nil
}

// medianRatios returns the medians of the runs' CPU and polls/s ratios.
func medianRatios(s, b []figures) (cpu, rate float64) {
	var c, r []float64
	for i := range s {
		c = append(c, float64(s[i].cpuPerPoll)/float64(b[i].cpuPerPoll))
		r = append(r, s[i].pollsPerSec/b[i].pollsPerSec)
	}
	slices.Sort(c)
	slices.Sort(r)
	return c[len(c)/2], r[len(r)/2]
}

func row(out io.Writer, label string, s, b figures) {
	fmt.Fprintf(out, "| %s | %v | %v | %.2f | %.1f | %.1f | %.0f | %.0f | %.2f | %v | %v |\n", label,
		s.cpuPerPoll.Round(time.Microsecond/10), b.cpuPerPoll.Round(time.Microsecond/10),
		float64(s.cpuPerPoll)/float64(b.cpuPerPoll), s.allocsPerPoll, b.allocsPerPoll,
		s.pollsPerSec, b.pollsPerSec, s.pollsPerSec/b.pollsPerSec,
		s.p99.Round(time.Microsecond), b.p99.Round(time.Microsecond))
}

// median returns the median of each figure on its own.
func median(fs []figures) figures {
	pick := func(get func(figures) float64) float64 {
		v := make([]float64, len(fs))
		for i, f := range fs {
			v[i] = get(f)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return figures{
		cpuPerPoll:    time.Duration(pick(func(f figures) float64 { return float64(f.cpuPerPoll) })),
		allocsPerPoll: pick(func(f figures) float64 { return f.allocsPerPoll }),
		pollsPerSec:   pick(func(f figures) float64 { return f.pollsPerSec }),
		p99:           time.Duration(pick(func(f figures) float64 { return float64(f.p99) })),
	}
}
