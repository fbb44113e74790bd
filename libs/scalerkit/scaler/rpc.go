package scaler

import (
	"context"
	"log/slog"

	"github.com/kedascalers/kedascalers/libs/scalerkit/stream"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// IsActive reports whether the trigger is active, from the same reading
// GetMetrics used when it came within the cache TTL.
func (s *Service) IsActive(ctx context.Context, ref *pb.ScaledObjectRef) (*pb.IsActiveResponse, error) {
	t, ctx, err := s.parse(ctx, ref)
	if err != nil {
		return nil, err
	}
	r, err := s.readValue(ctx, t)
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
	t, ctx, err := s.parse(ctx, req.GetScaledObjectRef())
	if err != nil {
		return nil, err
	}
	if t.TargetProbe != nil {
		s.targets.Touch(s.source(ctx, kindTarget, t.targetKey, t.TargetProbe)) // still needed: keep reading it
	}
	r, err := s.readValue(ctx, t)
	if err != nil {
		return nil, err
	}
	return metricsResponse(t.MetricName, r.Value), nil
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
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.closed:
			return nil // shutting down: a clean end, KEDA reopens in 2 s
		case u := <-sub.C():
			if u.Err != nil && (t.OnError != ErrorInactive || !backendFailure(u.Err)) {
				continue // polling reports the error; the stream waits for news
			}
			if err := send(u.Err == nil && t.Active(u.Value)); err != nil {
				return err
			}
		}
	}
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
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.closed:
			return nil
		case <-updates: // the hub keeps the newest good target
			target, err := s.target(ctx, t)
			if err != nil {
				return err
			}
			if target != last {
				if err := s.sendSpec(srv, t, target); err != nil {
					return err
				}
				last = target
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
