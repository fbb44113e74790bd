// Package metrics holds the Prometheus metrics every scaler exports on
// /metrics: RPC counts and latencies per method and code, backend call
// latency and errors, cache outcomes, open push streams, and what the limits
// of one tenant against the others hold, evict and refuse.
package metrics

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/fault"
	"github.com/kedascalers/kedascalers/libs/scalerkit/share"
)

// Metrics is the set of metrics of one scaler process, in a registry of its
// own (no global state, so tests can build as many as they like).
type Metrics struct {
	// Registry holds every metric below plus the Go and process collectors.
	Registry *prometheus.Registry
	// GRPC counts and times every RPC by method and status code
	// (grpc_server_handled_total, grpc_server_handling_seconds, ...).
	GRPC *RPC
	// BackendRequests times backend calls by kind ("value" or "target") and
	// outcome (see Outcome).
	BackendRequests *prometheus.HistogramVec
	// CacheRequests counts metric reads by outcome: "hit" (kept value),
	// "shared" (joined a call in flight) or "miss" (new backend call).
	CacheRequests *prometheus.CounterVec
	// OpenStreams is the number of open push streams by RPC.
	OpenStreams *prometheus.GaugeVec
	// StreamMessages counts messages sent on push streams by RPC.
	StreamMessages *prometheus.CounterVec
	// Held is the number of distinct questions held by resource:
	// "questions" (cache entries and calls in flight), "feeds"
	// (StreamIsActive feeds that watch their question), "feeds_polled"
	// (feeds polling for want of a MAX_FEEDS place), "target_readers" or
	// "triggers" (distinct trigger metadata kept parsed).
	Held *prometheus.GaugeVec
	// HeldLimit is the bound on Held by resource, for alerts on held/limit.
	HeldLimit *prometheus.GaugeVec
	// HeldLargest is the places of a resource held by the namespace
	// holding the most (see package share), by resource.
	HeldLargest *prometheus.GaugeVec
	// PlacesTaken counts places of a resource taken from the namespace
	// holding the most for a namespace under its fair share, by resource.
	PlacesTaken *prometheus.CounterVec
	// Waiting is the number of calls waiting for a place of a resource
	// (see share.Queue), by resource.
	Waiting *prometheus.GaugeVec
	// Evictions counts idle entries dropped to make room, by resource.
	Evictions *prometheus.CounterVec
	// LimitRefusals counts requests refused because a limit was reached,
	// by the limit's variable (e.g. MAX_QUESTIONS, MAX_METADATA_BYTES).
	// Backends count their own limits in it too (see Refusals).
	LimitRefusals *prometheus.CounterVec

	// Connections is the number of open gRPC connections.
	Connections prometheus.Gauge
	// ConnectionsRefused counts connections closed at once because
	// GRPC_MAX_CONNECTIONS were open.
	ConnectionsRefused prometheus.Counter
	// HandshakeFailures counts connections closed before their TLS and
	// HTTP/2 setup completed (GRPC_HANDSHAKE_TIMEOUT, a failed TLS
	// handshake, a client leaving early).
	HandshakeFailures prometheus.Counter
	// ConnectionDuration is how long gRPC connections lived, observed when
	// they close; MAX_CONNECTION_AGE plus its grace bounds it.
	ConnectionDuration prometheus.Histogram
	// StreamLimitReached counts the times a connection reached
	// GRPC_MAX_CONCURRENT_STREAMS open calls.
	StreamLimitReached prometheus.Counter
	// MessagesTooLarge counts requests refused for exceeding
	// GRPC_MAX_RECV_MSG_BYTES.
	MessagesTooLarge prometheus.Counter
	// StreamsAged counts streams ended cleanly because their connection
	// reached MAX_CONNECTION_AGE, by RPC (StreamIsActive, ...).
	StreamsAged *prometheus.CounterVec
	// BuildInfo is 1 for the running build, labelled with its service,
	// version and Go version (see SetBuild).
	BuildInfo *prometheus.GaugeVec
}

// WatchCertificate exports kedascalers_tls_certificate_expiry_timestamp_seconds,
// the expiry of the serving certificate that notAfter reports at each
// scrape. Only a scaler serving TLS has it.
func (m *Metrics) WatchCertificate(notAfter func() time.Time) {
	m.Registry.MustRegister(GaugeFunc("kedascalers_tls_certificate_expiry_timestamp_seconds",
		"When the serving TLS certificate (TLS_CERT_FILE, reloaded on change) expires, in Unix seconds.",
		func() float64 { return float64(notAfter().Unix()) }))
}

// SetBuild sets kedascalers_build_info{service,version,go_version} to 1
// for this process: version is the one the build stamped (scalerkit.Version).
func (m *Metrics) SetBuild(service, version string) {
	m.BuildInfo.WithLabelValues(service, version, runtime.Version()).Set(1)
}

