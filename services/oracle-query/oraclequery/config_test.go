package oraclequery

import (
	"context"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	go_ora "github.com/sijms/go-ora/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit"
	"github.com/kedascalers/kedascalers/libs/scalerkit/config"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
)

const secretPassword = "s3cr#t/p@ss:w%rd"

// parsed is what go-ora reads from a connection URL.
func parsed(t *testing.T, u string) (host string, port int, service, user, password string) {
	t.Helper()
	c, err := go_ora.ParseConfig(u)
	if err != nil {
		t.Fatalf("go-ora refuses %q: %v", u, err)
	}
	if len(c.Servers) == 0 {
		t.Fatalf("%q has no server", u)
	}
	return c.Servers[0].Addr, c.Servers[0].Port, c.ServiceName, c.UserID, c.Password
}

func TestLoadDefaults(t *testing.T) {
	scalertest.UnsetenvPrefix(t, "ORACLE_")
	t.Setenv("ORACLE_URL", "oracle://ks:pw@db.example:1521/FREEPDB1")
	var c Config
	if err := config.Load(&c); err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := testConfig("oracle://ks:pw@db.example:1521/FREEPDB1")
	got, wantSQL := c.Config, want.Config
	if c.MaxConns != want.MaxConns || c.MaxTargetConns != want.MaxTargetConns || c.MaxIdleConns != want.MaxIdleConns ||
		c.MaxConnLifetime != want.MaxConnLifetime || c.MaxConnIdleTime != want.MaxConnIdleTime || c.Port != 1521 ||
		got.QueryTimeout != wantSQL.QueryTimeout || got.MaxRows != wantSQL.MaxRows || got.MaxQueryBytes != wantSQL.MaxQueryBytes ||
		got.MaxRowBytes != wantSQL.MaxRowBytes || got.QueryPolicy != wantSQL.QueryPolicy {
		t.Errorf("defaults %+v, want %+v", c, want)
	}
}

func TestConnectionsFromURL(t *testing.T) {
	scalertest.UnsetenvPrefix(t, "ORACLE_")
	c := testConfig("oracle://ks:old@db.example:1522/FREEPDB1?SSL=true&SSL+VERIFY=false")
	conns, err := c.Connections()
	if err != nil {
		t.Fatal(err)
	}
	u := conns[sqlmetric.DefaultConnection]
	host, port, svc, user, pw := parsed(t, u)
	if host != "db.example" || port != 1522 || svc != "FREEPDB1" || user != "ks" || pw != "old" {
		t.Errorf("URL as is: %s %d %s %s %s", host, port, svc, user, pw)
	}
	oc, _ := go_ora.ParseConfig(u)
	if !oc.SSL || oc.SSLVerify {
		t.Errorf("URL options lost: SSL=%v SSL VERIFY=%v, want true, false", oc.SSL, oc.SSLVerify)
	}

	c.Password = secretPassword
	conns, err = c.Connections()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, user, pw := parsed(t, conns[sqlmetric.DefaultConnection]); user != "ks" || pw != secretPassword {
		t.Errorf("ORACLE_PASSWORD over the URL's: user %q password %q", user, pw)
	}
	c.User = "reader"
	conns, _ = c.Connections()
	if _, _, _, user, pw := parsed(t, conns[sqlmetric.DefaultConnection]); user != "reader" || pw != secretPassword {
		t.Errorf("ORACLE_USER over the URL's: user %q password %q", user, pw)
	}
}

func TestConnectionsFromParts(t *testing.T) {
	scalertest.UnsetenvPrefix(t, "ORACLE_")
	c := testConfig("")
	c.Host, c.Port, c.Service, c.User, c.Password = "db.example", 1599, "ORCLPDB1", "ks_reader", secretPassword
	conns, err := c.Connections()
	if err != nil {
		t.Fatal(err)
	}
	host, port, svc, user, pw := parsed(t, conns[sqlmetric.DefaultConnection])
	if host != "db.example" || port != 1599 || svc != "ORCLPDB1" || user != "ks_reader" || pw != secretPassword {
		t.Errorf("from parts: %s %d %s %s %q", host, port, svc, user, pw)
	}

	c.Options = "SSL=true&SSL VERIFY=true&PREFETCH_ROWS=50"
	conns, err = c.Connections()
	if err != nil {
		t.Fatal(err)
	}
	oc, err := go_ora.ParseConfig(conns[sqlmetric.DefaultConnection])
	if err != nil {
		t.Fatal(err)
	}
	if !oc.SSL || !oc.SSLVerify || oc.PrefetchRows != 50 {
		t.Errorf("ORACLE_OPTIONS: SSL=%v SSL VERIFY=%v PREFETCH_ROWS=%d", oc.SSL, oc.SSLVerify, oc.PrefetchRows)
	}
}

