// Package config loads the settings every scaler shares from environment
// variables. Their names are a public interface: the deploy manifests and
// the service READMEs rely on them.
package config

import (
	"fmt"
	"reflect"
	"strconv"
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
	CacheTTL time.Duration `envconfig:"CACHE_TTL" default:"2s" want:">= 0s" desc:"how long a reading answers repeated GetMetrics/IsActive calls; 0 keeps none but still coalesces concurrent calls"`
	// PushInterval is how often push streams re-check their backend.
	PushInterval time.Duration `envconfig:"PUSH_INTERVAL" default:"5s" want:"> 0s" desc:"how often StreamIsActive and backend-read targets are re-checked"`
	// PushWatchedInterval is how often a watched push feed re-reads
	// without a change signal.
	PushWatchedInterval time.Duration `envconfig:"PUSH_WATCHED_INTERVAL" default:"30s" want:"> 0s" desc:"how often a push feed or target reader whose watch is in place and tells of every change (Redis keyspace notifications with K and A on; not a LISTEN) re-reads without a change signal, for what the signals miss (an expiry Redis has not yet deleted, a query that reads the clock); a feed without a watch, or whose last read failed, reads every PUSH_INTERVAL. At PUSH_INTERVAL or below every feed reads every PUSH_INTERVAL"`
	// BackendTimeout bounds every backend call.
	BackendTimeout time.Duration `envconfig:"BACKEND_TIMEOUT" default:"5s" want:"> 0s" desc:"bound on every backend call (KEDA sets no deadline of its own)"`
	// ShutdownTimeout is how long in-flight calls may finish on shutdown.
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"10s" want:">= 0s" desc:"how long in-flight calls may finish after SIGTERM before the server stops hard"`
	// MaxQuestions bounds the distinct questions the cache holds.
	MaxQuestions int `envconfig:"MAX_QUESTIONS" default:"16384" want:">= 1" desc:"distinct questions held by the cache (kept readings and calls in flight), and distinct trigger metadata kept parsed; the least recently used reading makes room; when all have a call in flight, a namespace under its share of them takes one from the namespace holding the most, and a namespace at its share is refused (ResourceExhausted). Sized for 10,000 ScaledObjects"`
	// MaxQuestionBytes bounds the bytes of the questions kept and of the
	// trigger metadata kept parsed, each.
	MaxQuestionBytes int `envconfig:"MAX_QUESTION_BYTES" default:"33554432" want:">= 1" desc:"bytes of the readings the cache keeps (their questions), and apart of the trigger metadata kept parsed; the least recently used reading, or an arbitrary parse, makes room (never a refusal). Bounds their memory whatever the metadata's size: 32 MiB each"`
	// MaxPushStreams bounds the push streams open at once, shared fairly
	// among namespaces.
	MaxPushStreams int `envconfig:"MAX_PUSH_STREAMS" default:"8192" want:">= 1" desc:"push streams (StreamIsActive, and StreamMetricSpec of a backend-read target) open at once, shared fairly among namespaces: a namespace under its share takes the newest stream of the namespace holding the most, which ends cleanly; a namespace at or over its share while the bound is reached is refused (ResourceExhausted), and KEDA polls its ScaledObjects meanwhile. Each open stream costs about 25 KB: 8192 about 200 MB, inside the prod overlay's 256Mi; the sizing target (5,000 push ScaledObjects, 1,000 backend-read targets) holds 6,000"`
	// MaxPushStreamsPerNamespace bounds one namespace's push streams.
	MaxPushStreamsPerNamespace int `envconfig:"MAX_PUSH_STREAMS_PER_NAMESPACE" default:"1000" want:">= 1" desc:"push streams one namespace holds at once, even with places free: one tenant's streams cost at most this many x 25 KB (1000: 25 MB); a stream past it is refused (ResourceExhausted) and KEDA polls that ScaledObject"`
	// MaxFeeds bounds the StreamIsActive feeds that watch their question.
	MaxFeeds int `envconfig:"MAX_FEEDS" default:"5000" want:">= 1" desc:"StreamIsActive feeds that watch their question (a Redis keyspace channel, a LISTEN) for instant push, shared fairly among namespaces (a namespace under its share takes a place from the one holding the most); a feed without one still serves its streams, never refused, polling every PUSH_INTERVAL until a place frees. A watched feed reads the backend on its change signals and every PUSH_WATCHED_INTERVAL, a polling one every PUSH_INTERVAL; feeds are bounded by open streams (MAX_PUSH_STREAMS). 5000: every push ScaledObject of the sizing target (10,000 ScaledObjects, 5,000 push) watched; each also holds a subscription (REDIS_MAX_WATCHED_KEYS, POSTGRES_MAX_LISTEN_CHANNELS). A watch holds no goroutine: about 2 KB each"`
	// MaxCallsPerNamespace bounds the backend calls one namespace runs at once.
	MaxCallsPerNamespace int `envconfig:"MAX_CALLS_PER_NAMESPACE" default:"2" want:">= 1" desc:"backend calls one namespace's triggers run at once, for value reads and for target reads each, and at most half of each kind's part of MAX_BACKEND_CALLS (cache hits and calls joined in flight take none), so that one tenant's slow or distinct questions leave places to the others"`
	// MaxWaitingPerNamespace bounds the backend calls of one namespace
	// waiting for a place.
	MaxWaitingPerNamespace int `envconfig:"MAX_WAITING_PER_NAMESPACE" default:"1000" want:">= 0" desc:"backend calls of one namespace waiting their turn (namespaces take turns; each call waits at most BACKEND_TIMEOUT), enough for a burst of 1000 distinct questions after a KEDA restart; past it a call is refused at once (ResourceExhausted)"`
	// MaxBackendCalls bounds the backend calls in flight at once, all
	// namespaces and both kinds together.
	MaxBackendCalls int `envconfig:"MAX_BACKEND_CALLS" default:"10" want:">= 2" desc:"backend calls in flight at once, all namespaces together: the budget that protects the backend. A fifth (at least 1) is for target reads, the rest for value reads (8 and 2 at 10, within one REDIS_POOL_SIZE); namespaces waiting take turns"`
	// MaxTargetReaders bounds the background readers of backend-read targets.
	MaxTargetReaders int `envconfig:"MAX_TARGET_READERS" default:"1000" want:">= 1" desc:"targets read from the backend in the background, each every PUSH_INTERVAL (1000 at 5s: 200 reads/s), shared fairly among namespaces (a namespace under its share takes a place from the one holding the most, an idle reader first); a target without a reader is the trigger's static target, with a warning, never refused, until a place frees. Keep it above the namespaces with backend-read targets: past that, places go round them"`
	// TargetReaderIdle is how long a target reader outlives the last call that needed it.
	TargetReaderIdle time.Duration `envconfig:"TARGET_READER_IDLE" default:"1m" want:"> 0s" desc:"how long a target reader keeps reading after the last call that needed it; keep it above the longest pollingInterval, or the target falls back between polls"`
	// MaxMetadataBytes bounds one trigger's metadata.
	MaxMetadataBytes int `envconfig:"MAX_METADATA_BYTES" default:"16384" want:">= 1" desc:"total size of one trigger's metadata, keys and values (bytes); larger is refused (InvalidArgument) before the backend parses it"`
	// TLSCertFile is the server certificate (PEM); TLS is on when set.
	TLSCertFile string `envconfig:"TLS_CERT_FILE" file:"true" desc:"server certificate (PEM); serves TLS when set, with TLS_KEY_FILE"`
	// TLSKeyFile is the server certificate's private key (PEM).
	TLSKeyFile string `envconfig:"TLS_KEY_FILE" file:"true" desc:"private key of TLS_CERT_FILE (PEM)"`
	// TLSClientCAFile, when set, requires client certificates signed by it.
	TLSClientCAFile string `envconfig:"TLS_CLIENT_CA_FILE" file:"true" desc:"CA bundle (PEM) for client certificates; requires mutual TLS when set"`

	// gRPC server limits (see RELIABILITY.md). In a Config built in code,
	// zero leaves the limit at grpc-go's default; Load sets the defaults.

	// GRPCMaxConnections caps open gRPC connections; past it a new
	// connection is closed at once.
	GRPCMaxConnections int `envconfig:"GRPC_MAX_CONNECTIONS" default:"256" want:">= 1" desc:"open gRPC connections at most (KEDA needs one per operator pod, kubelet one per probe); a connection past it is closed at once"`
	// GRPCMaxConcurrentStreams caps the calls open at once on one
	// connection; past it the client queues further calls.
	GRPCMaxConcurrentStreams uint32 `envconfig:"GRPC_MAX_CONCURRENT_STREAMS" default:"16384" want:">= 1" desc:"calls (push streams included) open at once on one connection; KEDA shares one connection among all ScaledObjects and holds two streams per push ScaledObject (StreamIsActive, StreamMetricSpec), so keep it above twice their number (16384: 8,000 push ScaledObjects and their polls); past it calls wait"`
	// GRPCHandshakeTimeout bounds TLS and HTTP/2 setup of a new connection.
	GRPCHandshakeTimeout time.Duration `envconfig:"GRPC_HANDSHAKE_TIMEOUT" default:"5s" want:"> 0s" desc:"a new connection that has not finished TLS and HTTP/2 setup by then is closed"`
	// GRPCKeepaliveMinPing is the shortest interval between client pings
	// the server tolerates; a client pinging faster is disconnected.
	GRPCKeepaliveMinPing time.Duration `envconfig:"GRPC_KEEPALIVE_MIN_PING" default:"10s" want:"> 0s" desc:"clients may ping at most this often (also without open calls); a client pinging faster is sent GOAWAY and disconnected"`
	// GRPCMaxRecvMsgBytes caps the size of one request message.
	GRPCMaxRecvMsgBytes int `envconfig:"GRPC_MAX_RECV_MSG_BYTES" default:"65536" desc:"largest request message accepted, in bytes (ResourceExhausted past it); keep it well above MAX_METADATA_BYTES so oversized metadata is InvalidArgument naming the key"`
	// MaxConnectionAge is how long a connection lives before the server
	// asks the client to reconnect (GOAWAY), so that KEDA's connection
	// moves to new scaler pods. grpc-go adds +/-10% jitter.
	MaxConnectionAge time.Duration `envconfig:"MAX_CONNECTION_AGE" default:"10m" want:"> 0s" desc:"a connection older than this (+/-10% jitter) is sent GOAWAY so that KEDA reconnects, spreading over new pods"`
	// MaxConnectionAgeGrace is how long calls may go on after that GOAWAY
	// before the connection is closed. Push streams end cleanly within it
	// (see PushStreamEnd), so it must exceed the jitter: at least
	// MAX_CONNECTION_AGE/5 plus twice StreamEndMargin.
	MaxConnectionAgeGrace time.Duration `envconfig:"MAX_CONNECTION_AGE_GRACE" default:"2m30s" want:"> 0s" desc:"calls still open this long after MAX_CONNECTION_AGE are cut; push streams end cleanly before (at 1.1 x MAX_CONNECTION_AGE + up to 1s), so it must be >= MAX_CONNECTION_AGE/5 + 2s (2m2s at the default age)"`
}

// Defaults returns the configuration with every variable at its default.
// The default tags above are the one place the defaults are written:
// Load applies them, --help prints them, scaler.New and the tests take
// theirs from here, and a test checks the README's table against them.
func Defaults() Config {
	var c Config
	if err := applyDefaults(&c); err != nil {
		panic(err) // a default tag that does not parse: a programming error the tests catch
	}
	return c
}

// applyDefaults sets every field of the struct spec points to that has a
// default tag to that default, the way envconfig reads it.
func applyDefaults(spec any) error {
	v := reflect.ValueOf(spec).Elem()
	for i := range v.NumField() {
		field := v.Type().Field(i)
		def, ok := field.Tag.Lookup("default")
		if !ok {
			continue
		}
		f := v.Field(i)
		var err error
		switch {
		case f.Type() == reflect.TypeFor[time.Duration]():
			var d time.Duration
			d, err = time.ParseDuration(def)
			f.SetInt(int64(d))
		case f.Kind() == reflect.String:
			f.SetString(def)
		case f.CanInt():
			var n int64
			n, err = strconv.ParseInt(def, 0, f.Type().Bits())
			f.SetInt(n)
		case f.CanUint():
			var n uint64
			n, err = strconv.ParseUint(def, 0, f.Type().Bits())
			f.SetUint(n)
		case f.CanFloat():
			var x float64
			x, err = strconv.ParseFloat(def, f.Type().Bits())
			f.SetFloat(x)
		case f.Kind() == reflect.Bool:
			var b bool
			b, err = strconv.ParseBool(def)
			f.SetBool(b)
		default:
			err = fmt.Errorf("type %v not supported", f.Type())
		}
		if err != nil {
			return fmt.Errorf("default of %s: %w", field.Name, err)
		}
	}
	return nil
}

// Load reads spec (a pointer to a struct with envconfig tags) from the
// environment, the default tags filling what is unset and a variable's
// previous name (was tag) what its new name leaves unset; then it calls
// spec's Validate, if it has one, and checks that the files named by
// variables with a file tag exist. It is the one place configuration is
// checked: what it accepts is trusted after it. The error names the
// variable at fault.
func Load(spec any) error {
	if err := envconfig.Process("", spec); err != nil {
		return fmt.Errorf("configuration: %w", explain(spec, err))
	}
	if err := loadRenamed(spec); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if v, ok := spec.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("configuration: %w", err)
		}
	}
	if err := checkFiles(spec); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	return nil
}

// Validate checks the values envconfig cannot: the bounds of the want
// tags, then what a tag cannot say.
func (c *Config) Validate() error {
	if err := CheckBounds(c); err != nil {
		return err
	}
	if _, err := c.Level(); err != nil {
		return err
	}
	if err := checkAddr("GRPC_ADDR", c.GRPCAddr, ":9090"); err != nil {
		return err
	}
	if err := checkAddr("HTTP_ADDR", c.HTTPAddr, ":8080"); err != nil {
		return err
	}
	switch {
	case c.LogFormat != "json" && c.LogFormat != "text":
		return fmt.Errorf("LOG_FORMAT=%q: want json or text", c.LogFormat)
	case (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
		return fmt.Errorf("TLS_CERT_FILE and TLS_KEY_FILE: set both or neither")
	case c.TLSClientCAFile != "" && c.TLSCertFile == "":
		return fmt.Errorf("TLS_CLIENT_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE")
	}
	return c.validateServerLimits()
}

// validateServerLimits checks the gRPC server limits.
func (c *Config) validateServerLimits() error {
	switch {
	case c.MaxConnectionAgeGrace < c.minAgeGrace():
		return fmt.Errorf("MAX_CONNECTION_AGE_GRACE=%v: want >= MAX_CONNECTION_AGE/5 + %v (%v at MAX_CONNECTION_AGE=%v), so that push streams end cleanly after the GOAWAY and before the cut, whatever grpc-go's +/-10%% jitter",
			c.MaxConnectionAgeGrace, 2*c.StreamEndMargin(), c.minAgeGrace(), c.MaxConnectionAge)
	case c.GRPCMaxRecvMsgBytes < c.MaxMetadataBytes+minRecvMsgBytes:
		return fmt.Errorf("GRPC_MAX_RECV_MSG_BYTES=%d: want >= MAX_METADATA_BYTES (%d) + %d, so that oversized metadata is refused by its own check, naming the key",
			c.GRPCMaxRecvMsgBytes, c.MaxMetadataBytes, minRecvMsgBytes)
	}
	return nil
}

// StreamEndMargin is how long after grpc-go's latest GOAWAY a stream on an
// aging connection ends, and how long at least it ends before the
// earliest cut: a twentieth of MAX_CONNECTION_AGE, at most a second.
func (c *Config) StreamEndMargin() time.Duration {
	return min(c.MaxConnectionAge/20, time.Second)
}

// PushStreamEnd is how long after a connection is set up the streams on it
// end cleanly (status OK): grpc-go sends GOAWAY at MAX_CONNECTION_AGE
// +/-10% and cuts the calls still open MAX_CONNECTION_AGE_GRACE later, an
// end KEDA backs off from, so streams end once the GOAWAY has surely been
// sent and KEDA's next stream opens on a new connection with its wait back
// at 2 s. Zero (MAX_CONNECTION_AGE unset in a Config built in code): never.
func (c *Config) PushStreamEnd() time.Duration {
	if c.MaxConnectionAge <= 0 {
		return 0
	}
	return c.MaxConnectionAge*11/10 + c.StreamEndMargin()
}

// minAgeGrace is the shortest MAX_CONNECTION_AGE_GRACE that leaves
// PushStreamEnd before the earliest cut (0.9 x age + grace) by
// StreamEndMargin.
func (c *Config) minAgeGrace() time.Duration {
	if c.MaxConnectionAge <= 0 {
		return 0
	}
	return c.MaxConnectionAge/5 + 2*c.StreamEndMargin()
}

// minRecvMsgBytes is the room GRPC_MAX_RECV_MSG_BYTES keeps above
// MAX_METADATA_BYTES: the rest of a request (names, field tags, lengths)
// must fit beside a trigger's metadata at its limit.
const minRecvMsgBytes = 4096
