// Command oracle-query is a KEDA external scaler that scales a workload on
// the result of a SQL query against Oracle Database. See README.md.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/kedascalers/kedascalers/libs/scalerkit"
	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
	"github.com/kedascalers/kedascalers/services/oracle-query/oraquery"
)

func main() {
	os.Exit(run())
}

// run serves until SIGTERM and returns the exit code.
func run() int {
	var cfg oraquery.Config
	return scalerkit.Main("oracle-query", &cfg, func(_ context.Context, log *slog.Logger) (scaler.Backend, error) {
		return oraquery.New(cfg, log)
	})
}