// newRefusals returns a new kedascalers_limit_refusals_total.
func newRefusals() *prometheus.CounterVec {
	return CounterVec("kedascalers_limit_refusals_total",
		"Requests refused because a limit was reached, by the limit's variable (the scaler's and the backend's).", "limit")
}

// Refusals returns the kedascalers_limit_refusals_total{limit} counter of
// reg, registering it when reg has none yet, so that a backend counts its
// own limits (REDIS_MAX_CONNECTIONS, MAX_ROWS, ...) in the metric the
// scaler counts its limits in: one metric to alert on. With a nil reg it
// returns a counter of its own, registered nowhere.
func Refusals(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := newRefusals()
	if reg == nil {
		return c, nil
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing, nil
			}
		}
		return nil, fmt.Errorf("registering kedascalers_limit_refusals_total: %w", err)
	}
	return c, nil
}

// New returns the metrics registered in a new registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		GRPC:     newRPC([]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}),
		BackendRequests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kedascalers_backend_request_duration_seconds",
			Help:    "Duration of backend calls by kind (value, target) and outcome: ok; invalid (the tenant's mistake); refused, unavailable, timeout, exhausted, internal (the platform's); canceled.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"kind", "outcome"}),
		CacheRequests: CounterVec("kedascalers_cache_requests_total",
			"Metric reads by cache outcome: hit, shared (joined a call in flight) or miss.", "outcome"),
		OpenStreams:    GaugeVec("kedascalers_open_streams", "Open push streams by RPC.", "rpc"),
		StreamMessages: CounterVec("kedascalers_stream_messages_total", "Messages sent on push streams by RPC.", "rpc"),
		Held:           newHeld(),
		HeldLimit:      newHeldLimit(),
		HeldLargest:    newHeldLargest(),
		PlacesTaken:    newPlacesTaken(),
		Waiting: GaugeVec("kedascalers_waiting",
			"Calls waiting their turn for a place of a resource, by resource: backend_calls (value reads), target_calls (target reads).", "resource"),
		Evictions: CounterVec("kedascalers_evictions_total",
			"Idle entries dropped to make room for a new question, by resource.", "resource"),
		LimitRefusals: newRefusals(),
		Connections: Gauge("kedascalers_grpc_connections",
			"Open gRPC connections (bounded by GRPC_MAX_CONNECTIONS)."),
		ConnectionsRefused: Counter("kedascalers_grpc_connections_refused_total",
			"gRPC connections closed at once because GRPC_MAX_CONNECTIONS were open."),
		HandshakeFailures: Counter("kedascalers_grpc_handshake_failures_total",
			"gRPC connections closed before TLS and HTTP/2 setup completed (GRPC_HANDSHAKE_TIMEOUT, failed TLS, client gone)."),
		ConnectionDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kedascalers_grpc_connection_duration_seconds",
			Help:    "Lifetime of closed gRPC connections (MAX_CONNECTION_AGE plus MAX_CONNECTION_AGE_GRACE bounds it).",
			Buckets: []float64{1, 10, 60, 300, 540, 660, 720, 1800, 3600},
		}),
		StreamLimitReached: Counter("kedascalers_grpc_stream_limit_reached_total",
			"Times a connection reached GRPC_MAX_CONCURRENT_STREAMS open calls (its further calls wait)."),
		MessagesTooLarge: Counter("kedascalers_grpc_messages_too_large_total",
			"Requests refused (ResourceExhausted) for exceeding GRPC_MAX_RECV_MSG_BYTES."),
		StreamsAged: CounterVec("kedascalers_grpc_streams_aged_total",
			"Streams ended cleanly (OK) because their connection reached MAX_CONNECTION_AGE, before the grace ran out, by RPC.", "rpc"),
		BuildInfo: GaugeVec("kedascalers_build_info",
			"1 for the running build, by service, version and Go version.", "service", "version", "go_version"),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.GRPC, m.BackendRequests, m.CacheRequests, m.OpenStreams, m.StreamMessages,
		m.Held, m.HeldLimit, m.HeldLargest, m.PlacesTaken, m.Waiting, m.Evictions, m.LimitRefusals,
		m.Connections, m.ConnectionsRefused, m.HandshakeFailures, m.ConnectionDuration,
		m.StreamLimitReached, m.MessagesTooLarge, m.BuildInfo, m.StreamsAged,
	)
	return m
}

