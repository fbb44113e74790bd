package main

import (
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestHelpListsEveryVariable(t *testing.T) {
	code, out, _ := scalertest.Command(t, run, "--help")
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
	scalertest.Unsetenv(t, "REDIS_URL")
	scalertest.Unsetenv(t, "REDIS_ADDRS")
	code, _, errOut := scalertest.Command(t, run)
	if code != 2 {
		t.Errorf("exit code %d without REDIS_URL, want 2 (configuration error)", code)
	}
	if !strings.Contains(errOut, "REDIS_URL or REDIS_ADDRS is required") {
		t.Errorf("stderr does not name the variables: %q", errOut)
	}
}

// TestAnAddressIsNotAURL: REDIS_URL written as host:port says what to
// write instead, at start, with exit status 2.
func TestAnAddressIsNotAURL(t *testing.T) {
	scalertest.Unsetenv(t, "REDIS_ADDRS")
	t.Setenv("REDIS_URL", "127.0.0.1:6379")
	code, _, errOut := scalertest.Command(t, run)
	if code != 2 {
		t.Errorf("exit code %d, want 2 (configuration error)", code)
	}
	want := `REDIS_URL "127.0.0.1:6379" is an address, not a URL: write it as redis://127.0.0.1:6379/0`
	if !strings.Contains(errOut, want) || strings.Contains(errOut, "first path segment") {
		t.Errorf("stderr = %q, want %q", errOut, want)
	}
}

// TestMisconfigurationAtStart: a misspelt variable is named with a "did
// you mean" before the error it causes, and a missing file named by a variable is a configuration
// error naming it (exit 2).
func TestMisconfigurationAtStart(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"misspelt REDIS_URL", map[string]string{"REDIS_ULR": "redis://127.0.0.1:1/0"}, []string{
			"redis-session: REDIS_ULR is set but is not a variable of this scaler: did you mean REDIS_URL?",
			"redis-session: configuration: REDIS_URL or REDIS_ADDRS is required",
		}},
		{"missing CA file", map[string]string{"REDIS_URL": "rediss://127.0.0.1:1/0", "REDIS_TLS_CA_FILE": "/nonexistent/ca.pem"}, []string{
			"redis-session: configuration: REDIS_TLS_CA_FILE: open /nonexistent/ca.pem: no such file or directory",
		}},
		{"missing server certificate", map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "TLS_CERT_FILE": "/nonexistent/tls.crt", "TLS_KEY_FILE": "/nonexistent/tls.key"}, []string{
			"redis-session: configuration: TLS_CERT_FILE: open /nonexistent/tls.crt: no such file or directory",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scalertest.Unsetenv(t, "REDIS_URL", "REDIS_ADDRS", "REDIS_TLS_CA_FILE", "TLS_CERT_FILE", "TLS_KEY_FILE")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			code, _, errOut := scalertest.Command(t, run)
			if code != 2 {
				t.Errorf("exit code %d, want 2 (configuration error)", code)
			}
			// In this order: a "did you mean" comes before the error it
			// explains.
			rest := errOut
			for _, w := range tt.want {
				_, after, found := strings.Cut(rest, w)
				if !found {
					t.Errorf("stderr lacks %q after %q:\n%s", w, tt.want, errOut)
					break
				}
				rest = after
			}
		})
	}
}
