package config_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kedascalers/kedascalers/libs/scalerkit/config"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
)

// vars are the shared variables, a public interface.
var vars = []string{
	"GRPC_ADDR", "HTTP_ADDR", "LOG_LEVEL", "LOG_FORMAT", "CACHE_TTL", "PUSH_INTERVAL", "PUSH_WATCHED_INTERVAL",
	"BACKEND_TIMEOUT", "SHUTDOWN_TIMEOUT", "TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CLIENT_CA_FILE",
	"MAX_QUESTIONS", "MAX_QUESTION_BYTES", "MAX_PUSH_STREAMS", "MAX_PUSH_STREAMS_PER_NAMESPACE", "MAX_FEEDS", "MAX_TARGET_READERS", "TARGET_READER_IDLE", "MAX_METADATA_BYTES",
	"MAX_CALLS_PER_NAMESPACE", "MAX_WAITING_PER_NAMESPACE", "MAX_BACKEND_CALLS",
	"GRPC_MAX_CONNECTIONS", "GRPC_MAX_CONCURRENT_STREAMS", "GRPC_HANDSHAKE_TIMEOUT", "GRPC_KEEPALIVE_MIN_PING",
	"GRPC_MAX_RECV_MSG_BYTES", "MAX_CONNECTION_AGE", "MAX_CONNECTION_AGE_GRACE",
}

// cleanEnv unsets every shared variable and sets env.
func cleanEnv(t *testing.T, env map[string]string) {
	t.Helper()
	scalertest.Unsetenv(t, vars...)
	for k, v := range env {
		t.Setenv(k, v)
	}
}

func TestLoadDefaults(t *testing.T) {
	cleanEnv(t, nil)
	var c config.Config
	if err := config.Load(&c); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if want := config.Defaults(); c != want {
		t.Errorf("Load() =\n%+v\nwant Defaults()\n%+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
}

// TestREADMEDefaults: the root README's table of shared variables is the
// default tags, row for row.
func TestREADMEDefaults(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "\n## Configuration\n")
	if !ok {
		t.Fatal("README has no Configuration section")
	}
	table, _, _ = strings.Cut(table, "\n\n#")
	row := regexp.MustCompile("(?m)^\\| `([A-Z0-9_]+)` \\| (?:`([^`]*)`)? *\\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		documented[m[1]] = m[2]
	}
	want := map[string]string{}
	typ := reflect.TypeFor[config.Config]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		want[f.Tag.Get("envconfig")] = f.Tag.Get("default")
	}
	if !maps.Equal(documented, want) {
		t.Errorf("README documents (variable: default)\n%v\nthe code says\n%v", documented, want)
	}
}

func TestLoadValues(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		check func(c config.Config) bool
	}{
		{"addresses", map[string]string{"GRPC_ADDR": "127.0.0.1:1", "HTTP_ADDR": "127.0.0.1:2"},
			func(c config.Config) bool { return c.GRPCAddr == "127.0.0.1:1" && c.HTTPAddr == "127.0.0.1:2" }},
		{"durations", map[string]string{"CACHE_TTL": "250ms", "PUSH_INTERVAL": "1m", "BACKEND_TIMEOUT": "3s", "SHUTDOWN_TIMEOUT": "1h"},
			func(c config.Config) bool {
				return c.CacheTTL == 250*time.Millisecond && c.PushInterval == time.Minute &&
					c.BackendTimeout == 3*time.Second && c.ShutdownTimeout == time.Hour
			}},
		{"CACHE_TTL=0 keeps nothing", map[string]string{"CACHE_TTL": "0"}, func(c config.Config) bool { return c.CacheTTL == 0 }},
		{"SHUTDOWN_TIMEOUT=0 stops hard", map[string]string{"SHUTDOWN_TIMEOUT": "0s"}, func(c config.Config) bool { return c.ShutdownTimeout == 0 }},
		{"LOG_LEVEL debug", map[string]string{"LOG_LEVEL": "debug"}, func(c config.Config) bool { return c.LogLevel == "debug" }},
		{"LOG_LEVEL upper case", map[string]string{"LOG_LEVEL": "WARN"}, func(c config.Config) bool { return c.LogLevel == "WARN" }},
		{"LOG_LEVEL error", map[string]string{"LOG_LEVEL": "error"}, func(c config.Config) bool { return c.LogLevel == "error" }},
		{"LOG_FORMAT text", map[string]string{"LOG_FORMAT": "text"}, func(c config.Config) bool { return c.LogFormat == "text" }},
		// Load checks that the files exist, not what they hold.
		{"TLS", map[string]string{"TLS_CERT_FILE": "config.go", "TLS_KEY_FILE": "bounds.go"},
			func(c config.Config) bool {
				return c.TLSCertFile == "config.go" && c.TLSKeyFile == "bounds.go" && c.TLSClientCAFile == ""
			}},
		{"mTLS", map[string]string{"TLS_CERT_FILE": "config.go", "TLS_KEY_FILE": "bounds.go", "TLS_CLIENT_CA_FILE": "env.go"},
			func(c config.Config) bool { return c.TLSClientCAFile == "env.go" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t, tt.env)
			var c config.Config
			if err := config.Load(&c); err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !tt.check(c) {
				t.Errorf("Load() = %+v for %v", c, tt.env)
			}
		})
	}
}