// Outcome names the outcome of a call by its error, grouped by who acts
// on it (see package fault for whose problem an error is):
//
//	ok           the call succeeded
//	invalid      the tenant's mistake: the trigger asks something wrong (a
//	             bad query, a key of the wrong type, a query the read-only
//	             guard refuses); its owner fixes it (InvalidArgument,
//	             OutOfRange, NotFound, PermissionDenied, or any code a
//	             backend marked with fault.Tenant)
//	refused      the platform's: the backend answers but refuses the
//	             scaler's setup: credentials, a missing database or role
//	             (FailedPrecondition, Unauthenticated)
//	unavailable  the backend cannot be reached: an outage (Unavailable)
//	timeout      the backend did not answer in time (DeadlineExceeded)
//	exhausted    a limit of the scaler was reached (ResourceExhausted)
//	canceled     the call was cut short: the scaler is stopping (Canceled)
//	internal     a bug of the scaler or a recovered panic (anything else)
func Outcome(err error) string {
	if fault.IsTenant(err) {
		return "invalid"
	}
	switch status.Code(err) {
	case codes.OK:
		return "ok"
	case codes.FailedPrecondition, codes.Unauthenticated:
		return "refused"
	case codes.Unavailable:
		return "unavailable"
	case codes.DeadlineExceeded:
		return "timeout"
	case codes.ResourceExhausted:
		return "exhausted"
	case codes.Canceled:
		return "canceled"
	}
	return "internal"
}

func newHeld() *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kedascalers_held",
		Help: "Places held by resource: questions (cache entries and calls in flight), questions_in_flight (calls in flight, shared among namespaces), feeds (StreamIsActive feeds watching their question), feeds_polled (feeds polling for want of a MAX_FEEDS place), target_readers, triggers (distinct trigger metadata kept parsed), backend_calls and target_calls (backend calls running, value and target reads); backends add theirs (redis_connections, watched_keys, listen_channels).",
	}, []string{"resource"})
}

func newHeldLimit() *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kedascalers_held_limit",
		Help: "Bound on kedascalers_held by resource (MAX_QUESTIONS, MAX_FEEDS, MAX_TARGET_READERS; triggers and questions_in_flight: MAX_QUESTIONS; backend_calls and target_calls: their shares of MAX_BACKEND_CALLS).",
	}, []string{"resource"})
}

func newHeldLargest() *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kedascalers_held_largest_namespace",
		Help: "Places of a shared resource held by the namespace holding the most, by resource: compare with kedascalers_held_limit to see one tenant's weight.",
	}, []string{"resource"})
}

func newPlacesTaken() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kedascalers_places_taken_total",
		Help: "Places of a shared resource taken from the namespace holding the most for a namespace under its fair share, by resource.",
	}, []string{"resource"})
}

// SharedOn is Shared for a backend, which has only the Registerer of the
// scaler's metrics (scalerkit.Env): it finds the shared vectors in reg,
// registering them when reg has none yet. With a nil reg the reports go
// to vectors registered nowhere.
func SharedOn(reg prometheus.Registerer, resource string, limit int) (share.Options, error) {
	m := &Metrics{Held: newHeld(), HeldLimit: newHeldLimit(), HeldLargest: newHeldLargest(), PlacesTaken: newPlacesTaken()}
	if reg != nil {
		var err error
		if m.Held, err = registered(reg, m.Held); err != nil {
			return share.Options{}, err
		}
		if m.HeldLimit, err = registered(reg, m.HeldLimit); err != nil {
			return share.Options{}, err
		}
		if m.HeldLargest, err = registered(reg, m.HeldLargest); err != nil {
			return share.Options{}, err
		}
		if m.PlacesTaken, err = registered(reg, m.PlacesTaken); err != nil {
			return share.Options{}, err
		}
	}
	return m.Shared(resource, limit), nil
}

// registered returns c registered on reg, or the collector reg already
// has under its name.
func registered[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("registering a shared-resource metric: %w", err)
	}
	return c, nil
}

// Shared returns the reports of a share.Pool of limit places of resource:
// kedascalers_held, _held_limit, _held_largest_namespace and
// _places_taken_total, each resolved once.
func (m *Metrics) Shared(resource string, limit int) share.Options {
	held, largest, taken := m.Held.WithLabelValues(resource), m.HeldLargest.WithLabelValues(resource), m.PlacesTaken.WithLabelValues(resource)
	m.HeldLimit.WithLabelValues(resource).Set(float64(limit))
	return share.Options{
		Held:    func(n int) { held.Set(float64(n)) },
		Largest: func(n int) { largest.Set(float64(n)) },
		Taken:   taken.Inc,
	}
}

// Queued returns the reports of a share.Queue of limit calls of resource:
// kedascalers_held (running), _held_limit, _held_largest_namespace
// (running calls of the namespace running the most) and kedascalers_waiting,
// each resolved once.
func (m *Metrics) Queued(resource string, limit int) share.QueueOptions {
	held, largest, waiting := m.Held.WithLabelValues(resource), m.HeldLargest.WithLabelValues(resource), m.Waiting.WithLabelValues(resource)
	m.HeldLimit.WithLabelValues(resource).Set(float64(limit))
	return share.QueueOptions{
		Running: func(n int) { held.Set(float64(n)) },
		Largest: func(n int) { largest.Set(float64(n)) },
		Waiting: func(n int) { waiting.Set(float64(n)) },
	}
}
