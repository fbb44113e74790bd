package postgresquery

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kedascalers/kedascalers/libs/scalerkit"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
)

const testURL = "postgres://scaler:secret@db.example:5433/app?sslmode=disable"

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(*Config)
		want string // "" for valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"keyword/value DSN", func(c *Config) { c.URL = "host=db.example port=5432 dbname=app user=scaler sslmode=require" }, ""},
		{"named connection", func(c *Config) { c.Environ = []string{"POSTGRES_URL_REPORTING=" + testURL} }, ""},
		{"exec mode for PgBouncer", func(c *Config) { c.URL = testURL + "&default_query_exec_mode=exec" }, ""},
		{"missing URL", func(c *Config) { c.URL = " " }, "POSTGRES_URL is required"},
		{"malformed URL", func(c *Config) { c.URL = "postgres://scaler:secret@db.example:notaport/app" }, "POSTGRES_URL is not a valid"},
		{"malformed DSN", func(c *Config) { c.URL = "host=db.example sslmode=sometimes" }, "POSTGRES_URL is not a valid"},
		{"missing CA file", func(c *Config) {
			c.URL = testURL[:strings.Index(testURL, "?")] + "?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"
		}, "POSTGRES_URL"},
		{"simple protocol", func(c *Config) { c.URL = testURL + "&default_query_exec_mode=simple_protocol" }, "simple_protocol is not allowed"},
		{"malformed named URL", func(c *Config) { c.Environ = []string{"POSTGRES_URL_REPORTING=postgres://x:y@h:port/db"} }, "POSTGRES_URL_REPORTING is not a valid"},
		{"empty named URL", func(c *Config) { c.Environ = []string{"POSTGRES_URL_REPORTING="} }, "POSTGRES_URL_REPORTING is empty"},
		{"named default", func(c *Config) { c.Environ = []string{"POSTGRES_URL_DEFAULT=" + testURL} }, "POSTGRES_URL_DEFAULT"},
		{"name twice", func(c *Config) {
			c.Environ = []string{"POSTGRES_URL_REPORTING=" + testURL, "POSTGRES_URL_Reporting=" + testURL}
		}, "POSTGRES_URL_REPORTING and POSTGRES_URL_Reporting name the same connection"},
		{"bad name", func(c *Config) { c.Environ = []string{"POSTGRES_URL_RE-PORTING=" + testURL} }, "POSTGRES_URL_RE-PORTING"},
		{"max conns", func(c *Config) { c.MaxConns = 0 }, "POSTGRES_MAX_CONNS"},
		{"max target conns", func(c *Config) { c.MaxTargetConns = 0 }, "POSTGRES_MAX_TARGET_CONNS=0"},
		{"mysql URL", func(c *Config) { c.URL = "mysql://scaler:secret@db.example:3306/app" }, `POSTGRES_URL: scheme "mysql": want postgres://`},
		{"mysql named URL", func(c *Config) { c.Environ = []string{"POSTGRES_URL_REPORTING=mysql://scaler:secret@db.example/app"} }, `POSTGRES_URL_REPORTING: scheme "mysql"`},
		{"URL with a password and a bad port", func(c *Config) { c.URL = "postgres://scaler:secret@db.example:port/app" }, "details are not shown"},
		{"MAX_QUERY_BYTES", func(c *Config) { c.MaxQueryBytes = 1 }, "MAX_QUERY_BYTES=1"},
		{"MAX_ROW_BYTES", func(c *Config) { c.MaxRowBytes = 1 }, "MAX_ROW_BYTES=1"},
		{"min conns", func(c *Config) { c.MinConns = 5 }, "POSTGRES_MIN_CONNS"},
		{"negative min conns", func(c *Config) { c.MinConns = -1 }, "POSTGRES_MIN_CONNS"},
		{"lifetime", func(c *Config) { c.MaxConnLifetime = 0 }, "POSTGRES_MAX_CONN_LIFETIME"},
		{"idle time", func(c *Config) { c.MaxConnIdleTime = -time.Second }, "POSTGRES_MAX_CONN_IDLE_TIME"},
		{"connect timeout", func(c *Config) { c.ConnectTimeout = 0 }, "POSTGRES_CONNECT_TIMEOUT"},
		{"listen channels", func(c *Config) { c.MaxListenChannels = 0 }, "POSTGRES_MAX_LISTEN_CHANNELS"},
		{"query timeout", func(c *Config) { c.QueryTimeout = 0 }, "QUERY_TIMEOUT"},
		{"query timeout too long", func(c *Config) { c.QueryTimeout = 48 * time.Hour }, "QUERY_TIMEOUT=48h0m0s: want at most 1h0m0s"},
		{"max rows", func(c *Config) { c.MaxRows = 0 }, "MAX_ROWS"},
		{"policy", func(c *Config) { c.QueryPolicy = "some" }, "QUERY_POLICY"},
		{"queries", func(c *Config) { c.Queries = "{" }, "QUERIES"},
		{"query on an unknown connection", func(c *Config) {
			c.Queries = `{"reports": {"sql": "select 1", "connection": "reporting"}}`
		}, "POSTGRES_URL_REPORTING is not set"},
		{"query on a named connection", func(c *Config) {
			c.Queries = `{"reports": {"sql": "select 1", "connection": "Reporting"}}`
			c.Environ = []string{"POSTGRES_URL_REPORTING=" + testURL}
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(testURL)
			tt.edit(&cfg)
			_, err := resolve(cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("Validate accepted it, want an error with %q", tt.want)
			case err != nil && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Validate = %q, want it to contain %q", err, tt.want)
			case err != nil && strings.Contains(err.Error(), "secret"):
				t.Fatalf("Validate quotes the password: %q", err)
			}
		})
	}
}

