// Package metrics holds the Prometheus metrics every scaler exports on
// /metrics: RPC counts and latencies per method and code, backend call
// latency and errors, cache outcomes, open push streams, and what the limits
// of one tenant against the others hold, evict and refuse.
package metrics

import (
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is the set of metrics of one scaler process, in a registry of its
// own (no global state, so tests can build as many as they like).
type Metrics struct {
	// Registry holds every metric below plus the Go and process collectors.
	Registry *prometheus.Registry
	// GRPC counts and times every RPC by method and status code
	// (grpc_server_handled_total, grpc_server_handling_seconds, ...).
	GRPC *grpcprom.ServerMetrics
	// BackendRequests times backend calls by kind ("value" or "target") and
	// outcome ("ok" or "error").
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
	// (StreamIsActive feeds) or "target_readers".
	Held *prometheus.GaugeVec
	// HeldLimit is the bound on Held by resource, for alerts on held/limit.
	HeldLimit *prometheus.GaugeVec
	// Evictions counts idle entries dropped to make room, by resource.
	Evictions *prometheus.CounterVec
	// LimitRefusals counts requests refused because a limit was reached,
	// by the limit's variable (e.g. MAX_QUESTIONS, MAX_METADATA_BYTES).
	LimitRefusals *prometheus.CounterVec
}

// New returns the metrics registered in a new registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		GRPC: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramBuckets([]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}),
		)),
		BackendRequests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kedascalers_backend_request_duration_seconds",
			Help:    "Duration of backend calls by kind (value, target) and outcome (ok, error).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"kind", "outcome"}),
		CacheRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kedascalers_cache_requests_total",
			Help: "Metric reads by cache outcome: hit, shared (joined a call in flight) or miss.",
		}, []string{"outcome"}),
		OpenStreams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kedascalers_open_streams",
			Help: "Open push streams by RPC.",
		}, []string{"rpc"}),
		StreamMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kedascalers_stream_messages_total",
			Help: "Messages sent on push streams by RPC.",
		}, []string{"rpc"}),
		Held: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kedascalers_held",
			Help: "Distinct questions held by resource: questions (cache entries and calls in flight), feeds (StreamIsActive), target_readers.",
		}, []string{"resource"}),
		HeldLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kedascalers_held_limit",
			Help: "Bound on kedascalers_held by resource (MAX_QUESTIONS, MAX_FEEDS, MAX_TARGET_READERS).",
		}, []string{"resource"}),
		Evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kedascalers_evictions_total",
			Help: "Idle entries dropped to make room for a new question, by resource.",
		}, []string{"resource"}),
		LimitRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kedascalers_limit_refusals_total",
			Help: "Requests refused because a limit was reached, by the limit's variable.",
		}, []string{"limit"}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.GRPC, m.BackendRequests, m.CacheRequests, m.OpenStreams, m.StreamMessages,
		m.Held, m.HeldLimit, m.Evictions, m.LimitRefusals,
	)
	return m
}
