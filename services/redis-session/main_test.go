package main

import (
	"io"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// capture runs run() with args and returns its exit code, stdout and
// stderr.
func capture(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	savedArgs, savedOut, savedErr := os.Args, os.Stdout, os.Stderr
	t.Cleanup(func() { os.Args, os.Stdout, os.Stderr = savedArgs, savedOut, savedErr })
	read := func(f **os.File) func() string {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		*f = w
		out := make(chan string)
		go func() {
			b, _ := io.ReadAll(r)
			r.Close()
			out <- string(b)
		}()
		return func() string { w.Close(); return <-out }
	}
	outText, errText := read(&os.Stdout), read(&os.Stderr)
	os.Args = append([]string{"redis-session"}, args...)
	code = run()
	return code, outText(), errText()
}

// unsetenv removes name for the test and restores it afterwards.
func unsetenv(t *testing.T, name string) {
	t.Setenv(name, "")
	os.Unsetenv(name)
}

func TestHelpListsEveryVariable(t *testing.T) {
	code, out, _ := capture(t, "--help")
	if code != 0 {
		t.Errorf("--help exited %d, want 0", code)
	}
	for _, v := range []string{"GRPC_ADDR", "BACKEND_TIMEOUT", "REDIS_URL", "REDIS_ADDRS", "REDIS_MASTER_NAME", "REDIS_PASSWORD",
		"REDIS_TLS_CA_FILE", "REDIS_POOL_SIZE", "REDIS_SCAN_COUNT", "REDIS_NOTIFY_MIN_INTERVAL"} {
		if !strings.Contains(out, v) {
			t.Errorf("--help does not list %s:\n%s", v, out)
		}
	}
}

func TestWithoutRedisItRefusesToStart(t *testing.T) {
	unsetenv(t, "REDIS_URL")
	unsetenv(t, "REDIS_ADDRS")
	code, _, errOut := capture(t)
	if code != 2 {
		t.Errorf("exit code %d without REDIS_URL, want 2 (configuration error)", code)
	}
	if !strings.Contains(errOut, "REDIS_URL or REDIS_ADDRS is required") {
		t.Errorf("stderr does not name the variables: %q", errOut)
	}
}
