// Command scalerctl plays KEDA against an external scaler: it performs the
// RPCs KEDA performs on a poll (check) or follows the push streams (watch),
// and shows what KEDA and the HPA would do. Run 'scalerctl --help'.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kedascalers/kedascalers/tools/scalerctl/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
