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
	for _, v := range []string{"GRPC_ADDR", "CACHE_TTL", "BACKEND_TIMEOUT", "QUERY_TIMEOUT", "MAX_ROWS", "QUERY_POLICY", "QUERIES", "QUERIES_FILE",
		"POSTGRES_URL", "POSTGRES_URL_<NAME>", "POSTGRES_PASSWORD", "POSTGRES_MAX_CONNS", "POSTGRES_MIN_CONNS", "POSTGRES_MAX_CONN_LIFETIME",
		"POSTGRES_MAX_CONN_IDLE_TIME", "POSTGRES_CONNECT_TIMEOUT", "POSTGRES_MAX_LISTEN_CHANNELS"} {
		if !strings.Contains(out, v) {
			t.Errorf("--help does not list %s:\n%s", v, out)
		}
	}
}

func TestConfigurationErrorsStopTheStart(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no URL", map[string]string{}, "POSTGRES_URL is required"},
		{"malformed URL", map[string]string{"POSTGRES_URL": "postgres://u:pw@h:port/db"}, "POSTGRES_URL is not a valid"},
		{"malformed named URL", map[string]string{
			"POSTGRES_URL":           "postgres://u@localhost/db",
			"POSTGRES_URL_REPORTING": "host=h sslmode=sometimes",
		}, "POSTGRES_URL_REPORTING is not a valid"},
		{"bad pool size", map[string]string{"POSTGRES_URL": "postgres://u@localhost/db", "POSTGRES_MAX_CONNS": "0"}, "POSTGRES_MAX_CONNS"},
		{"bad policy", map[string]string{"POSTGRES_URL": "postgres://u@localhost/db", "QUERY_POLICY": "open"}, "QUERY_POLICY"},
		{"query timeout not below backend timeout", map[string]string{
			"POSTGRES_URL": "postgres://u@127.0.0.1:1/db", "QUERY_TIMEOUT": "5s", "BACKEND_TIMEOUT": "5s",
		}, "QUERY_TIMEOUT=5s is not below BACKEND_TIMEOUT=5s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, v := range []string{"POSTGRES_URL", "POSTGRES_URL_REPORTING", "POSTGRES_MAX_CONNS", "QUERY_POLICY", "QUERY_TIMEOUT", "BACKEND_TIMEOUT"} {
				scalertest.Unsetenv(t, v)
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			code, _, errOut := scalertest.Command(t, run)
			if code != 2 {
				t.Errorf("exit code %d, want 2 (configuration error)", code)
			}
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("stderr %q does not contain %q", errOut, tt.want)
			}
			if strings.Contains(errOut, ":pw@") {
				t.Errorf("stderr quotes a password: %q", errOut)
			}
		})
	}
}
