// Command redis-session is a KEDA external scaler that scales a workload
// on the number of user sessions it keeps in Redis. See README.md.
package main

import (
	"context"
	"io"
	"os"

	"github.com/kedascalers/kedascalers/libs/scalerkit"
	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
	"github.com/kedascalers/kedascalers/services/redis-session/session"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run serves until SIGTERM and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	var cfg session.Config
	return scalerkit.Run("redis-session", args, stdout, stderr, &cfg, func(_ context.Context, env scalerkit.Env) (scaler.Backend, error) {
		return session.New(cfg, env.Log, env.Registerer)
	})
}
