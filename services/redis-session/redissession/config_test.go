package redissession

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kedascalers/kedascalers/libs/scalerkit"
	"github.com/kedascalers/kedascalers/libs/scalerkit/config"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
)

// validConfig is a valid Config with the envconfig defaults.
func validConfig() Config {
	return Config{
		URL: "redis://127.0.0.1:1/0", PoolSize: 10, MinIdleConns: 1, ConnectTimeout: 2 * time.Second,
		ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second, ScanCount: 1000, NotifyMinInterval: 5 * time.Second,
		MaxConnections: 32, MaxDatabases: 16, ClientIdleTimeout: 2 * time.Minute, MaxWatchedKeys: 6000,
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string // in the error; empty for a valid config
	}{
		{"url", func(c *Config) {}, ""},
		{"rediss url", func(c *Config) { c.URL = "rediss://u:p@redis.example:6380/3"; c.TLSServerName = "redis.example" }, ""},
		{"sentinel", func(c *Config) {
			c.URL = ""
			c.Addrs = []string{"s1:26379", " s2:26379"}
			c.MasterName = "mymaster"
			c.DB = 4
		}, ""},
		{"cluster", func(c *Config) { c.URL = ""; c.Addrs = []string{"n1:6379", "n2:6379"} }, ""},
		{"single-address cluster", func(c *Config) { c.URL = ""; c.Addrs = []string{"cfg:6379"}; c.Cluster = true }, ""},
		{"nothing", func(c *Config) { c.URL = "" }, "REDIS_URL or REDIS_ADDRS is required"},
		{"both", func(c *Config) { c.Addrs = []string{"a:1"} }, "REDIS_URL and REDIS_ADDRS"},
		{"master with url", func(c *Config) { c.MasterName = "m" }, "REDIS_MASTER_NAME"},
		{"cluster with url", func(c *Config) { c.Cluster = true }, "REDIS_CLUSTER"},
		{"cluster and master", func(c *Config) { c.URL = ""; c.Addrs = []string{"a:1"}; c.Cluster = true; c.MasterName = "m" }, "REDIS_CLUSTER and REDIS_MASTER_NAME"},
		{"cluster db", func(c *Config) { c.URL = ""; c.Addrs = []string{"a:1", "b:1"}; c.DB = 1 }, "REDIS_DB=1"},
		{"negative db", func(c *Config) { c.DB = -1 }, "REDIS_DB=-1"},
		{"bad address", func(c *Config) { c.URL = ""; c.Addrs = []string{"a:1", "b"} }, `REDIS_ADDRS entry "b"`},
		{"empty address", func(c *Config) { c.URL = ""; c.Addrs = []string{"a:1", ""} }, "REDIS_ADDRS entry"},
		{"scheme", func(c *Config) { c.URL = "http://x:1" }, "REDIS_URL scheme"},
		{"unix scheme", func(c *Config) { c.URL = "unix:///tmp/redis.sock" }, "REDIS_URL scheme"},
		{"query", func(c *Config) { c.URL = "redis://x:1/0?pool_size=100" }, "REDIS_URL has query parameters"},
		{"path", func(c *Config) { c.URL = "redis://x:1/zero" }, "REDIS_URL path"},
		{"no host", func(c *Config) { c.URL = "redis:///0" }, "REDIS_URL has no host"},
		{"pool", func(c *Config) { c.PoolSize = 0 }, "REDIS_POOL_SIZE=0"},
		{"idle", func(c *Config) { c.MinIdleConns = 11 }, "REDIS_MIN_IDLE_CONNS=11"},
		{"dial", func(c *Config) { c.ConnectTimeout = 0 }, "REDIS_CONNECT_TIMEOUT"},
		{"read", func(c *Config) { c.ReadTimeout = -time.Second }, "REDIS_READ_TIMEOUT"},
		{"write", func(c *Config) { c.WriteTimeout = 0 }, "REDIS_WRITE_TIMEOUT"},
		{"scan", func(c *Config) { c.ScanCount = 0 }, "REDIS_SCAN_COUNT=0"},
		{"notify", func(c *Config) { c.NotifyMinInterval = -1 }, "REDIS_NOTIFY_MIN_INTERVAL"},
		{"max connections", func(c *Config) { c.MaxConnections = 0 }, "REDIS_MAX_CONNECTIONS=0"},
		{"max databases", func(c *Config) { c.MaxDatabases = 0 }, "REDIS_MAX_DATABASES=0"},
		{"client idle", func(c *Config) { c.ClientIdleTimeout = 0 }, "REDIS_CLIENT_IDLE_TIMEOUT"},
		{"watched keys", func(c *Config) { c.MaxWatchedKeys = -1 }, "REDIS_MAX_WATCHED_KEYS=-1"},
		{"budget too small", func(c *Config) { c.MaxConnections = 1 }, "REDIS_MAX_CONNECTIONS=1 is too small with standalone: 1 are reserved"},
		{"sentinel budget too small", func(c *Config) {
			c.URL = ""
			c.Addrs = []string{"s1:26379", "s2:26379", "s3:26379"}
			c.MasterName = "m"
			c.MaxConnections = 8
		}, "with sentinel"},
		{"idle conns past the pool", func(c *Config) { c.MaxConnections = 3; c.MinIdleConns = 3 }, "REDIS_MIN_IDLE_CONNS=3"},
		{"address without scheme", func(c *Config) { c.URL = "127.0.0.1:6379" }, `REDIS_URL "127.0.0.1:6379" is an address, not a URL: write it as redis://127.0.0.1:6379/0`},
		{"host without scheme", func(c *Config) { c.URL = "redis.example" }, "REDIS_URL has no scheme: want a URL such as redis://127.0.0.1:6379/0"},
		{"tls settings without tls", func(c *Config) { c.TLSCAFile = "ca.pem" }, "TLS is off"},
		{"skip verify without tls", func(c *Config) { c.TLSInsecureSkipVerify = true }, "TLS is off"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.change(&c)
			_, err := resolve(c)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("Validate accepted the config, want an error containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Validate = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestConfigNeverQuotesThePassword(t *testing.T) {
	for _, u := range []string{"user:s3cret@host:6379", "redis://user:s3cret@host:bad/0", "redis://user:s3cret@ho st:1/0", "redis://user:s3cret@host:1/x?a=b"} {
		c := validConfig()
		c.URL = u
		_, err := resolve(c)
		if err == nil {
			t.Fatalf("Validate(%q) accepted a bad URL", u)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Validate(%q) = %q quotes the password", u, err)
		}
	}
}

func TestParseURL(t *testing.T) {
	got, err := parseURL("rediss://alice:p%40ss@cache.example:6380/5")
	must(t, err)
	want := redisURL{addr: "cache.example:6380", username: "alice", password: "p@ss", db: 5}
	if got != want {
		t.Errorf("parseURL = %+v, want %+v", got, want)
	}
	got, err = parseURL("redis://[::1]")
	must(t, err)
	if want := (redisURL{addr: "[::1]:6379"}); got != want {
		t.Errorf("parseURL = %+v, want %+v", got, want)
	}
}

// TestConfigFromEnvironment loads the configuration the way Main does.
func TestConfigFromEnvironment(t *testing.T) {
	t.Setenv("REDIS_ADDRS", "s1:26379,s2:26379")
	t.Setenv("REDIS_MASTER_NAME", "mymaster")
	t.Setenv("REDIS_PASSWORD", "from-a-secret")
	var c Config
	must(t, config.Load(&c))
	want := Config{
		Addrs: []string{"s1:26379", "s2:26379"}, MasterName: "mymaster", Password: "from-a-secret",
		PoolSize: 10, MinIdleConns: 1, ConnectTimeout: 2 * time.Second, ReadTimeout: 3 * time.Second,
		WriteTimeout: 3 * time.Second, ScanCount: 1000, NotifyMinInterval: 5 * time.Second,
		MaxConnections: 32, MaxDatabases: 16, ClientIdleTimeout: 2 * time.Minute, MaxWatchedKeys: 6000,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("loaded %+v, want %+v", c, want)
	}

	var help bytes.Buffer
	must(t, config.Usage(&help, &Config{}))
	for _, v := range []string{"REDIS_URL", "REDIS_ADDRS", "REDIS_PASSWORD", "REDIS_POOL_SIZE", "REDIS_SCAN_COUNT", "REDIS_TLS_CA_FILE"} {
		if !strings.Contains(help.String(), v) {
			t.Errorf("--help does not list %s:\n%s", v, help.String())
		}
	}
}

func TestResolveRejectsBadTLSFiles(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	must(t, os.WriteFile(notPEM, []byte("not a certificate"), 0o600))
	for _, tt := range []struct{ file, want string }{
		{filepath.Join(dir, "missing.pem"), "REDIS_TLS_CA_FILE"},
		{notPEM, "no PEM certificate"},
	} {
		c := validConfig()
		c.URL = "rediss://127.0.0.1:1/0"
		c.TLSCAFile = tt.file
		if _, err := resolve(c); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Resolve with REDIS_TLS_CA_FILE=%s: err = %v, want it to contain %q", tt.file, err, tt.want)
		}
	}
}

// TestCredentialsOverrideTheURL checks that REDIS_USERNAME and
// REDIS_PASSWORD win over the URL's, against a Redis that requires them.
func TestCredentialsOverrideTheURL(t *testing.T) {
	t.Parallel()
	r := testenv.NewRedis(t, "--requirepass", "right")
	for _, tt := range []struct {
		name, url, user, password string
		ok                        bool
	}{
		{"url password", "redis://:right@" + r.Addr() + "/0", "", "", true},
		{"override a wrong url password", "redis://:wrong@" + r.Addr() + "/0", "", "right", true},
		{"override with default user", "redis://" + r.Addr() + "/0", "default", "right", true},
		{"wrong override", "redis://:right@" + r.Addr() + "/0", "", "wrong", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig(r)
			c.URL, c.Username, c.Password = tt.url, tt.user, tt.password
			b := newBackend(t, c)
			tr, err := b.Parse(metadata.NewParser(map[string]string{}))
			must(t, err)
			_, err = tr.Probe.Read(scalertest.Context(t, 5*time.Second))
			if tt.ok && err != nil {
				t.Errorf("read: %v", err)
			}
			if !tt.ok && err == nil {
				t.Error("read with a wrong password succeeded")
			}
		})
	}
}

// TestNewTrustsItsSettings: New runs on what Resolve derived and checks
// nothing again; a Config changed after Resolve, even to values Validate
// refuses, does not change the Backend.
func TestNewTrustsItsSettings(t *testing.T) {
	r := testenv.NewRedis(t)
	s, err := resolve(testConfig(r))
	must(t, err)
	s.URL, s.PoolSize = "", -1 // each refused by Validate
	if err := s.Config.Validate(); err == nil {
		t.Fatal("the changed Config validates: the test proves nothing")
	}
	b, err := New(t.Context(), s, scalerkit.Env{Log: quiet})
	b = scalertest.Closing(t, b, err)
	tr, err := b.Parse(metadata.NewParser(map[string]string{}))
	must(t, err)
	if _, err := tr.Probe.Read(scalertest.Context(t, 5*time.Second)); err != nil {
		t.Errorf("a read with the resolved settings: %v", err)
	}
}

// TestPoolSizeCutIsLogged: REDIS_POOL_SIZE cut to fit
// REDIS_MAX_CONNECTIONS is said at start, with the reason.
func TestPoolSizeCutIsLogged(t *testing.T) {
	for _, tt := range []struct {
		name     string
		poolSize int
		want     string
	}{
		{"cut", 10, `msg="REDIS_POOL_SIZE cut to fit REDIS_MAX_CONNECTIONS" REDIS_POOL_SIZE=10 poolSize=7 reason="a pool of 7 connections and 1 reserved (standalone) must fit in REDIS_MAX_CONNECTIONS=8"`},
		{"fits", 5, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			c.PoolSize, c.MaxConnections = tt.poolSize, 8
			var logs wait.Buffer
			newBackendEnv(t, c, scalerkit.Env{Log: slog.New(slog.NewTextHandler(&logs, nil))})
			if got := strings.Contains(logs.String(), "REDIS_POOL_SIZE cut"); got != (tt.want != "") || !strings.Contains(logs.String(), tt.want) {
				t.Errorf("logs:\n%s\nwant a line %q", logs.String(), tt.want)
			}
		})
	}
}

// TestPingNamesTheVariable: the start-up check of an unreachable Redis
// names the variable that says where it is.
func TestPingNamesTheVariable(t *testing.T) {
	r := testenv.NewRedis(t)
	must(t, r.Stop())
	b := newBackend(t, testConfig(r))
	err := b.Ping(scalertest.Context(t, 5*time.Second))
	if err == nil || !strings.HasPrefix(err.Error(), "REDIS_URL ("+r.Addr()+")") {
		t.Errorf("Ping = %v, want an error naming REDIS_URL and the address", err)
	}
}
