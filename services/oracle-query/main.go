// Command oracle-query is a KEDA external scaler that scales a workload on
// the result of a SQL query against Oracle Database. See README.md.
package main

import (
	"io"
	"os"

	"github.com/kedascalers/kedascalers/libs/scalerkit"
	"github.com/kedascalers/kedascalers/services/oracle-query/oraclequery"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run serves until SIGTERM and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	return scalerkit.Run[oraclequery.Config]("oracle-query", args, stdout, stderr, oraclequery.New)
}