// TestConfigResolvedOnce: what Resolve derived (named queries,
// connections) is what New uses: QUERIES_FILE is not read again, and New
// does not validate again (a Config changed after Resolve, even to
// values Validate refuses, changes nothing).
func TestConfigResolvedOnce(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "queries.json")
	must(t, os.WriteFile(file, []byte(`{"count": {"sql": "select 3"}}`), 0o600))
	cfg := testConfig("postgres://postgres@127.0.0.1:1/none?sslmode=disable")
	cfg.QueriesFile = file
	s := settings(t, cfg)
	must(t, os.Remove(file))
	s.URL, s.MaxConns, s.QueryTimeout = "", 0, 0 // each refused by Validate
	if s.Config.Validate() == nil {
		t.Fatal("the changed Config validates: the test proves nothing")
	}
	b, err := New(context.Background(), s, scalerkit.Env{Log: quiet})
	b = scalertest.Closing(t, b, err)
	if _, err := b.Parse(metadata.NewParser(map[string]string{"queryName": "count", "targetQueryValue": "1"})); err != nil {
		t.Errorf("a named query resolved at load: %v", err)
	}
}

// TestNamedFromEnvironment: POSTGRES_URL_<NAME> and POSTGRES_PASSWORD_<NAME>
// define connection <name>. Not parallel: it sets environment variables.
func TestNamedFromEnvironment(t *testing.T) {
	t.Setenv("POSTGRES_URL_REPORTING", "postgres://report@reports.example/reports")
	t.Setenv("POSTGRES_PASSWORD_REPORTING", "from-a-secret")
	t.Setenv("POSTGRES_URL_Billing", "host=billing.example dbname=billing user=bill")
	cfg := testConfig(testURL)
	cfg.Environ = nil
	_, err := resolve(cfg)
	must(t, err)
	conns, err := cfg.connections()
	must(t, err)
	if len(conns) != 3 {
		t.Fatalf("connections = %v, want default, reporting and billing", conns)
	}
	if c := conns["reporting"]; c.URL != "postgres://report@reports.example/reports" || c.Password != "from-a-secret" || c.URLVar != "POSTGRES_URL_REPORTING" {
		t.Errorf("reporting = %+v", c)
	}
	if c := conns["billing"]; c.Password != "" || c.URLVar != "POSTGRES_URL_Billing" {
		t.Errorf("billing = %+v", c)
	}
	if c := conns[sqlmetric.DefaultConnection]; c.URL != testURL {
		t.Errorf("default = %+v", c)
	}

	t.Setenv("POSTGRES_PASSWORD_ARCHIVE", "orphan")
	if _, err := resolve(cfg); err == nil || !strings.Contains(err.Error(), "POSTGRES_PASSWORD_ARCHIVE is set but POSTGRES_URL_ARCHIVE is not") {
		t.Errorf("Validate with a password and no URL = %v", err)
	}
}

