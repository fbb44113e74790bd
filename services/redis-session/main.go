// Command redis-session is a KEDA external scaler that scales a workload
// on the number of user sessions it keeps in Redis. See README.md.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/kedascalers/kedascalers/libs/scalerkit"
	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
	"github.com/kedascalers/kedascalers/services/redis-session/session"
)

func main() {
	os.Exit(run())
}

// run serves until SIGTERM and returns the exit code.
func run() int {
	var cfg session.Config
	return scalerkit.Main("redis-session", &cfg, func(_ context.Context, log *slog.Logger) (scaler.Backend, error) {
		return session.New(cfg, log)
	})
}
