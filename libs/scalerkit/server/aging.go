package server

import (
	"context"
	"errors"
	"path"
	"time"

	"google.golang.org/grpc"
)

// errAged is the cause of a stream context ended by endBeforeCut.
var errAged = errors.New("the connection reached MAX_CONNECTION_AGE: stream ended cleanly before the cut")

// endBeforeCut ends every stream on a connection cleanly (status OK) once
// the connection is end old (config.PushStreamEnd): grpc-go has sent its
// GOAWAY by then and has not yet cut the calls left open, which would end
// them Unavailable, an end KEDA doubles its retry wait on. KEDA reopens a
// stream that ended with OK 2 s later, on its new connection.
func (l *connLimits) endBeforeCut(end time.Duration) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		tc := connOf(ss.Context())
		if tc == nil || end <= 0 || !tc.established.Load() {
			return handler(srv, ss)
		}
		setUp := time.Unix(0, tc.setUp.Load())
		ctx, cancel := context.WithDeadlineCause(ss.Context(), setUp.Add(end), errAged)
		defer cancel()
		err := handler(srv, &agingStream{ServerStream: ss, ctx: ctx})
		if errors.Is(context.Cause(ctx), errAged) {
			l.metrics.StreamsAged.WithLabelValues(path.Base(info.FullMethod)).Inc()
			return nil // whatever the handler made of its ended context
		}
		return err
	}
}

// agingStream is a server stream whose context ends when its connection
// is old enough.
type agingStream struct {
	grpc.ServerStream
	ctx context.Context
}

// Context returns the stream's context, ending with the connection's age.
func (s *agingStream) Context() context.Context { return s.ctx }
