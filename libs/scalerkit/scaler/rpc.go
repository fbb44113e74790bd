package scaler

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

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

// GetMetricSpec returns the trigger's metric and target from memory. A
// target that should be read from the backend but has no reader yet is
// the trigger's static one, with a warning when no reader could start.
func (s *Service) GetMetricSpec(ctx context.Context, ref *pb.ScaledObjectRef) (*pb.GetMetricSpecResponse, error) {
	t, ctx, err := s.parse(ctx, ref)
	if err != nil {
		return nil, err
	}
	target, note := s.target(ctx, t)
	if note != "" {
		_ = grpc.SetHeader(ctx, grpcmd.Pairs(WarningHeader, note)) // fails only outside a gRPC call
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
// every change of it, until the client leaves or the service closes. Its
// feed always runs: without a watch place (MAX_FEEDS) it hears of changes
// at its next PUSH_INTERVAL read instead of at once.
func (s *Service) StreamIsActive(ref *pb.ScaledObjectRef, srv pb.ExternalScaler_StreamIsActiveServer) error {
	t, ctx, err := s.parse(srv.Context(), ref)
	if err != nil {
		return err
	}
	ctx, done, err := s.openStream(ctx, "StreamIsActive")
	if err != nil {
		return err
	}
	defer done()

	sub, err := s.values.Subscribe(s.source(ctx, kindValue, t.valueKey, t.Probe))
	if err != nil {
		return status.Errorf(codes.Internal, "push feed: %v", err) // the values hub has no reader places: never
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
// target read from the backend. It always agrees with GetMetricSpec. A
// static target never changes, so its stream sends the spec and ends
// with Unimplemented (errStaticTarget): KEDA then stops watching it
// without a retry or an error log, and a new generation of the
// ScaledObject, the only way that target changes, opens it again.
func (s *Service) StreamMetricSpec(ref *pb.ScaledObjectRef, srv pb.ExternalScaler_StreamMetricSpecServer) error {
	t, ctx, err := s.parse(srv.Context(), ref)
	if err != nil {
		return err
	}
	if t.TargetProbe == nil { // sent and ended at once: it holds no stream place
		if err := s.sendSpec(srv, t, t.Target); err != nil {
			return err
		}
		return errStaticTarget
	}
	ctx, done, err := s.openStream(ctx, "StreamMetricSpec")
	if err != nil {
		return err
	}
	defer done()
	return s.streamTarget(ctx, srv, t)
}

// streamTarget follows t's target read from the backend for
// StreamMetricSpec. Without a reader place (MAX_TARGET_READERS) it sends
// the static target, and asks for a place again every PUSH_INTERVAL; a
// reader whose place is taken falls back the same way.
func (s *Service) streamTarget(ctx context.Context, srv pb.ExternalScaler_StreamMetricSpecServer, t *parsed) error {
	var last float64
	sent := false
	send := func(target float64) error {
		if sent && target == last {
			return nil
		}
		last, sent = target, true
		return s.sendSpec(srv, t, target)
	}
	src := s.source(ctx, kindTarget, t.targetKey, t.TargetProbe)
	retry := time.NewTicker(s.opts.PushInterval)
	defer retry.Stop()
	subscribe := s.targets.Subscribe
	for {
		sub, err := subscribe(src)
		subscribe = s.targets.Resubscribe // asking again takes no namespace's single place
		if err != nil {
			s.noReader(ctx, t)
			if err := send(t.Target); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return nil
			case <-s.closed:
				return nil
			case <-retry.C:
				continue
			}
		}
		err = s.followTarget(ctx, sub, t, send)
		sub.Close()
		if !errors.Is(err, errReaderLost) {
			return err
		}
	}
}

// errStaticTarget ends a StreamMetricSpec whose target is static, after
// its spec: no goroutine or HTTP/2 stream is held for a value that cannot
// change while the ScaledObject does not.
var errStaticTarget = status.Error(codes.Unimplemented, StaticTargetMessage)

// StaticTargetMessage is the status message of a StreamMetricSpec ended
// Unimplemented because its target is static; scalerctl watch tells it
// from a scaler without StreamMetricSpec by its "static target" prefix.
const StaticTargetMessage = "static target, not streamed (the trigger reads no target from the backend); GetMetricSpec answers it"

// errReaderLost ends followTarget when the reader's place was taken.
var errReaderLost = errors.New("target reader place taken")

// followTarget sends t's target, then every change of it, until the
// client leaves or the service closes (nil), sending fails, or sub's
// reader loses its place (errReaderLost).
func (s *Service) followTarget(ctx context.Context, sub *stream.Subscription[Reading], t *parsed, send func(float64) error) error {
	for {
		target, _ := s.target(ctx, t) // the hub keeps the newest good target
		if err := send(target); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.closed:
			return nil
		case <-sub.Lost():
			return errReaderLost
		case <-sub.C():
		}
	}
}

// follow calls on with each update until on fails, the client leaves or
// the service closes; the last two are a clean end (KEDA reopens the
// stream in 2 s).
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

// openStream takes a push stream place of the caller's namespace
// (MAX_PUSH_STREAMS, MAX_PUSH_STREAMS_PER_NAMESPACE), or refuses the
// stream, then counts and logs it; done closes it. The returned context
// ends when the place is taken for a namespace under its fair share: the
// stream then ends cleanly (KEDA reopens it, and is refused while the
// namespace holds its share).
func (s *Service) openStream(ctx context.Context, rpc string) (_ context.Context, done func(), _ error) {
	ns := refOf(ctx).GetNamespace()
	place, ok := s.streams.TakeAtMost(ns, s.opts.MaxPushStreamsPerNamespace)
	switch {
	case !ok && s.streams.Held(ns) >= s.opts.MaxPushStreamsPerNamespace:
		return ctx, nil, s.refuse(ctx, limitStreamsPerNamespace)
	case !ok:
		return ctx, nil, s.refuse(ctx, limitStreams)
	}
	ctx, cancel := context.WithCancel(ctx)
	log := s.logger(ctx)
	stop := place.AfterLost(func() {
		s.limitLog.Log(ctx, log, slog.LevelInfo, "push-stream-place-lost",
			"push stream ended cleanly: its place went to a namespace under its fair share (MAX_PUSH_STREAMS)", slog.String("rpc", rpc))
		cancel()
	})
	s.metrics.OpenStreams.WithLabelValues(rpc).Inc()
	log.Debug("stream opened", slog.String("rpc", rpc))
	return ctx, func() {
		stop()
		place.Release()
		cancel()
		s.metrics.OpenStreams.WithLabelValues(rpc).Dec()
		log.Debug("stream closed", slog.String("rpc", rpc))
	}, nil
}