func TestLoadInvalid(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string // substrings of the error, the variable first
	}{
		{"CACHE_TTL not a duration", map[string]string{"CACHE_TTL": "abc"}, []string{"CACHE_TTL", "abc"}},
		{"CACHE_TTL empty", map[string]string{"CACHE_TTL": ""}, []string{"CACHE_TTL"}},
		{"CACHE_TTL negative", map[string]string{"CACHE_TTL": "-1s"}, []string{"CACHE_TTL", ">= 0"}},
		{"PUSH_INTERVAL zero", map[string]string{"PUSH_INTERVAL": "0"}, []string{"PUSH_INTERVAL", "> 0"}},
		{"PUSH_INTERVAL negative", map[string]string{"PUSH_INTERVAL": "-5s"}, []string{"PUSH_INTERVAL"}},
		{"PUSH_INTERVAL bare number", map[string]string{"PUSH_INTERVAL": "5"}, []string{"PUSH_INTERVAL"}},
		{"BACKEND_TIMEOUT negative", map[string]string{"BACKEND_TIMEOUT": "-1s"}, []string{"BACKEND_TIMEOUT", "> 0"}},
		{"BACKEND_TIMEOUT zero", map[string]string{"BACKEND_TIMEOUT": "0s"}, []string{"BACKEND_TIMEOUT"}},
		{"SHUTDOWN_TIMEOUT negative", map[string]string{"SHUTDOWN_TIMEOUT": "-1s"}, []string{"SHUTDOWN_TIMEOUT", ">= 0"}},
		{"SHUTDOWN_TIMEOUT garbage", map[string]string{"SHUTDOWN_TIMEOUT": "soon"}, []string{"SHUTDOWN_TIMEOUT"}},
		{"LOG_LEVEL unknown", map[string]string{"LOG_LEVEL": "loud"}, []string{"LOG_LEVEL", "loud", "debug, info, warn or error"}},
		{"LOG_LEVEL empty", map[string]string{"LOG_LEVEL": ""}, []string{"LOG_LEVEL"}},
		{"LOG_FORMAT unknown", map[string]string{"LOG_FORMAT": "xml"}, []string{"LOG_FORMAT", "xml", "json or text"}},
		{"LOG_FORMAT case", map[string]string{"LOG_FORMAT": "JSON"}, []string{"LOG_FORMAT"}},
		{"TLS_CERT_FILE without key", map[string]string{"TLS_CERT_FILE": "c.pem"}, []string{"TLS_CERT_FILE", "TLS_KEY_FILE"}},
		{"TLS_KEY_FILE without cert", map[string]string{"TLS_KEY_FILE": "k.pem"}, []string{"TLS_CERT_FILE", "TLS_KEY_FILE"}},
		{"TLS_CLIENT_CA_FILE alone", map[string]string{"TLS_CLIENT_CA_FILE": "ca.pem"}, []string{"TLS_CLIENT_CA_FILE"}},
		{"TLS_CLIENT_CA_FILE with key only", map[string]string{"TLS_CLIENT_CA_FILE": "ca.pem", "TLS_KEY_FILE": "k.pem"}, []string{"TLS_"}},
		{"GRPC_ADDR port out of range", map[string]string{"GRPC_ADDR": ":99999"}, []string{"GRPC_ADDR", "99999", "out of range"}},
		{"HTTP_ADDR bad host", map[string]string{"HTTP_ADDR": "local host:8080"}, []string{"HTTP_ADDR", "local host", "DNS name"}},
		{"GRPC_MAX_CONNECTIONS zero", map[string]string{"GRPC_MAX_CONNECTIONS": "0"}, []string{"GRPC_MAX_CONNECTIONS", ">= 1"}},
		{"GRPC_MAX_CONCURRENT_STREAMS negative", map[string]string{"GRPC_MAX_CONCURRENT_STREAMS": "-1"}, []string{"GRPC_MAX_CONCURRENT_STREAMS", "whole number >= 0"}},
		{"GRPC_HANDSHAKE_TIMEOUT zero", map[string]string{"GRPC_HANDSHAKE_TIMEOUT": "0s"}, []string{"GRPC_HANDSHAKE_TIMEOUT", "> 0"}},
		{"GRPC_KEEPALIVE_MIN_PING zero", map[string]string{"GRPC_KEEPALIVE_MIN_PING": "0s"}, []string{"GRPC_KEEPALIVE_MIN_PING"}},
		{"GRPC_MAX_RECV_MSG_BYTES too small", map[string]string{"GRPC_MAX_RECV_MSG_BYTES": "100"}, []string{"GRPC_MAX_RECV_MSG_BYTES", "MAX_METADATA_BYTES (16384) + 4096"}},
		{"MAX_METADATA_BYTES raised past the receive limit", map[string]string{"MAX_METADATA_BYTES": "65536"}, []string{"GRPC_MAX_RECV_MSG_BYTES=65536", "MAX_METADATA_BYTES (65536)"}},
		{"MAX_CONNECTION_AGE zero", map[string]string{"MAX_CONNECTION_AGE": "0s"}, []string{"MAX_CONNECTION_AGE", "> 0"}},
		{"MAX_CONNECTION_AGE_GRACE zero", map[string]string{"MAX_CONNECTION_AGE_GRACE": "0s"}, []string{"MAX_CONNECTION_AGE_GRACE", "> 0"}},
		{"MAX_CONNECTION_AGE raised past its grace", map[string]string{"MAX_CONNECTION_AGE": "1h"}, []string{"MAX_CONNECTION_AGE_GRACE=2m30s", "MAX_CONNECTION_AGE/5 + 2s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t, tt.env)
			var c config.Config
			err := config.Load(&c)
			if err == nil {
				t.Fatalf("Load() = nil error for %v", tt.env)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "configuration: ") {
				t.Errorf("error %q lacks the configuration: prefix", err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	valid := func() config.Config {
		return config.Config{GRPCAddr: ":9090", HTTPAddr: ":8080", LogLevel: "info", LogFormat: "json",
			CacheTTL: time.Second, PushInterval: time.Second, PushWatchedInterval: time.Second, BackendTimeout: time.Second,
			MaxQuestions: 1, MaxQuestionBytes: 1, MaxFeeds: 1, MaxPushStreams: 1, MaxPushStreamsPerNamespace: 1, MaxTargetReaders: 1, TargetReaderIdle: time.Second, MaxMetadataBytes: 1,
			MaxCallsPerNamespace: 1, MaxWaitingPerNamespace: 0, MaxBackendCalls: 2,
			GRPCMaxConnections: 1, GRPCMaxConcurrentStreams: 1, GRPCHandshakeTimeout: time.Second,
			GRPCKeepaliveMinPing: time.Second, GRPCMaxRecvMsgBytes: 4097, MaxConnectionAge: time.Minute, MaxConnectionAgeGrace: 14 * time.Second}
	}
	tests := []struct {
		name   string
		modify func(c *config.Config)
		want   string // "" for valid
	}{
		{"valid", func(*config.Config) {}, ""},
		{"level", func(c *config.Config) { c.LogLevel = "trace" }, "LOG_LEVEL"},
		{"empty gRPC address", func(c *config.Config) { c.GRPCAddr = "" }, "GRPC_ADDR"},
		{"empty HTTP address", func(c *config.Config) { c.HTTPAddr = "" }, "HTTP_ADDR"},
		{"level offset", func(c *config.Config) { c.LogLevel = "info+2" }, ""},
		{"format", func(c *config.Config) { c.LogFormat = "" }, "LOG_FORMAT"},
		{"ttl", func(c *config.Config) { c.CacheTTL = -1 }, "CACHE_TTL"},
		{"push", func(c *config.Config) { c.PushInterval = 0 }, "PUSH_INTERVAL"},
		{"push watched", func(c *config.Config) { c.PushWatchedInterval = 0 }, "PUSH_WATCHED_INTERVAL"},
		{"backend", func(c *config.Config) { c.BackendTimeout = -time.Second }, "BACKEND_TIMEOUT"},
		{"shutdown", func(c *config.Config) { c.ShutdownTimeout = -time.Second }, "SHUTDOWN_TIMEOUT"},
		{"questions", func(c *config.Config) { c.MaxQuestions = 0 }, "MAX_QUESTIONS"},
		{"question bytes", func(c *config.Config) { c.MaxQuestionBytes = 0 }, "MAX_QUESTION_BYTES=0: want >= 1"},
		{"feeds", func(c *config.Config) { c.MaxFeeds = -1 }, "MAX_FEEDS"},
		{"target readers", func(c *config.Config) { c.MaxTargetReaders = 0 }, "MAX_TARGET_READERS"},
		{"target reader idle", func(c *config.Config) { c.TargetReaderIdle = 0 }, "TARGET_READER_IDLE"},
		{"metadata bytes", func(c *config.Config) { c.MaxMetadataBytes = 0 }, "MAX_METADATA_BYTES"},
		{"calls per namespace", func(c *config.Config) { c.MaxCallsPerNamespace = 0 }, "MAX_CALLS_PER_NAMESPACE"},
		{"waiting per namespace", func(c *config.Config) { c.MaxWaitingPerNamespace = -1 }, "MAX_WAITING_PER_NAMESPACE"},
		{"backend calls", func(c *config.Config) { c.MaxBackendCalls = 1 }, "MAX_BACKEND_CALLS=1: want >= 2"},
		{"cert only", func(c *config.Config) { c.TLSCertFile = "c" }, "TLS_KEY_FILE"},
		{"ca only", func(c *config.Config) { c.TLSClientCAFile = "ca" }, "TLS_CLIENT_CA_FILE"},
		{"full mTLS", func(c *config.Config) { c.TLSCertFile, c.TLSKeyFile, c.TLSClientCAFile = "c", "k", "ca" }, ""},
		{"gRPC host and port", func(c *config.Config) { c.GRPCAddr = "127.0.0.1:9090" }, ""},
		{"gRPC IPv6", func(c *config.Config) { c.GRPCAddr = "[::1]:9090" }, ""},
		{"HTTP DNS name", func(c *config.Config) { c.HTTPAddr = "scaler-0.scaler.ns.svc:8080" }, ""},
		{"highest port", func(c *config.Config) { c.GRPCAddr = ":65535" }, ""},
		{"port past 65535", func(c *config.Config) { c.GRPCAddr = ":65536" }, `GRPC_ADDR ":65536": port 65536 is out of range 0-65535`},
		{"port missing", func(c *config.Config) { c.GRPCAddr = "127.0.0.1" }, `GRPC_ADDR "127.0.0.1": missing port in address`},
		{"port not a number", func(c *config.Config) { c.HTTPAddr = ":http-ish" }, `HTTP_ADDR ":http-ish": port "http-ish" is not a number`},
		{"too many colons", func(c *config.Config) { c.GRPCAddr = "1:2:3" }, "GRPC_ADDR"},
		{"host with a space", func(c *config.Config) { c.GRPCAddr = "my host:9090" }, "DNS name"},
		{"host with an underscore", func(c *config.Config) { c.HTTPAddr = "my_host:8080" }, "HTTP_ADDR"},
		{"connections at 1", func(c *config.Config) { c.GRPCMaxConnections = 1 }, ""},
		{"connections at 0", func(c *config.Config) { c.GRPCMaxConnections = 0 }, "GRPC_MAX_CONNECTIONS"},
		{"streams at 0", func(c *config.Config) { c.GRPCMaxConcurrentStreams = 0 }, "GRPC_MAX_CONCURRENT_STREAMS"},
		{"recv at metadata + 4096", func(c *config.Config) { c.MaxMetadataBytes, c.GRPCMaxRecvMsgBytes = 16384, 16384+4096 }, ""},
		{"recv below metadata + 4096", func(c *config.Config) { c.MaxMetadataBytes, c.GRPCMaxRecvMsgBytes = 16384, 16384+4095 }, "GRPC_MAX_RECV_MSG_BYTES=20479: want >= MAX_METADATA_BYTES (16384) + 4096"},
		{"grace at 0", func(c *config.Config) { c.MaxConnectionAgeGrace = 0 }, "MAX_CONNECTION_AGE_GRACE"},
		{"grace at age/5 + 2 margins", func(c *config.Config) { c.MaxConnectionAge, c.MaxConnectionAgeGrace = 10*time.Minute, 122*time.Second }, ""},
		{"grace below age/5 + 2 margins", func(c *config.Config) { c.MaxConnectionAge, c.MaxConnectionAgeGrace = 10*time.Minute, 121*time.Second },
			"MAX_CONNECTION_AGE_GRACE=2m1s: want >= MAX_CONNECTION_AGE/5 + 2s (2m2s at MAX_CONNECTION_AGE=10m0s)"},
		{"short age, margin a twentieth", func(c *config.Config) {
			c.MaxConnectionAge, c.MaxConnectionAgeGrace = 2*time.Second, 600*time.Millisecond
		}, ""},
		{"short age, grace too short", func(c *config.Config) {
			c.MaxConnectionAge, c.MaxConnectionAgeGrace = 2*time.Second, 599*time.Millisecond
		}, "MAX_CONNECTION_AGE_GRACE=599ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.modify(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

func TestLoadParseErrors(t *testing.T) {
	tests := []struct {
		name, key, value, want string
	}{
		{"duration without unit", "CACHE_TTL", "2", `CACHE_TTL "2": want a duration such as 2s`},
		{"duration garbage", "SHUTDOWN_TIMEOUT", "soon", `SHUTDOWN_TIMEOUT "soon": want a duration such as 10s`},
		{"int", "GRPC_MAX_CONNECTIONS", "many", `GRPC_MAX_CONNECTIONS "many": want a whole number such as 256`},
		{"uint negative", "GRPC_MAX_CONCURRENT_STREAMS", "-1", `GRPC_MAX_CONCURRENT_STREAMS "-1": want a whole number >= 0 such as 16384`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t, map[string]string{tt.key: tt.value})
			var c config.Config
			err := config.Load(&c)
			if err == nil || err.Error() != "configuration: "+tt.want {
				t.Fatalf("Load() = %v, want %q", err, "configuration: "+tt.want)
			}
			var ve *config.ValueError
			if !errors.As(err, &ve) || ve.Name != tt.key || ve.Err == nil {
				t.Errorf("error %#v is not a ValueError for %s wrapping the parser's error", err, tt.key)
			}
		})
	}
}

func TestLoadParseErrorOtherTypes(t *testing.T) {
	type spec struct {
		On    bool    `envconfig:"TEST_ON"`
		Ratio float64 `envconfig:"TEST_RATIO"`
		N     int     `envconfig:"TEST_N"`
	}
	tests := []struct{ key, value, want string }{
		{"TEST_ON", "yes please", `TEST_ON "yes please": want true or false`},
		{"TEST_RATIO", "half", `TEST_RATIO "half": want a number such as 1.5`},
		{"TEST_N", "1.5", `TEST_N "1.5": want a whole number such as 10`},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			scalertest.Unsetenv(t, "TEST_ON", "TEST_RATIO", "TEST_N")
			t.Setenv(tt.key, tt.value)
			err := config.Load(&spec{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestLoggerDurations(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			c := config.Config{LogFormat: format, LogLevel: "info"}
			c.Logger(&buf).Info("shutting down", slog.Duration("drain", 10*time.Second),
				slog.Group("g", slog.Duration("took", 1500*time.Millisecond)), slog.Int("n", 3))
			out := buf.String()
			wants := map[string][]string{
				"json": {`"drain":"10s"`, `"took":"1.5s"`, `"n":3`},
				"text": {"drain=10s", "g.took=1.5s", "n=3"},
			}[format]
			for _, w := range wants {
				if !strings.Contains(out, w) {
					t.Errorf("log line lacks %s:\n%s", w, out)
				}
			}
		})
	}
}

func TestLevel(t *testing.T) {
	tests := []struct {
		in      string
		want    slog.Level
		wantErr bool
	}{
		{"debug", slog.LevelDebug, false},
		{"info", slog.LevelInfo, false},
		{"warn", slog.LevelWarn, false},
		{"error", slog.LevelError, false},
		{"ERROR", slog.LevelError, false},
		{"loud", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			c := config.Config{LogLevel: tt.in}
			got, err := c.Level()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Level() error = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("Level() = %v, want %v", got, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), "LOG_LEVEL") {
				t.Errorf("error %q does not name LOG_LEVEL", err)
			}
		})
	}
}

func TestLogger(t *testing.T) {
	tests := []struct {
		name, format, level string
		wantDebug           bool
		wantInfo            bool
	}{
		{"json info", "json", "info", false, true},
		{"json debug", "json", "debug", true, true},
		{"text info", "text", "info", false, true},
		{"text warn", "text", "warn", false, false},
		{"text debug", "text", "debug", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			c := config.Config{LogFormat: tt.format, LogLevel: tt.level}
			log := c.Logger(&buf)
			log.Debug("debug-line", slog.Int("n", 1))
			log.Info("info-line", slog.String("k", "v"))
			log.Warn("warn-line")
			out := buf.String()
			if got := strings.Contains(out, "debug-line"); got != tt.wantDebug {
				t.Errorf("debug logged = %v, want %v:\n%s", got, tt.wantDebug, out)
			}
			if got := strings.Contains(out, "info-line"); got != tt.wantInfo {
				t.Errorf("info logged = %v, want %v:\n%s", got, tt.wantInfo, out)
			}
			if !strings.Contains(out, "warn-line") {
				t.Errorf("warn not logged:\n%s", out)
			}
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				var m map[string]any
				isJSON := json.Unmarshal([]byte(line), &m) == nil
				if isJSON != (tt.format == "json") {
					t.Errorf("line %q: JSON = %v, want format %s", line, isJSON, tt.format)
				}
				if tt.format == "json" && (m["msg"] == nil || m["level"] == nil || m["time"] == nil) {
					t.Errorf("JSON line lacks msg/level/time: %q", line)
				}
				if tt.format == "text" && !strings.Contains(line, "msg=") {
					t.Errorf("text line lacks msg=: %q", line)
				}
			}
		})
	}
}

// svcConfig is a service's own configuration, with a Validate method.
type svcConfig struct {
	RedisURL string        `envconfig:"REDIS_URL" default:"redis://localhost:6379" desc:"where the sessions live"`
	PoolSize int           `envconfig:"REDIS_POOL_SIZE" default:"10" desc:"connections per pod"`
	Retry    time.Duration `envconfig:"REDIS_RETRY" desc:"pause between retries"`
	Required string        `envconfig:"REDIS_SECRET_NAME" required:"true" desc:"name of the secret"`
}

func (s *svcConfig) Validate() error {
	if s.PoolSize <= 0 {
		return errors.New("REDIS_POOL_SIZE: want > 0")
	}
	return nil
}

func TestLoadServiceConfig(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string // error substring, "" for none
	}{
		{"ok", map[string]string{"REDIS_SECRET_NAME": "s"}, ""},
		{"required missing", map[string]string{}, "REDIS_SECRET_NAME"},
		{"bad int", map[string]string{"REDIS_SECRET_NAME": "s", "REDIS_POOL_SIZE": "many"}, "REDIS_POOL_SIZE"},
		{"Validate called", map[string]string{"REDIS_SECRET_NAME": "s", "REDIS_POOL_SIZE": "0"}, "REDIS_POOL_SIZE: want > 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scalertest.Unsetenv(t, "REDIS_URL", "REDIS_POOL_SIZE", "REDIS_RETRY", "REDIS_SECRET_NAME")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var s svcConfig
			err := config.Load(&s)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if s.RedisURL != "redis://localhost:6379" || s.PoolSize != 10 || s.Required != "s" {
					t.Errorf("Load() = %+v", s)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load() error = %v, want it to contain %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "configuration: ") {
				t.Errorf("error %q lacks the configuration: prefix", err)
			}
		})
	}
}

