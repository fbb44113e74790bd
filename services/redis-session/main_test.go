package main

import (
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// capture runs the command with args and returns its exit code, stdout
// and stderr.
func capture(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut strings.Builder
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
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
