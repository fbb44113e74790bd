// Command demo is what `make demo` runs: it starts throwaway backends,
// runs the scaler services against them, and asks them with scalerctl the
// way KEDA does, printing what KEDA would decide. It leaves nothing behind.
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

func run(ctx context.Context, bin string) error {
	d := &demo{bin: bin, out: os.Stdout}
	return d.redisSession(ctx)
}
