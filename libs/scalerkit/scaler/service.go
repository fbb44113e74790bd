package scaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/cache"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metrics"
	"github.com/kedascalers/kedascalers/libs/scalerkit/stream"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// Options configures a Service. Zero durations take the defaults of the
// shared configuration (config.Config).
type Options struct {
	// CacheTTL is how long a reading answers further GetMetrics and
	// IsActive calls for the same probe. Zero keeps no readings but still
	// coalesces concurrent calls.
	CacheTTL time.Duration
	// PushInterval is how often push feeds read their probe.
	PushInterval time.Duration
	// BackendTimeout bounds every backend call.
	BackendTimeout time.Duration
	// TargetLease is how long a target read from the backend keeps being
	// refreshed after the last GetMetricSpec that needed it. Default 10m.
	TargetLease time.Duration
	// Logger receives one line per notable event. Defaults to slog.Default.
	Logger *slog.Logger
	// Metrics receives the service's metrics. Defaults to a fresh set.
	Metrics *metrics.Metrics
}

// Service implements externalscaler.ExternalScalerServer for a Backend.
type Service struct {
	pb.UnimplementedExternalScalerServer

	backend Backend
	opts    Options
	log     *slog.Logger
	metrics *metrics.Metrics
	cache   *cache.Group[Reading]
	values  *stream.Hub[Reading] // feeds StreamIsActive
	targets *stream.Hub[Reading] // refreshes targets read from the backend
}

// New returns a Service for b. Call Close when done.
func New(b Backend, opts Options) *Service {
	if opts.PushInterval <= 0 {
		opts.PushInterval = 5 * time.Second
	}
	if opts.BackendTimeout <= 0 {
		opts.BackendTimeout = 5 * time.Second
	}
	if opts.TargetLease <= 0 {
		opts.TargetLease = 10 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	s := &Service{backend: b, opts: opts, log: opts.Logger, metrics: opts.Metrics}
	s.cache = cache.New[Reading](cache.Options{
		TTL:     opts.CacheTTL,
		Timeout: opts.BackendTimeout,
		Observe: func(o cache.Outcome) { s.metrics.CacheRequests.WithLabelValues(o.String()).Inc() },
	})
	hubOpts := stream.Options{Interval: opts.PushInterval, Logger: opts.Logger}
	s.values = stream.NewHub[Reading](hubOpts)
	hubOpts.Lease = opts.TargetLease
	s.targets = stream.NewHub[Reading](hubOpts)
	return s
}

// Close ends every push stream cleanly (KEDA reopens them) and stops the
// background feeds.
func (s *Service) Close() {
	s.values.Close()
	s.targets.Close()
}

// Done is closed once Close has been called.
func (s *Service) Done() <-chan struct{} { return s.values.Done() }

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
	return &pb.IsActiveResponse{Result: t.Active(r)}, nil
}

// GetMetricSpec returns the trigger's metric and target from memory.
func (s *Service) GetMetricSpec(ctx context.Context, ref *pb.ScaledObjectRef) (*pb.GetMetricSpecResponse, error) {
	t, _, err := s.parse(ctx, ref)
	if err != nil {
		return nil, err
	}
	return specResponse(t.MetricName, s.target(t)), nil
}

// GetMetrics returns exactly one value: the trigger's metric.
func (s *Service) GetMetrics(ctx context.Context, req *pb.GetMetricsRequest) (*pb.GetMetricsResponse, error) {
	t, ctx, err := s.parse(ctx, req.GetScaledObjectRef())
	if err != nil {
		return nil, err
	}
	r, err := s.readValue(ctx, t)
	if err != nil {
		return nil, err
	}
	return &pb.GetMetricsResponse{MetricValues: []*pb.MetricValue{{
		MetricName:       t.MetricName,
		MetricValue:      roundValue(r.Value),
		MetricValueFloat: r.Value,
	}}}, nil
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

	sub := s.values.Subscribe(s.source("value", t.Probe))
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
		case <-s.values.Done():
			return nil // shutting down: a clean end, KEDA reopens in 2 s
		case u := <-sub.C():
			if u.Err != nil && t.OnError != ErrorInactive {
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
		sub := s.targets.Subscribe(s.source("target", t.TargetProbe))
		defer sub.Close()
		updates = sub.C()
	}
	last := s.target(t)
	if err := s.sendSpec(srv, t, last); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.targets.Done():
			return nil
		case <-updates: // the hub keeps the newest good target
			if target := s.target(t); target != last {
				if err := s.sendSpec(srv, t, target); err != nil {
					return err
				}
				last = target
			}
		}
	}
}