// TestPoolConfig: the pool gets the limits, timeouts, password and
// application name of the configuration, whatever the DSN says.
func TestPoolConfig(t *testing.T) {
	t.Parallel()
	cfg := testConfig(testURL)
	cfg.MaxConns, cfg.MinConns = 3, 1
	cfg.ConnectTimeout = 7 * time.Second
	cfg.MaxConnLifetime, cfg.MaxConnIdleTime = time.Hour, time.Minute
	conn := sqlmetric.Connection{URL: testURL + "&pool_max_conns=100&connect_timeout=60", Password: "override", URLVar: "POSTGRES_URL"}
	pc, err := cfg.poolConfig(conn)
	must(t, err)
	cc := pc.ConnConfig
	if pc.MaxConns != 3 || pc.MinConns != 1 || pc.MaxConnLifetime != time.Hour || pc.MaxConnIdleTime != time.Minute {
		t.Errorf("pool limits = %d/%d/%v/%v", pc.MaxConns, pc.MinConns, pc.MaxConnLifetime, pc.MaxConnIdleTime)
	}
	if cc.ConnectTimeout != 7*time.Second {
		t.Errorf("connect timeout = %v, want 7s", cc.ConnectTimeout)
	}
	if cc.Password != "override" || cc.User != "scaler" || cc.Host != "db.example" || cc.Port != 5433 || cc.Database != "app" {
		t.Errorf("connection = %s@%s:%d/%s with password %q", cc.User, cc.Host, cc.Port, cc.Database, cc.Password)
	}
	if got := cc.RuntimeParams["application_name"]; got != AppName {
		t.Errorf("application_name = %q, want %q", got, AppName)
	}
	if cc.DefaultQueryExecMode == pgx.QueryExecModeSimpleProtocol {
		t.Error("simple protocol")
	}
	if got := listenConfig(pc).RuntimeParams["application_name"]; got != AppName+ListenSuffix {
		t.Errorf("listen application_name = %q", got)
	}
	if pc.ConnConfig.RuntimeParams["application_name"] != AppName {
		t.Error("listenConfig changed the pool's settings")
	}

	// Without POSTGRES_PASSWORD the DSN's password stays; an operator's
	// application_name is kept.
	conn = sqlmetric.Connection{URL: testURL + "&application_name=scaler-eu", URLVar: "POSTGRES_URL"}
	pc, err = cfg.poolConfig(conn)
	must(t, err)
	if pc.ConnConfig.Password != "secret" {
		t.Errorf("password = %q, want the DSN's", pc.ConnConfig.Password)
	}
	if got := listenConfig(pc).RuntimeParams["application_name"]; got != "scaler-eu"+ListenSuffix {
		t.Errorf("listen application_name = %q", got)
	}
}

// TestNewDoesNotConnect: New builds pools without connecting, so the
// scaler starts while the database is down.
func TestNewDoesNotConnect(t *testing.T) {
	t.Parallel()
	cfg := testConfig("postgres://postgres@127.0.0.1:1/none?sslmode=disable")
	cfg.Environ = []string{"POSTGRES_URL_reporting=postgres://postgres@127.0.0.1:2/none?sslmode=disable"}
	start := time.Now()
	b := newBackend(t, cfg)
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("New took %v", d)
	}
	if len(b.pools.Value) != 2 || len(b.listeners) != 2 {
		t.Errorf("%d pools and %d listeners, want 2 each", len(b.pools.Value), len(b.listeners))
	}
	for name, p := range b.pools.Value {
		if n := p.Stat().TotalConns(); n != 0 {
			t.Errorf("pool %s opened %d connections", name, n)
		}
	}
}

// TestPingNamesTheVariable: the start-up check of an unreachable database
// names the variable of its connection.
func TestPingNamesTheVariable(t *testing.T) {
	t.Parallel()
	b := newBackend(t, testConfig("postgres://postgres@127.0.0.1:1/none?sslmode=disable"))
	err := b.Ping(scalertest.Context(t, 10*time.Second))
	if err == nil || !strings.HasPrefix(err.Error(), "POSTGRES_URL: ") {
		t.Errorf("Ping = %v, want an error naming POSTGRES_URL", err)
	}
}
