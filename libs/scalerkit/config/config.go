// Package config loads the settings every scaler shares from environment
// variables. Their names are a public interface: the deploy manifests and
// the service READMEs rely on them.
package config

import (
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// Config holds the shared settings. The defaults are safe in production.
type Config struct {
	// GRPCAddr is where the ExternalScaler gRPC service listens.
	GRPCAddr string `envconfig:"GRPC_ADDR" default:":9090" desc:"address of the gRPC service (ExternalScaler, health, reflection)"`
	// HTTPAddr is where /metrics, /healthz and /readyz are served.
	HTTPAddr string `envconfig:"HTTP_ADDR" default:":8080" desc:"address of /metrics, /healthz and /readyz"`
	// LogLevel is the lowest level logged.
	LogLevel string `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	// LogFormat is json or text.
	LogFormat string `envconfig:"LOG_FORMAT" default:"json" desc:"json or text"`
	// CacheTTL is how long one backend reading answers repeated questions.
	CacheTTL time.Duration `envconfig:"CACHE_TTL" default:"2s" desc:"how long a reading answers repeated GetMetrics/IsActive calls; 0 keeps none but still coalesces concurrent calls"`
	// PushInterval is how often push streams re-check their backend.
	PushInterval time.Duration `envconfig:"PUSH_INTERVAL" default:"5s" desc:"how often StreamIsActive and backend-read targets are re-checked"`
	// BackendTimeout bounds every backend call.
	BackendTimeout time.Duration `envconfig:"BACKEND_TIMEOUT" default:"5s" desc:"bound on every backend call (KEDA sets no deadline of its own)"`
	// ShutdownTimeout is how long in-flight calls may finish on shutdown.
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"10s" desc:"how long in-flight calls may finish after SIGTERM before the server stops hard"`
	// MaxQuestions bounds the distinct questions the cache holds.
	MaxQuestions int `envconfig:"MAX_QUESTIONS" default:"1000" desc:"distinct questions held by the cache (kept readings and calls in flight); the least recently used reading makes room, and a new question is refused (ResourceExhausted) only when all have a call in flight. Bounds memory: 1000 x MAX_METADATA_BYTES = 16 MiB"`
	// MaxFeeds bounds the push feeds that serve StreamIsActive.
	MaxFeeds int `envconfig:"MAX_FEEDS" default:"200" desc:"distinct questions with a StreamIsActive feed; each reads the backend every PUSH_INTERVAL (200: 40 reads/s at 5s); a new question past it is refused (ResourceExhausted)"`
	// MaxTargetReaders bounds the background readers of backend-read targets.
	MaxTargetReaders int `envconfig:"MAX_TARGET_READERS" default:"100" desc:"distinct targets read from the backend in the background, each every PUSH_INTERVAL; the least recently asked idle reader makes room, and a new target is refused (ResourceExhausted) only when all have an open StreamMetricSpec"`
	// TargetReaderIdle is how long a target reader outlives the last call that needed it.
	TargetReaderIdle time.Duration `envconfig:"TARGET_READER_IDLE" default:"1m" desc:"how long a target reader keeps reading after the last call that needed it; keep it above the longest pollingInterval, or the target falls back between polls"`
	// MaxMetadataBytes bounds one trigger's metadata.
	MaxMetadataBytes int `envconfig:"MAX_METADATA_BYTES" default:"16384" desc:"total size of one trigger's metadata, keys and values (bytes); larger is refused (InvalidArgument) before the backend parses it"`
	// TLSCertFile is the server certificate (PEM); TLS is on when set.
	TLSCertFile string `envconfig:"TLS_CERT_FILE" desc:"server certificate (PEM); serves TLS when set, with TLS_KEY_FILE"`
	// TLSKeyFile is the server certificate's private key (PEM).
	TLSKeyFile string `envconfig:"TLS_KEY_FILE" desc:"private key of TLS_CERT_FILE (PEM)"`
	// TLSClientCAFile, when set, requires client certificates signed by it.
	TLSClientCAFile string `envconfig:"TLS_CLIENT_CA_FILE" desc:"CA bundle (PEM) for client certificates; requires mutual TLS when set"`
}

// Load reads spec (a pointer to a struct with envconfig tags) from the
// environment. The error names the variable at fault.
func Load(spec any) error {
	if err := envconfig.Process("", spec); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if v, ok := spec.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("configuration: %w", err)
		}
	}
	return nil
}

// Validate checks the values envconfig cannot.
func (c *Config) Validate() error {
	if _, err := c.Level(); err != nil {
		return err
	}
	switch {
	case c.GRPCAddr == "":
		return fmt.Errorf("GRPC_ADDR is empty: want an address such as :9090")
	case c.HTTPAddr == "":
		return fmt.Errorf("HTTP_ADDR is empty: want an address such as :8080")
	case c.LogFormat != "json" && c.LogFormat != "text":
		return fmt.Errorf("LOG_FORMAT=%q: want json or text", c.LogFormat)
	case c.CacheTTL < 0:
		return fmt.Errorf("CACHE_TTL=%v: want >= 0", c.CacheTTL)
	case c.PushInterval <= 0:
		return fmt.Errorf("PUSH_INTERVAL=%v: want > 0", c.PushInterval)
	case c.BackendTimeout <= 0:
		return fmt.Errorf("BACKEND_TIMEOUT=%v: want > 0", c.BackendTimeout)
	case c.ShutdownTimeout < 0:
		return fmt.Errorf("SHUTDOWN_TIMEOUT=%v: want >= 0", c.ShutdownTimeout)
	case c.MaxQuestions < 1:
		return fmt.Errorf("MAX_QUESTIONS=%d: want >= 1", c.MaxQuestions)
	case c.MaxFeeds < 1:
		return fmt.Errorf("MAX_FEEDS=%d: want >= 1", c.MaxFeeds)
	case c.MaxTargetReaders < 1:
		return fmt.Errorf("MAX_TARGET_READERS=%d: want >= 1", c.MaxTargetReaders)
	case c.TargetReaderIdle <= 0:
		return fmt.Errorf("TARGET_READER_IDLE=%v: want > 0", c.TargetReaderIdle)
	case c.MaxMetadataBytes < 1:
		return fmt.Errorf("MAX_METADATA_BYTES=%d: want >= 1", c.MaxMetadataBytes)
	case (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
		return fmt.Errorf("TLS_CERT_FILE and TLS_KEY_FILE: set both or neither")
	case c.TLSClientCAFile != "" && c.TLSCertFile == "":
		return fmt.Errorf("TLS_CLIENT_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE")
	}
	return nil
}

// Level returns LOG_LEVEL as a slog.Level.
func (c *Config) Level() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return l, fmt.Errorf("LOG_LEVEL=%q: want debug, info, warn or error", c.LogLevel)
	}
	return l, nil
}

// Logger returns the logger the settings ask for, writing to w.
func (c *Config) Logger(w io.Writer) *slog.Logger {
	level, _ := c.Level()
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// usageFormat prints one row per variable: name, type, default, meaning.
const usageFormat = `{{range .}}{{usage_key .}}	{{usage_type .}}	{{usage_default .}}	{{usage_description .}}
{{end}}`

// Usage writes a table of the variables of each spec to w.
func Usage(w io.Writer, specs ...any) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tTYPE\tDEFAULT\tMEANING")
	for _, spec := range specs {
		if err := envconfig.Usagef("", spec, tw, usageFormat); err != nil {
			return err
		}
	}
	return tw.Flush()
}