func TestLoadNotAPointer(t *testing.T) {
	if err := config.Load(config.Config{}); err == nil {
		t.Error("Load(non-pointer) = nil error")
	}
	if err := config.Load(nil); err == nil {
		t.Error("Load(nil) = nil error")
	}
}

func TestUsage(t *testing.T) {
	var buf bytes.Buffer
	if err := config.Usage(&buf, &config.Config{}, &svcConfig{}); err != nil {
		t.Fatalf("Usage: %v", err)
	}
	out := buf.String()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if !strings.HasPrefix(lines[0], "VARIABLE") || !strings.Contains(lines[0], "DEFAULT") || !strings.Contains(lines[0], "MEANING") {
		t.Errorf("header = %q", lines[0])
	}
	rows := map[string]string{}
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 0 {
			rows[f[0]] = l
		}
	}
	all := append(append([]string{}, vars...), "REDIS_URL", "REDIS_POOL_SIZE", "REDIS_RETRY", "REDIS_SECRET_NAME")
	for _, v := range all {
		if _, ok := rows[v]; !ok {
			t.Errorf("Usage lacks a row for %s:\n%s", v, out)
		}
	}
	if len(rows) != len(all) {
		t.Errorf("Usage has %d rows, want %d:\n%s", len(rows), len(all), out)
	}
	checks := map[string][]string{
		"GRPC_ADDR":         {":9090", "gRPC"},
		"CACHE_TTL":         {"2s", "Duration"},
		"LOG_FORMAT":        {"json", "json or text"},
		"REDIS_URL":         {"redis://localhost:6379", "where the sessions live"},
		"REDIS_POOL_SIZE":   {"10", "Integer"},
		"REDIS_SECRET_NAME": {"name of the secret"},
	}
	for v, wants := range checks {
		for _, w := range wants {
			if !strings.Contains(rows[v], w) {
				t.Errorf("row %s = %q, want it to contain %q", v, rows[v], w)
			}
		}
	}
}

