// Command abuse is what `make abuse` runs: it starts throwaway backends and
// the real scaler binaries, attacks them as a hostile tenant would (the
// cases of issue 8), and prints what each attack cost: the scaler's peak
// RSS and goroutines, the backend's connections and memory, an innocent
// tenant's GetMetrics latency, the codes the attacker got, and the exit
// time after SIGTERM. The cross-tenant cases (issue 14) have a hostile
// namespace fill a shared pool, then check that another namespace's new
// triggers are still served within 1 s. It exits with status 1 when an
// aim is missed.
//
// "abuse scale" (make scale) runs an honest cluster instead: thousands of
// ScaledObjects in hundreds of namespaces called as KEDA calls them, at
// the scalers' defaults, and prints refusals, memory, goroutines and the
// backend load (scale.go).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "scale" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := scaleMain(ctx, os.Args[2:], os.Stdout)
		stop()
		os.Exit(code)
	}
	bin := flag.String("bin", "bin", "directory of the service binaries (make build)")
	run := flag.String("run", "", "run only the cases whose name matches this regular expression")
	scale := flag.Float64("scale", 1, "multiply every count (and shorten holds, down to 30 %) by this; 0.05 is a quick run")
	timeout := flag.Duration("timeout", 25*time.Minute, "global deadline")
	rssCeiling := flag.Int("rss-ceiling", 2048, "stop an attack when the scaler's RSS passes this many MB (protects the machine)")
	memCeiling := flag.Int("backend-ceiling", 3072, "stop an attack when the backend memory measured passes this many MB")
	list := flag.Bool("list", false, "list the cases and exit")
	flag.Parse()

	if *list {
		for _, c := range cases() {
			fmt.Printf("%-22s %-15s n=%-7d %s\n", c.name, c.service, c.count, c.what)
		}
		return
	}
	re, err := regexp.Compile(*run)
	if err != nil {
		fmt.Fprintf(os.Stderr, "abuse: -run: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	code, err := runAll(ctx, &runner{
		bin: *bin, scale: *scale,
		rssCeiling: int64(*rssCeiling) << 20, memCeiling: int64(*memCeiling) << 20,
	}, re)
	if err != nil {
		fmt.Fprintf(os.Stderr, "abuse: %v\n", err)
	}
	stop()
	cancel()
	os.Exit(code)
}

// runAll runs the selected cases, prints the report and returns the exit
// status: 0 when every aim is met, 1 when one is missed or a case could
// not run, 2 when nothing could run.
func runAll(ctx context.Context, rn *runner, re *regexp.Regexp) (int, error) {
	dir, err := os.MkdirTemp("", "abuse-*")
	if err != nil {
		return 2, fmt.Errorf("create a temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	rn.dir = dir
	rn.loadStart = loadAverage()
	rn.backends = &backends{}
	defer rn.backends.close()

	var results []*result
	for _, c := range cases() {
		if !re.MatchString(c.name) {
			continue
		}
		if ctx.Err() != nil {
			results = append(results, &result{name: c.name, service: c.service, skipped: "global deadline or interrupt"})
			continue
		}
		fmt.Fprintf(os.Stderr, "%s  %s: %s (n=%d)\n", time.Now().UTC().Format("15:04:05"), c.name, c.what, max(c.min, rn.scaled(c.count)))
		res := rn.run(ctx, c)
		fmt.Fprintf(os.Stderr, "%s  %s: %s\n", time.Now().UTC().Format("15:04:05"), c.name, verdict(res))
		results = append(results, res)
	}
	if len(results) == 0 {
		return 2, fmt.Errorf("no case matches -run %q (see -list)", re)
	}
	printReport(os.Stdout, rn, results)
	for _, r := range results {
		if r.skipped != "" || len(r.missed) > 0 {
			return 1, nil
		}
	}
	return 0, nil
}
