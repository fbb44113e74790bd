// Command postgres-query is a KEDA external scaler that scales a workload
// on the result of a SQL query in PostgreSQL. See README.md.
package main

import (
	"io"
	"os"

	"github.com/kedascalers/kedascalers/libs/scalerkit"
	"github.com/kedascalers/kedascalers/services/postgres-query/postgresquery"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run serves until SIGTERM and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	return scalerkit.Run[postgresquery.Config]("postgres-query", args, stdout, stderr, postgresquery.New)
}
