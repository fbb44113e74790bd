package scaler

import (
	"context"
	"log/slog"

	"google.golang.org/grpc"
	grpcmd "google.golang.org/grpc/metadata"

	"github.com/kedascalers/kedascalers/libs/scalerkit/stream"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// IsActive reports whether the trigger is active, from the same reading
// GetMetrics used when it came within the cache TTL.
func (s *Service) IsActive(ctx context.Context, ref *pb.ScaledObjectRef) (*pb.IsActiveResponse, error) {
	t, r, err := s.value(ctx, ref, false)
	if err != nil {
		return nil, err
	}
	return isActiveResponse(t.Active(r)), nil
}

// GetMetricSpec returns the trigger's metric and target from memory.
func (s *Service) GetMetricSpec(ctx context.Context, ref *pb.ScaledObjectRef) (*pb.GetMetricSpecResponse, error) {
	t, ctx, err := s.parse(ctx, ref)
	if err != nil {
		return nil, err
	}
	target, err := s.target(ctx, t)
	if err != nil {
		return nil, err
	}
	return specResponse(t.MetricName, target), nil
}

// GetMetrics returns exactly one value: the trigger's metric.
func (s *Service) GetMetrics(ctx context.Context, req *pb.GetMetricsRequest) (*pb.GetMetricsResponse, error) {
	t, r, err := s.value(ctx, req.GetScaledObjectRef(), true)
	if err != nil {
		return nil, err
	}
	if r.Note != "" {
		_ = grpc.SetHeader(ctx, grpcmd.Pairs(WarningHeader, r.Note)) // fails only outside a gRPC call
	}
	return metricsResponse(t.MetricName, r.Value), nil
}

// value parses ref's trigger and reads its value, for a poll. With
// keepTarget a target read from the backend is marked still needed, so
// that its reader goes on (GetMetrics).
func (s *Service) value(ctx context.Context, ref *pb.ScaledObjectRef, keepTarget bool) (*parsed, Reading, error) {
	t, ctx, err := s.parse(ctx, ref)
	if err != nil {
		return nil, Reading{}, err
	}
	if keepTarget && t.TargetProbe != nil {
		s.targets.Touch(s.source(ctx, kindTarget, t.targetKey, t.TargetProbe))
	}
	r, err := s.readValue(ctx, t)
	return t, r, err
}

// StreamIsActive sends the current activity as soon as it is known, then
// every change of it, until the client leaves or the service closes.
func (s *Service) StreamIsActive(ref *pb.ScaledObjectRef, srv pb.ExternalScaler_StreamIsActiveServer) error {
	t, ctx, err := s.parse(srv.Context(), ref)
	if err != nil {
		return err
	}
	done := s.openStream(ctx, "StreamIsActive")
	defer done()

	sub, err := s.values.Subscribe(s.source(ctx, kindValue, t.valueKey, t.Probe))
	if err != nil {
		return s.refuse(ctx, limitFeeds)
	}
	defer sub.Close()

	var last, sent bool
	send := func(active bool) error {
		if sent && active == last {
			return nil // KEDA restarts its cooldown on every true: never repeat it
		}
		if err := srv.Send(&pb.IsActiveResponse{Result: active}); err != nil {
			return err
		}
		s.metrics.StreamMessages.WithLabelValues("StreamIsActive").Inc()
		last, sent = active, true
		return nil
	}
	if r, err := s.readValue(ctx, t); err == nil {
		if err := send(t.Active(r)); err != nil {
			return err
		}
	}
	return s.follow(ctx, sub.C(), func(u stream.Update[Reading]) error {
		if u.Err != nil && (t.OnError != ErrorInactive || !backendFailure(u.Err)) {
			return nil // polling reports the error; the stream waits for news
		}
		return send(u.Err == nil && t.Active(u.Value))
	})
}

// StreamMetricSpec sends the metric spec at once, then every change of a
// target read from the backend. It always agrees with GetMetricSpec.
func (s *Service) StreamMetricSpec(ref *pb.ScaledObjectRef, srv pb.ExternalScaler_StreamMetricSpecServer) error {
	t, ctx, err := s.parse(srv.Context(), ref)
	if err != nil {
		return err
	}
	done := s.openStream(ctx, "StreamMetricSpec")
	defer done()

	var updates <-chan stream.Update[Reading]
	if t.TargetProbe != nil {
		sub, err := s.targets.Subscribe(s.source(ctx, kindTarget, t.targetKey, t.TargetProbe))
		if err != nil {
			return s.refuse(ctx, limitTargetReaders)
		}
		defer sub.Close()
		updates = sub.C()
	}
	last, err := s.target(ctx, t)
	if err != nil {
		return err
	}
	if err := s.sendSpec(srv, t, last); err != nil {
		return err
	}
	return s.follow(ctx, updates, func(stream.Update[Reading]) error {
		target, err := s.target(ctx, t) // the hub keeps the newest good target
		if err != nil || target == last {
			return err
		}
		last = target
		return s.sendSpec(srv, t, target)
	})
}

// follow calls on with each update until on fails, the client leaves or
// the service closes; the last two are a clean end (KEDA reopens the
// stream in 2 s). A nil updates channel only waits for the end.
func (s *Service) follow(ctx context.Context, updates <-chan stream.Update[Reading], on func(stream.Update[Reading]) error) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.closed:
			return nil
		case u := <-updates:
			if err := on(u); err != nil {
				return err
			}
		}
	}
}

func (s *Service) sendSpec(srv pb.ExternalScaler_StreamMetricSpecServer, t *parsed, target float64) error {
	if err := srv.Send(specResponse(t.MetricName, target)); err != nil {
		return err
	}
	s.metrics.StreamMessages.WithLabelValues("StreamMetricSpec").Inc()
	return nil
}

// openStream counts and logs a push stream; the returned func closes it.
func (s *Service) openStream(ctx context.Context, rpc string) func() {
	s.metrics.OpenStreams.WithLabelValues(rpc).Inc()
	log := s.logger(ctx)
	log.Debug("stream opened", slog.String("rpc", rpc))
	return func() {
		s.metrics.OpenStreams.WithLabelValues(rpc).Dec()
		log.Debug("stream closed", slog.String("rpc", rpc))
	}
}
