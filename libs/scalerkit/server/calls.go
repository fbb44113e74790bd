package server

import (
	"context"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// countStream counts the streams open on each connection
// (GRPC_MAX_CONCURRENT_STREAMS); unary calls are counted by Server.unary.
func (l *connLimits) countStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if tc := l.begin(ss.Context()); tc != nil {
		defer tc.streams.Add(-1)
	}
	return handler(srv, ss)
}

// begin counts a call opening on its connection, which it returns, and
// warns when that reaches the limit. It returns nil when not counting.
func (l *connLimits) begin(ctx context.Context) *trackedConn {
	if l.maxStreams == 0 {
		return nil
	}
	tc := connOf(ctx)
	if tc == nil {
		return nil
	}
	if n := tc.streams.Add(1); n == l.maxStreams {
		l.metrics.StreamLimitReached.Inc()
		l.warn.Log(ctx, l.log, slog.LevelWarn, "grpc-max-concurrent-streams",
			"gRPC connection reached its limit of open calls: its further calls wait",
			slog.Int64("limit", l.maxStreams), slog.String("variable", "GRPC_MAX_CONCURRENT_STREAMS"),
			slog.String("remote", tc.addr.String()))
	}
	return tc
}

// ended counts a call that ended refused for its request's size.
func (l *connLimits) ended(ctx context.Context, err error) {
	if err == nil || !tooLarge(err) {
		return
	}
	l.metrics.MessagesTooLarge.Inc()
	l.metrics.LimitRefusals.WithLabelValues("GRPC_MAX_RECV_MSG_BYTES").Inc()
	l.warn.Log(ctx, l.log, slog.LevelWarn, "grpc-max-recv-msg-bytes",
		"gRPC request refused: message too large",
		slog.String("variable", "GRPC_MAX_RECV_MSG_BYTES"), slog.String("error", status.Convert(err).Message()))
}

// sizeWatch registers services on a gRPC server with each method's end
// watched for requests over GRPC_MAX_RECV_MSG_BYTES: grpc-go refuses those
// while decoding, before any interceptor runs.
type sizeWatch struct {
	*grpc.Server
	limits *connLimits
}

// RegisterService registers desc with its handlers wrapped.
func (w sizeWatch) RegisterService(desc *grpc.ServiceDesc, impl any) {
	d := *desc
	d.Methods = make([]grpc.MethodDesc, len(desc.Methods))
	for i, m := range desc.Methods {
		h := m.Handler
		m.Handler = func(srv any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
			resp, err := h(srv, ctx, dec, in)
			w.limits.ended(ctx, err)
			return resp, err
		}
		d.Methods[i] = m
	}
	d.Streams = make([]grpc.StreamDesc, len(desc.Streams))
	for i, s := range desc.Streams {
		h := s.Handler
		s.Handler = func(srv any, ss grpc.ServerStream) error {
			err := h(srv, ss)
			w.limits.ended(ss.Context(), err)
			return err
		}
		d.Streams[i] = s
	}
	w.Server.RegisterService(&d, impl)
}
