// Command demo is what `make demo` runs: it starts throwaway backends,
// runs the scaler services against them, and asks them with scalerctl the
// way KEDA does, printing what KEDA would decide. It leaves nothing behind
// but, after a failure, the scalers' logs (it says where).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	bin := flag.String("bin", "bin", "directory of the built binaries (make build)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *bin); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, bin string) (err error) {
	d := &demo{bin: bin, out: os.Stdout}
	defer func() { d.cleanLogs(err != nil, os.Stderr) }()
	if err := d.redisSession(ctx); err != nil {
		return fmt.Errorf("redis-session: %w", err)
	}
	if err := d.postgresQuery(ctx); err != nil {
		return fmt.Errorf("postgres-query: %w", err)
	}
	d.step("oracle-query: not demonstrated here")
	fmt.Fprintln(d.out, "No Oracle server can run on this machine. oracle-query shares postgres-query's SQL core")
	fmt.Fprintln(d.out, "(libs/scalerkit/sqlmetric); services/oracle-query/README.md says how to run its live test.")
	d.step("done: every throwaway server and scaler is stopped and removed")
	return nil
}
