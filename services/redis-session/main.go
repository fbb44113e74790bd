// Command redis-session is a KEDA external scaler that scales a workload
// on the number of user sessions it keeps in Redis. See README.md.
package main

import (
	"io"
	"os"

	"github.com/kedascalers/kedascalers/libs/scalerkit"
	"github.com/kedascalers/kedascalers/services/redis-session/redissession"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run serves until SIGTERM and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	return scalerkit.Run[redissession.Config]("redis-session", args, stdout, stderr, redissession.New)
}