func TestNamedConnections(t *testing.T) {
	scalertest.UnsetenvPrefix(t, "ORACLE_")
	t.Setenv("ORACLE_URL_BILLING", "oracle://bill:old@billing.example:1521/BILLPDB")
	t.Setenv("ORACLE_PASSWORD_BILLING", secretPassword)
	t.Setenv("ORACLE_URL_Reports", "oracle://rep:rp@reports.example:1521/REPPDB")
	c := testConfig("oracle://ks:pw@db.example:1521/FREEPDB1")
	c.Password = "default-only"
	conns, err := c.Connections()
	if err != nil {
		t.Fatal(err)
	}
	if len(conns) != 3 {
		t.Errorf("connections %v, want default, billing and reports", keys(conns))
	}
	if host, _, svc, user, pw := parsed(t, conns["billing"]); host != "billing.example" || svc != "BILLPDB" || user != "bill" || pw != secretPassword {
		t.Errorf("billing: %s %s %s %q", host, svc, user, pw)
	}
	if host, _, _, _, pw := parsed(t, conns["reports"]); host != "reports.example" || pw != "rp" {
		t.Errorf("reports (ORACLE_URL_Reports, lowercased): %s %q", host, pw)
	}
	if _, _, _, _, pw := parsed(t, conns[sqlmetric.DefaultConnection]); pw != "default-only" {
		t.Errorf("ORACLE_PASSWORD applies to the default connection only: %q", pw)
	}

	// Named connections alone are enough.
	c.URL, c.Password = "", ""
	if conns, err := c.Connections(); err != nil || len(conns) != 2 {
		t.Errorf("named connections only: %v, %v", keys(conns), err)
	}

	// A named query may run on a named connection, in any case.
	c.Queries = `{"invoices": {"sql": "select count(*) from invoices", "connection": "BILLING"}}`
	if _, err := resolve(c); err != nil {
		t.Errorf("named query on ORACLE_URL_BILLING: %v", err)
	}
	c.Queries = `{"invoices": {"sql": "select count(*) from invoices", "connection": "ledger"}}`
	if _, err := resolve(c); err == nil || !strings.Contains(err.Error(), "ORACLE_URL_LEDGER") {
		t.Errorf("named query on an unknown connection: %v, want an error naming ORACLE_URL_LEDGER", err)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestValidate(t *testing.T) {
	good := "oracle://ks:" + url.QueryEscape(secretPassword) + "@db.example:1521/FREEPDB1"
	tests := []struct {
		name string
		env  map[string]string
		edit func(*Config)
		want []string // substrings of the error
	}{
		{"nothing", nil, func(c *Config) { c.URL = "" }, []string{"ORACLE_URL", "required"}},
		{"URL and host", nil, func(c *Config) { c.Host = "db" }, []string{"ORACLE_URL and ORACLE_HOST"}},
		{"bad URL", nil, func(c *Config) { c.URL = "oracle://ks:" + secretPassword + "@db:1521/X" }, []string{"ORACLE_URL"}},
		{"not oracle://", nil, func(c *Config) { c.URL = "postgres://ks:pw@db:5432/x" }, []string{"ORACLE_URL", "postgres"}},
		{"no port", nil, func(c *Config) { c.URL = "oracle://ks:pw@db/FREEPDB1" }, []string{"ORACLE_URL", "port"}},
		{"no service", nil, func(c *Config) { c.URL = "oracle://ks:pw@db:1521" }, []string{"ORACLE_URL", "service"}},
		{"unknown option", nil, func(c *Config) { c.URL = "oracle://ks:pw@db:1521/X?COLOUR=blue" }, []string{"ORACLE_URL", "COLOUR"}},
		{"missing wallet", nil, func(c *Config) { c.URL = "oracle://ks@db:1521/X?WALLET=/nonexistent/wallet" }, []string{"ORACLE_URL"}},
		{"options with URL", nil, func(c *Config) { c.Options = "SSL=true" }, []string{"ORACLE_OPTIONS"}},
		{"host without service", nil, func(c *Config) { c.URL, c.Host, c.User = "", "db", "ks" }, []string{"ORACLE_SERVICE"}},
		{"host without user", nil, func(c *Config) { c.URL, c.Host, c.Service = "", "db", "X" }, []string{"ORACLE_USER"}},
		{"bad options", nil, func(c *Config) { c.URL, c.Host, c.Service, c.User, c.Options = "", "db", "X", "ks", "SSL=%zz" }, []string{"ORACLE_OPTIONS"}},
		{"unknown option in parts", nil, func(c *Config) { c.URL, c.Host, c.Service, c.User, c.Options = "", "db", "X", "ks", "COLOUR=blue" }, []string{"ORACLE_HOST", "COLOUR"}},
		{"service without host", nil, func(c *Config) { c.URL, c.Service = "", "X" }, []string{"ORACLE_SERVICE", "ORACLE_HOST"}},
		{"password without a default", map[string]string{"ORACLE_URL_A": good}, func(c *Config) { c.URL, c.Password = "", "pw" }, []string{"ORACLE_PASSWORD", "ORACLE_URL"}},
		{"port 0", nil, func(c *Config) { c.Port = 0 }, []string{"ORACLE_PORT=0"}},
		{"port too big", nil, func(c *Config) { c.Port = 70000 }, []string{"ORACLE_PORT=70000"}},
		{"no open conns", nil, func(c *Config) { c.MaxConns = 0 }, []string{"ORACLE_MAX_CONNS=0"}},
		{"no target conns", nil, func(c *Config) { c.MaxTargetConns = 0 }, []string{"ORACLE_MAX_TARGET_CONNS=0"}},
		{"MAX_QUERY_BYTES", nil, func(c *Config) { c.MaxQueryBytes = 1 }, []string{"MAX_QUERY_BYTES=1"}},
		{"MAX_ROW_BYTES", nil, func(c *Config) { c.MaxRowBytes = 1 }, []string{"MAX_ROW_BYTES=1"}},
		{"more idle than open", nil, func(c *Config) { c.MaxIdleConns = 5 }, []string{"ORACLE_MAX_IDLE_CONNS=5"}},
		{"negative idle", nil, func(c *Config) { c.MaxIdleConns = -1 }, []string{"ORACLE_MAX_IDLE_CONNS=-1"}},
		{"negative lifetime", nil, func(c *Config) { c.MaxConnLifetime = -time.Second }, []string{"ORACLE_MAX_CONN_LIFETIME"}},
		{"negative idle time", nil, func(c *Config) { c.MaxConnIdleTime = -time.Second }, []string{"ORACLE_MAX_CONN_IDLE_TIME"}},
		{"QUERY_TIMEOUT", nil, func(c *Config) { c.QueryTimeout = 0 }, []string{"QUERY_TIMEOUT"}},
		{"MAX_ROWS", nil, func(c *Config) { c.MaxRows = 0 }, []string{"MAX_ROWS"}},
		{"QUERY_POLICY", nil, func(c *Config) { c.QueryPolicy = "some" }, []string{"QUERY_POLICY"}},
		{"QUERIES", nil, func(c *Config) { c.Queries = "{" }, []string{"QUERIES"}},
		{"named DEFAULT", map[string]string{"ORACLE_URL_DEFAULT": good}, nil, []string{"ORACLE_URL_DEFAULT", "another name"}},
		{"same name twice", map[string]string{"ORACLE_URL_BILLING": good, "ORACLE_URL_billing": good}, nil, []string{"ORACLE_URL_BILLING and ORACLE_URL_billing"}},
		{"empty named URL", map[string]string{"ORACLE_URL_BILLING": " "}, nil, []string{"ORACLE_URL_BILLING is empty"}},
		{"bad named URL", map[string]string{"ORACLE_URL_BILLING": "oracle://b:" + secretPassword + "@db:1521/X"}, nil, []string{"ORACLE_URL_BILLING"}},
		{"password without URL", map[string]string{"ORACLE_PASSWORD_LEDGER": "pw"}, nil, []string{"ORACLE_PASSWORD_LEDGER", "ORACLE_URL_LEDGER"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scalertest.UnsetenvPrefix(t, "ORACLE_")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			c := testConfig(good)
			if tt.edit != nil {
				tt.edit(&c)
			}
			_, err := resolve(c)
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
			for _, secret := range []string{secretPassword, url.QueryEscape(secretPassword)} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("Validate() = %q quotes the password", err)
				}
			}
		})
	}
	scalertest.UnsetenvPrefix(t, "ORACLE_")
	if _, err := resolve(testConfig(good)); err != nil {
		t.Errorf("valid configuration: %v", err)
	}
}