func (s *Service) sendSpec(srv pb.ExternalScaler_StreamMetricSpecServer, t *Trigger, target float64) error {
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

// parse turns a request's metadata into a Trigger and returns a context
// that carries the ScaledObject for the logs.
func (s *Service) parse(ctx context.Context, ref *pb.ScaledObjectRef) (*Trigger, context.Context, error) {
	ctx = context.WithValue(ctx, refKey{}, ref)
	t, err := s.backend.Parse(ref.GetScalerMetadata())
	if err == nil {
		err = t.Validate()
	}
	if err != nil {
		st, ok := status.FromError(err)
		if !ok {
			st = status.New(codes.InvalidArgument, err.Error())
		}
		s.logger(ctx).Info("trigger metadata rejected", slog.String("error", st.Message()))
		return nil, ctx, st.Err()
	}
	return t, ctx, nil
}

// readValue reads t's value through the cache and applies its error
// policy.
func (s *Service) readValue(ctx context.Context, t *Trigger) (Reading, error) {
	r, err := s.read(ctx, "value", t.Probe)
	if err != nil && t.OnError == ErrorInactive && ctx.Err() == nil {
		return Reading{Switch: SwitchOff}, nil
	}
	return r, err
}

// target returns t's current target: the newest reading of its target
// probe, or t.Target until there is one.
func (s *Service) target(t *Trigger) float64 {
	if t.TargetProbe != nil {
		if r, ok := s.targets.Latest(s.source("target", t.TargetProbe)); ok {
			return r.Value
		}
	}
	return t.Target
}

// read asks p through the cache: one backend call per key and TTL.
func (s *Service) read(ctx context.Context, kind string, p Probe) (Reading, error) {
	key := kind + ":" + p.Key()
	r, err := s.cache.Get(ctx, key, func(ctx context.Context) (Reading, error) {
		return s.fetch(ctx, kind, p)
	})
	if err != nil {
		return r, toStatus(ctx, kind, err, s.opts.BackendTimeout)
	}
	return r, nil
}

// fetch is one backend call: timed, checked, logged on failure, and safe
// from panics.
func (s *Service) fetch(ctx context.Context, kind string, p Probe) (r Reading, err error) {
	start := time.Now()
	defer func() {
		if v := recover(); v != nil {
			err = status.Errorf(codes.Internal, "reading %s panicked: %v", kind, v)
			s.logger(ctx).Error("backend panicked", slog.String("probe", p.Key()), slog.Any("panic", v))
		}
		outcome := "ok"
		if err != nil {
			outcome = "error"
		}
		s.metrics.BackendRequests.WithLabelValues(kind, outcome).Observe(time.Since(start).Seconds())
	}()
	r, err = p.Read(ctx)
	if err == nil {
		err = checkReading(kind, r)
	}
	if err != nil {
		s.logger(ctx).Warn("backend read failed", slog.String("kind", kind), slog.String("probe", p.Key()),
			slog.Duration("elapsed", time.Since(start)), slog.Any("error", err))
	}
	return r, err
}

// checkReading refuses values KEDA would silently turn into 0.
func checkReading(kind string, r Reading) error {
	switch {
	case math.IsNaN(r.Value) || math.IsInf(r.Value, 0):
		return status.Errorf(codes.OutOfRange, "%s is %v, want a finite number", kind, r.Value)
	case kind == "target" && !(r.Value > 0):
		return status.Errorf(codes.OutOfRange, "target is %v, want a number > 0", r.Value)
	}
	return nil
}

// toStatus turns a read error into the gRPC status KEDA gets.
func toStatus(ctx context.Context, kind string, err error, timeout time.Duration) error {
	var pe *cache.PanicError
	switch {
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	case errors.Is(err, context.DeadlineExceeded):
		return status.Errorf(codes.DeadlineExceeded, "reading %s: no answer from the backend within %v: %v", kind, timeout, err)
	case errors.As(err, &pe):
		return status.Errorf(codes.Internal, "reading %s: %v", kind, pe)
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		return err
	}
	return status.Error(codes.Unavailable, fmt.Sprintf("reading %s: %v", kind, err))
}

func specResponse(name string, target float64) *pb.GetMetricSpecResponse {
	return &pb.GetMetricSpecResponse{MetricSpecs: []*pb.MetricSpec{{
		MetricName:      name,
		TargetSize:      clampInt64(math.Ceil(target)),
		TargetSizeFloat: target,
	}}}
}

func roundValue(v float64) int64 { return clampInt64(math.Round(v)) }

func clampInt64(v float64) int64 {
	switch {
	case v >= math.MaxInt64:
		return math.MaxInt64
	case v <= math.MinInt64:
		return math.MinInt64
	}
	return int64(v)
}

type refKey struct{}

// logger returns the service logger with the ScaledObject carried by ctx.
func (s *Service) logger(ctx context.Context) *slog.Logger {
	ref, _ := ctx.Value(refKey{}).(*pb.ScaledObjectRef)
	if ref == nil {
		return s.log
	}
	return s.log.With(slog.Group("scaledObject", slog.String("namespace", ref.GetNamespace()), slog.String("name", ref.GetName())))
}
