package metrics

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RPC counts and times every gRPC call by type, service, method and status
// code: grpc_server_started_total, grpc_server_handled_total,
// grpc_server_msg_received_total, grpc_server_msg_sent_total and
// grpc_server_handling_seconds, the series of the usual grpc-prometheus
// server interceptors. A method's label children are resolved once, on its
// first call (a series appears with its first call, as before), and kept in
// a table built from the server's services (see Prepare), so that a call
// hashes no labels and allocates nothing.
type RPC struct {
	started, handled, received, sent *prometheus.CounterVec
	handling                         *prometheus.HistogramVec
	methods                          atomic.Pointer[map[string]*rpcMethod]
}

// rpcMethod holds one method's labels and its label children, each
// resolved on first use.
type rpcMethod struct {
	rpc                     *RPC
	labels                  []string // grpc_type, grpc_service, grpc_method
	started, received, sent atomic.Pointer[prometheus.Counter]
	handling                atomic.Pointer[prometheus.Observer]
	handled                 [codes.Unauthenticated + 1]atomic.Pointer[prometheus.Counter]
}

// newRPC returns the RPC metrics, timed in buckets.
func newRPC(buckets []float64) *RPC {
	labels := []string{"grpc_type", "grpc_service", "grpc_method"}
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return CounterVec(name, help, labels...)
	}
	return &RPC{
		started: counter("grpc_server_started_total", "Total number of RPCs started on the server.", labels),
		handled: counter("grpc_server_handled_total", "Total number of RPCs completed on the server, regardless of success or failure.",
			append(labels[:3:3], "grpc_code")),
		received: counter("grpc_server_msg_received_total", "Total number of RPC stream messages received on the server.", labels),
		sent:     counter("grpc_server_msg_sent_total", "Total number of gRPC stream messages sent by the server.", labels),
		handling: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "grpc_server_handling_seconds",
			Help:    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
			Buckets: buckets,
		}, labels),
	}
}

// Describe implements prometheus.Collector.
func (r *RPC) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range r.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (r *RPC) Collect(ch chan<- prometheus.Metric) {
	for _, c := range r.collectors() {
		c.Collect(ch)
	}
}

func (r *RPC) collectors() [5]prometheus.Collector {
	return [5]prometheus.Collector{r.started, r.handled, r.received, r.sent, r.handling}
}

// Prepare builds the table of the methods srv serves; call it once the
// services are registered and before serving. It creates no series. A call
// to a method outside the table is still counted, its labels looked up per
// call.
func (r *RPC) Prepare(srv interface {
	GetServiceInfo() map[string]grpc.ServiceInfo
}) {
	table := map[string]*rpcMethod{}
	for service, info := range srv.GetServiceInfo() {
		for _, mi := range info.Methods {
			typ := "unary"
			if mi.IsClientStream || mi.IsServerStream {
				typ = streamType(mi.IsClientStream, mi.IsServerStream)
			}
			table["/"+service+"/"+mi.Name] = &rpcMethod{rpc: r, labels: []string{typ, service, mi.Name}}
		}
	}
	r.methods.Store(&table)
}

// method returns the entry of fullMethod called as typ.
func (r *RPC) method(fullMethod, typ string) *rpcMethod {
	if t := r.methods.Load(); t != nil {
		if m, ok := (*t)[fullMethod]; ok && m.labels[0] == typ {
			return m
		}
	}
	service, method := "unknown", "unknown"
	if s, m, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/"); ok {
		service, method = s, m
	}
	return &rpcMethod{rpc: r, labels: []string{typ, service, method}}
}

// streamType is the grpc_type of a streaming call.
func streamType(client, server bool) string {
	switch {
	case client && !server:
		return "client_stream"
	case !client && server:
		return "server_stream"
	}
	return "bidi_stream"
}

// UnaryServerInterceptor counts and times unary calls: one message
// received per call, one sent when the handler succeeds.
func (r *RPC) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		call := r.StartUnary(info.FullMethod)
		resp, err := handler(ctx, req)
		call.End(err)
		return resp, err
	}
}

// UnaryCall is one unary call being counted and timed (StartUnary).
type UnaryCall struct {
	m     *rpcMethod
	start time.Time
}

// StartUnary counts a unary call of fullMethod as started, its request as
// received, and starts its clock: what UnaryServerInterceptor does, for a
// server that folds its interceptors into one (a chain of them allocates
// on every call).
func (r *RPC) StartUnary(fullMethod string) UnaryCall {
	m := r.method(fullMethod, "unary")
	m.counter(&m.started, r.started).Inc()
	m.counter(&m.received, r.received).Inc()
	return UnaryCall{m: m, start: time.Now()}
}

// End counts the call as handled with err's code, and its reply as sent
// when err is nil.
func (c UnaryCall) End(err error) {
	if err == nil {
		c.m.counter(&c.m.sent, c.m.rpc.sent).Inc()
	}
	c.m.done(err, c.start)
}

// StreamServerInterceptor counts and times streaming calls and the
// messages they receive and send without error.
func (r *RPC) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		m := r.method(info.FullMethod, streamType(info.IsClientStream, info.IsServerStream))
		m.counter(&m.started, r.started).Inc()
		err := handler(srv, &countedStream{ServerStream: ss, m: m})
		m.done(err, start)
		return err
	}
}

// countedStream counts the messages of one streaming call.
type countedStream struct {
	grpc.ServerStream
	m *rpcMethod
}

// SendMsg sends m, counting it when sent.
func (s *countedStream) SendMsg(m any) error {
	err := s.ServerStream.SendMsg(m)
	if err == nil {
		s.m.counter(&s.m.sent, s.m.rpc.sent).Inc()
	}
	return err
}

// RecvMsg receives m, counting it when received.
func (s *countedStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil {
		s.m.counter(&s.m.received, s.m.rpc.received).Inc()
	}
	return err
}

// done counts the call as handled with err's code and times it from start.
func (m *rpcMethod) done(err error, start time.Time) {
	code := codes.OK
	if err != nil {
		s, ok := status.FromError(err)
		if !ok {
			s = status.FromContextError(err)
		}
		code = s.Code()
	}
	if int(code) >= len(m.handled) {
		m.rpc.handled.WithLabelValues(m.labels[0], m.labels[1], m.labels[2], code.String()).Inc()
	} else if c := m.handled[code].Load(); c != nil {
		(*c).Inc()
	} else {
		c := m.rpc.handled.WithLabelValues(m.labels[0], m.labels[1], m.labels[2], code.String())
		m.handled[code].Store(&c)
		c.Inc()
	}
	h := m.handling.Load()
	if h == nil {
		o := m.rpc.handling.WithLabelValues(m.labels...)
		m.handling.Store(&o)
		h = &o
	}
	(*h).Observe(time.Since(start).Seconds())
}

// counter returns the child of vec held in p, resolving it with the
// method's labels on first use.
func (m *rpcMethod) counter(p *atomic.Pointer[prometheus.Counter], vec *prometheus.CounterVec) prometheus.Counter {
	if c := p.Load(); c != nil {
		return *c
	}
	c := vec.WithLabelValues(m.labels...)
	p.Store(&c)
	return c
}
