// Package testenv starts throwaway database servers for tests and demos.
//
// Each server runs as a child process of the current program, listens only
// on a free port on 127.0.0.1, and keeps all of its files in its own
// temporary directory. A server can be stopped and started again on the same
// port and directory to simulate an outage, and Close kills it, reaps it and
// removes its directory.
//
// In tests, use NewRedis, NewSentinel and NewPostgres: they fail the test (never skip it)
// when the server binary is missing, and register Close with t.Cleanup.
// Programs use StartRedis, StartSentinel and StartPostgres and must call Close themselves.
//
// The servers are started with a parent-death signal, so they die with the
// program even when it exits without running its cleanups (for example when
// go test kills a test binary that ran past its -timeout).
//
// PostgreSQL refuses to run as root. When the program runs as root, initdb
// and postgres are run as the "postgres" OS user, in a temporary directory
// created under os.TempDir and owned by that user.
package testenv
