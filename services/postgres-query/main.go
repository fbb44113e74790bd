// Command postgres-query is a KEDA external scaler that scales a workload
// on the result of a SQL query in PostgreSQL. See README.md.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/kedascalers/kedascalers/libs/scalerkit"
	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
	"github.com/kedascalers/kedascalers/services/postgres-query/pgquery"
)

func main() {
	os.Exit(run())
}

// run serves until SIGTERM and returns the exit code.
func run() int {
	var cfg pgquery.Config
	return scalerkit.Main("postgres-query", &cfg, func(_ context.Context, log *slog.Logger) (scaler.Backend, error) {
		return pgquery.New(cfg, log)
	})
}
