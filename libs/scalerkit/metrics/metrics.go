// Package metrics holds the Prometheus metrics every scaler exports on
// /metrics: RPC counts and latencies per method and code, backend call
// latency and errors, cache outcomes and open push streams.
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
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.GRPC, m.BackendRequests, m.CacheRequests, m.OpenStreams, m.StreamMessages,
	)
	return m
}