func TestUsageBadSpec(t *testing.T) {
	var buf bytes.Buffer
	if err := config.Usage(&buf, 42); err == nil {
		t.Error("Usage(42) = nil error")
	}
}

// TestPushStreamEnd: streams on an aging connection end after grpc-go's
// latest GOAWAY (age + 10%) and, with the shortest valid grace, before its
// earliest cut (age - 10% + grace).
func TestPushStreamEnd(t *testing.T) {
	tests := []struct {
		age, wantEnd time.Duration
	}{
		{10 * time.Minute, 11*time.Minute + time.Second},
		{3 * time.Second, 3300*time.Millisecond + 150*time.Millisecond},
		{0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.age.String(), func(t *testing.T) {
			c := config.Config{MaxConnectionAge: tt.age}
			if got := c.PushStreamEnd(); got != tt.wantEnd {
				t.Fatalf("PushStreamEnd() = %v, want %v", got, tt.wantEnd)
			}
			if tt.age == 0 {
				return
			}
			c.MaxConnectionAgeGrace = tt.age/5 + 2*c.StreamEndMargin()
			earliestCut := tt.age*9/10 + c.MaxConnectionAgeGrace
			if gap := earliestCut - c.PushStreamEnd(); gap != c.StreamEndMargin() {
				t.Errorf("earliest cut - PushStreamEnd = %v, want the margin %v", gap, c.StreamEndMargin())
			}
		})
	}
}
