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
	for _, v := range []string{"GRPC_ADDR", "BACKEND_TIMEOUT", "QUERY_TIMEOUT", "MAX_ROWS", "QUERY_POLICY", "QUERIES", "QUERIES_FILE",
		"ORACLE_URL", "ORACLE_HOST", "ORACLE_PORT", "ORACLE_SERVICE", "ORACLE_USER", "ORACLE_PASSWORD", "ORACLE_OPTIONS",
		"ORACLE_MAX_CONNS", "ORACLE_MAX_IDLE_CONNS", "ORACLE_MAX_CONN_LIFETIME", "ORACLE_MAX_CONN_IDLE_TIME"} {
		if !strings.Contains(out, v) {
			t.Errorf("--help does not list %s:\n%s", v, out)
		}
	}
}

func TestWithoutOracleItRefusesToStart(t *testing.T) {
	scalertest.UnsetenvPrefix(t, "ORACLE_")
	code, _, errOut := scalertest.Command(t, run)
	if code != 2 {
		t.Errorf("exit code %d without ORACLE_URL, want 2 (configuration error)", code)
	}
	if !strings.Contains(errOut, "ORACLE_URL") || !strings.Contains(errOut, "required") {
		t.Errorf("stderr does not name the variable: %q", errOut)
	}
}

func TestBadPoolSettingRefusesToStart(t *testing.T) {
	scalertest.UnsetenvPrefix(t, "ORACLE_")
	t.Setenv("ORACLE_URL", "oracle://ks:pw@127.0.0.1:1521/FREEPDB1")
	t.Setenv("ORACLE_MAX_IDLE_CONNS", "9")
	code, _, errOut := scalertest.Command(t, run)
	if code != 2 || !strings.Contains(errOut, "ORACLE_MAX_IDLE_CONNS=9") {
		t.Errorf("exit %d, stderr %q; want 2 naming ORACLE_MAX_IDLE_CONNS", code, errOut)
	}
}