func TestLoadRefusesBadEnvironment(t *testing.T) {
	scalertest.UnsetenvPrefix(t, "ORACLE_")
	t.Setenv("ORACLE_URL", "oracle://ks:pw@db.example:1521/FREEPDB1")
	t.Setenv("ORACLE_MAX_CONNS", "0")
	var c Config
	if err := config.Load(&c); err == nil || !strings.Contains(err.Error(), "ORACLE_MAX_CONNS") {
		t.Errorf("Load with ORACLE_MAX_CONNS=0: %v", err)
	}
	t.Setenv("ORACLE_MAX_CONNS", "4")
	t.Setenv("QUERY_POLICY", "xyz")
	if err := config.Load(&c); err == nil || !strings.Contains(err.Error(), "QUERY_POLICY") {
		t.Errorf("Load with QUERY_POLICY=xyz: %v", err)
	}
}

func TestNewAppliesPoolSettings(t *testing.T) {
	scalertest.UnsetenvPrefix(t, "ORACLE_")
	t.Setenv("ORACLE_URL_REPORTS", "oracle://rep:rp@127.0.0.1:1/REPPDB")
	c := testConfig("oracle://ks:pw@127.0.0.1:1/FREEPDB1")
	c.MaxConns, c.MaxIdleConns = 3, 1
	b, err := New(context.Background(), settings(t, c), scalerkit.Env{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if len(b.pools.Value) != 2 {
		t.Fatalf("pools %d, want 2 (default and reports)", len(b.pools.Value))
	}
	for name, db := range b.pools.Value {
		if got := db.Stats().MaxOpenConnections; got != 3 {
			t.Errorf("%s: MaxOpenConnections %d, want ORACLE_MAX_CONNS=3", name, got)
		}
		if got := db.Stats().OpenConnections; got != 0 {
			t.Errorf("%s: %d connections open at start, want 0 (pools are lazy)", name, got)
		}
	}
	if len(b.pools.Target) != 2 {
		t.Fatalf("target pools %d, want 2 (default and reports)", len(b.pools.Target))
	}
	for name, db := range b.pools.Target {
		if db == b.pools.Value[name] {
			t.Errorf("%s: target reads share the value pool", name)
		}
		if got := db.Stats().MaxOpenConnections; got != 1 {
			t.Errorf("%s: target pool MaxOpenConnections %d, want ORACLE_MAX_TARGET_CONNS=1", name, got)
		}
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestConfigFromEnviron: named connections come from Config.Environ when
// set (tests inject it), and what Resolve derived is what New uses:
// QUERIES_FILE is not read again, and New does not validate again (a
// Config changed after Resolve, even to values Validate refuses, changes
// nothing).
func TestConfigFromEnviron(t *testing.T) {
	scalertest.UnsetenvPrefix(t, "ORACLE_")
	file := filepath.Join(t.TempDir(), "queries.json")
	if err := os.WriteFile(file, []byte(`{"billed": {"sql": "select count(*) from invoices", "connection": "billing"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c := testConfig("oracle://ks:pw@127.0.0.1:1/FREEPDB1")
	c.Environ = []string{"ORACLE_URL_BILLING=oracle://bill:pw@127.0.0.1:1/BILLPDB"}
	c.QueriesFile = file
	st := settings(t, c)
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	st.URL, st.Port, st.MaxRows = "", 0, 0 // each refused by Validate
	if st.Config.Validate() == nil {
		t.Fatal("the changed Config validates: the test proves nothing")
	}
	b, err := New(context.Background(), st, scalerkit.Env{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, ok := b.pools.Value["billing"]; !ok || len(b.pools.Value) != 2 {
		t.Errorf("pools %v, want default and billing (from Environ)", slices.Sorted(maps.Keys(b.pools.Value)))
	}
	if _, err := b.Parse(metadata.NewParser(map[string]string{"queryName": "billed", "targetQueryValue": "1"})); err != nil {
		t.Errorf("a named query resolved at load: %v", err)
	}
}

// TestQueryTimeoutBelowBackendTimeout: QUERY_TIMEOUT at or above
// BACKEND_TIMEOUT stops the start, naming both.
func TestQueryTimeoutBelowBackendTimeout(t *testing.T) {
	scalertest.UnsetenvPrefix(t, "ORACLE_")
	c := testConfig("oracle://ks:pw@127.0.0.1:1/FREEPDB1")
	for _, bt := range []time.Duration{c.QueryTimeout, time.Second} {
		_, err := c.Resolve(config.Config{BackendTimeout: bt})
		if err == nil || !strings.Contains(err.Error(), "QUERY_TIMEOUT=4s is not below BACKEND_TIMEOUT") {
			t.Errorf("BACKEND_TIMEOUT=%v: Resolve = %v, want a refusal naming both", bt, err)
		}
	}
	if _, err := c.Resolve(config.Config{BackendTimeout: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
}

// The scaler starts while the database is down, and reports the outage as
// an error, never as a 0.
func TestStartsWhileDatabaseIsDown(t *testing.T) {
	scalertest.UnsetenvPrefix(t, "ORACLE_")
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(context.Background(), settings(t, testConfig("oracle://ks:pw@127.0.0.1:"+strconv.Itoa(port)+"/FREEPDB1")), scalerkit.Env{Log: quiet})
	if err != nil {
		t.Fatalf("New with the database down: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.Ping(scalertest.Context(t, 10*time.Second)); err == nil || !strings.HasPrefix(err.Error(), "ORACLE_URL: ") {
		t.Errorf("Ping = %v, want an error naming ORACLE_URL", err)
	}
	s := scalertest.Serve(t, b, scalertest.Options{})
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := s.Poll(ctx, trigger("select count(*) from ks_bookings"))
	if status.Code(err) != codes.Unavailable {
		t.Errorf("poll with the database down: %+v, %v; want Unavailable", p, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the outage took %v to report", d)
	}
	if p.Target != 10 {
		t.Errorf("GetMetricSpec needs no database: target %v, want 10", p.Target)
	}
}

func TestWalletOption(t *testing.T) {
	// go-ora reads the wallet when it parses the URL: a directory without
	// one is refused at start, naming the variable.
	scalertest.UnsetenvPrefix(t, "ORACLE_")
	dir := t.TempDir()
	c := testConfig("oracle://ks@db.example:1521/FREEPDB1?WALLET=" + url.QueryEscape(filepath.Join(dir, "wallet")))
	_, err := resolve(c)
	if err == nil || !strings.HasPrefix(err.Error(), "ORACLE_URL") {
		t.Errorf("missing wallet: %v, want an error naming ORACLE_URL", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cwallet.sso"), []byte("not a wallet"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.URL = "oracle://ks@db.example:1521/FREEPDB1?WALLET=" + url.QueryEscape(dir)
	if _, err := resolve(c); err == nil {
		t.Error("a corrupt cwallet.sso was accepted")
	}
}

// TestRenamedVariables: the names before the common rule (MAX_ first)
// still work for one release, with a warning naming the new one.
func TestRenamedVariables(t *testing.T) {
	scalertest.UnsetenvPrefix(t, "ORACLE_")
	t.Setenv("ORACLE_URL", "oracle://ks:pw@127.0.0.1:1/FREEPDB1")
	t.Setenv("ORACLE_MAX_OPEN_CONNS", "3")
	t.Setenv("ORACLE_CONN_MAX_LIFETIME", "10m")
	t.Setenv("ORACLE_CONN_MAX_IDLE_TIME", "1m")
	var c Config
	if err := config.Load(&c); err != nil {
		t.Fatal(err)
	}
	if c.MaxConns != 3 || c.MaxConnLifetime != 10*time.Minute || c.MaxConnIdleTime != time.Minute {
		t.Errorf("loaded %d, %v, %v from the old names, want 3, 10m, 1m", c.MaxConns, c.MaxConnLifetime, c.MaxConnIdleTime)
	}
	warnings := strings.Join(config.Renamed(&c), "\n")
	for _, w := range []string{"ORACLE_MAX_OPEN_CONNS is renamed ORACLE_MAX_CONNS", "ORACLE_CONN_MAX_LIFETIME is renamed ORACLE_MAX_CONN_LIFETIME",
		"ORACLE_CONN_MAX_IDLE_TIME is renamed ORACLE_MAX_CONN_IDLE_TIME"} {
		if !strings.Contains(warnings, w) {
			t.Errorf("warnings lack %q:\n%s", w, warnings)
		}
	}
}
