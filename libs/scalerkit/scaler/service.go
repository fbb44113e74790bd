package scaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/cache"
	"github.com/kedascalers/kedascalers/libs/scalerkit/config"
	"github.com/kedascalers/kedascalers/libs/scalerkit/fault"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metrics"
	"github.com/kedascalers/kedascalers/libs/scalerkit/ratelog"
	"github.com/kedascalers/kedascalers/libs/scalerkit/stream"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// Options configures a Service. A zero duration or limit takes the
// default of the shared configuration (config.Defaults), CacheTTL
// excepted: zero keeps no readings.
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
	// refreshed after the last GetMetricSpec or GetMetrics that needed it
	// (TARGET_READER_IDLE).
	TargetLease time.Duration
	// MaxQuestions bounds the distinct questions the cache holds
	// (MAX_QUESTIONS).
	MaxQuestions int
	// MaxFeeds bounds the StreamIsActive feeds (MAX_FEEDS).
	MaxFeeds int
	// MaxCallsPerNamespace bounds the backend calls one namespace runs at
	// once (MAX_CALLS_PER_NAMESPACE).
	MaxCallsPerNamespace int
	// MaxWaitingPerNamespace bounds the calls of one namespace waiting for
	// a place (MAX_WAITING_PER_NAMESPACE). Zero is a valid bound: none
	// waits.
	MaxWaitingPerNamespace int
	// MaxTargetReaders bounds the background readers of targets
	// (MAX_TARGET_READERS).
	MaxTargetReaders int
	// MaxMetadataBytes bounds one trigger's metadata, keys and values
	// (MAX_METADATA_BYTES).
	MaxMetadataBytes int
	// Logger receives one line per notable event. Defaults to slog.Default.
	Logger *slog.Logger
	// Metrics receives the service's metrics. Defaults to a fresh set.
	Metrics *metrics.Metrics
}

// ConfigOptions returns the Options the shared configuration sets; the
// caller adds the Logger and the Metrics.
func ConfigOptions(cfg config.Config) Options {
	return Options{
		CacheTTL:         cfg.CacheTTL,
		PushInterval:     cfg.PushInterval,
		BackendTimeout:   cfg.BackendTimeout,
		TargetLease:      cfg.TargetReaderIdle,
		MaxQuestions:     cfg.MaxQuestions,
		MaxFeeds:         cfg.MaxFeeds,
		MaxTargetReaders: cfg.MaxTargetReaders,

		MaxCallsPerNamespace:   cfg.MaxCallsPerNamespace,
		MaxWaitingPerNamespace: cfg.MaxWaitingPerNamespace,
		MaxMetadataBytes:       cfg.MaxMetadataBytes,
	}
}

// Service implements externalscaler.ExternalScalerServer for a Backend.
type Service struct {
	pb.UnimplementedExternalScalerServer

	backend Backend
	opts    Options
	warnLog *ratelog.Limiter
	log     *slog.Logger
	metrics *metrics.Metrics
	cache   *cache.Group[Reading]
	tenants *tenants             // backend calls per namespace
	values  *stream.Hub[Reading] // feeds StreamIsActive
	targets *stream.Hub[Reading] // refreshes targets read from the backend

	limitLog *ratelog.Limiter // one "limit reached" line per limit and minute
	failLog  *ratelog.Limiter // one "backend read failed" line per ScaledObject, kind and code per failEvery

	closeOnce sync.Once
	closed    chan struct{} // closed by Close: push streams end
	hubsDone  chan struct{} // closed once both hubs' feeds have ended
}

// Names of the limits in status messages and metrics: the variables that
// set them.
const (
	limitQuestions     = "MAX_QUESTIONS"
	limitFeeds         = "MAX_FEEDS"
	limitTargetReaders = "MAX_TARGET_READERS"
	limitMetadata      = "MAX_METADATA_BYTES"
	limitNamespace     = "MAX_CALLS_PER_NAMESPACE"
)

// New returns a Service for b. Call Close when done.
func New(b Backend, opts Options) *Service {
	defaults := ConfigOptions(config.Defaults())
	if opts.PushInterval <= 0 {
		opts.PushInterval = defaults.PushInterval
	}
	if opts.BackendTimeout <= 0 {
		opts.BackendTimeout = defaults.BackendTimeout
	}
	if opts.TargetLease <= 0 {
		opts.TargetLease = defaults.TargetLease
	}
	if opts.MaxQuestions <= 0 {
		opts.MaxQuestions = defaults.MaxQuestions
	}
	if opts.MaxFeeds <= 0 {
		opts.MaxFeeds = defaults.MaxFeeds
	}
	if opts.MaxCallsPerNamespace <= 0 {
		opts.MaxCallsPerNamespace = defaults.MaxCallsPerNamespace
	}
	if opts.MaxWaitingPerNamespace < 0 {
		opts.MaxWaitingPerNamespace = defaults.MaxWaitingPerNamespace
	}
	if opts.MaxTargetReaders <= 0 {
		opts.MaxTargetReaders = defaults.MaxTargetReaders
	}
	if opts.MaxMetadataBytes <= 0 {
		opts.MaxMetadataBytes = defaults.MaxMetadataBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	s := &Service{backend: b, opts: opts, log: opts.Logger, metrics: opts.Metrics,
		limitLog: ratelog.New(time.Minute, 8), warnLog: ratelog.New(warnEvery, warnMaxKeys),
		failLog: ratelog.New(failEvery, warnMaxKeys), closed: make(chan struct{}), hubsDone: make(chan struct{})}
	m := s.metrics
	m.HeldLimit.WithLabelValues("questions").Set(float64(opts.MaxQuestions))
	m.HeldLimit.WithLabelValues("feeds").Set(float64(opts.MaxFeeds))
	m.HeldLimit.WithLabelValues("target_readers").Set(float64(opts.MaxTargetReaders))
	s.tenants = newTenants(opts.MaxCallsPerNamespace, opts.MaxWaitingPerNamespace,
		func(n int) { m.Held.WithLabelValues("namespace_calls").Set(float64(n)) })
	s.cache = cache.New[Reading](cache.Options{
		TTL:        opts.CacheTTL,
		Timeout:    opts.BackendTimeout,
		MaxEntries: opts.MaxQuestions,
		Observe:    func(o cache.Outcome) { m.CacheRequests.WithLabelValues(o.String()).Inc() },
		Evicted:    m.Evictions.WithLabelValues("questions").Inc,
		Held:       func(n int) { m.Held.WithLabelValues("questions").Set(float64(n)) },
	})
	s.values = stream.NewHub[Reading](stream.Options{
		Interval: opts.PushInterval, Logger: opts.Logger, MaxFeeds: opts.MaxFeeds,
		Evicted: m.Evictions.WithLabelValues("feeds").Inc,
		Held:    func(n int) { m.Held.WithLabelValues("feeds").Set(float64(n)) },
	})
	s.targets = stream.NewHub[Reading](stream.Options{
		Interval: opts.PushInterval, Logger: opts.Logger, MaxFeeds: opts.MaxTargetReaders, Lease: opts.TargetLease,
		Evicted: m.Evictions.WithLabelValues("target_readers").Inc,
		Held:    func(n int) { m.Held.WithLabelValues("target_readers").Set(float64(n)) },
	})
	return s
}

// Close ends every push stream cleanly (KEDA reopens them) and stops the
// background feeds. It returns at once: a backend that ignores
// cancellation cannot hold it; Shutdown waits, within a bound.
func (s *Service) Close() {
	s.closeOnce.Do(func() {
		close(s.closed)
		go func() {
			var wg sync.WaitGroup
			wg.Go(s.values.Close)
			wg.Go(s.targets.Close)
			wg.Wait()
			close(s.hubsDone)
		}()
	})
}

// Shutdown is the hard stop, once the server no longer serves: it closes
// the Service if needed, cancels every backend call still running (the
// cache's shared calls, feed reads and watches) and waits for them until
// ctx ends. It returns an error when some ignored the cancellation; they
// are left behind, so that the process can exit.
func (s *Service) Shutdown(ctx context.Context) error {
	s.Close()
	if err := s.cache.Close(ctx); err != nil {
		return fmt.Errorf("backend calls: %w", err)
	}
	select {
	case <-s.hubsDone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("push feeds still reading or watching after their cancellation: %w", ctx.Err())
	}
}

// Done is closed once Close has been called.
func (s *Service) Done() <-chan struct{} { return s.closed }

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
		s.targets.Touch(s.source(ctx, "target", t.TargetProbe)) // still needed: keep reading it
	}
	r, err := s.readValue(ctx, t)
	if err != nil {
		return nil, err
	}
	if r.Note != "" {
		_ = grpc.SetHeader(ctx, grpcmd.Pairs(WarningHeader, r.Note)) // fails only outside a gRPC call
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

	sub, err := s.values.Subscribe(s.source(ctx, "value", t.Probe))
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
		sub, err := s.targets.Subscribe(s.source(ctx, "target", t.TargetProbe))
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
	if err := s.checkMetadataSize(ctx, ref.GetScalerMetadata()); err != nil {
		return nil, ctx, err
	}
	p := metadata.NewParser(ref.GetScalerMetadata())
	t, err := s.backend.Parse(p)
	if err == nil {
		err = t.Validate()
	}
	warnings, keyErr := p.CheckKeys()
	if keyErr != nil {
		// A misspelt key explains a failure better than what it caused
		// (a required key missing), and must fail what it did not (a
		// default silently used in its place).
		err = keyErr
	}
	if err != nil {
		st, ok := status.FromError(err)
		if !ok {
			st = status.New(codes.InvalidArgument, err.Error())
		}
		// The tenant's mistake, repeated at every poll: once per failEvery.
		key := metadata.Clip(ref.GetNamespace()) + "/" + metadata.Clip(ref.GetName()) + "|metadata|" + st.Code().String()
		s.failLog.Log(ctx, s.logger(ctx), slog.LevelWarn, key, "trigger metadata rejected", slog.String("error", st.Message()))
		return nil, ctx, st.Err()
	}
	s.warn(ctx, ref, warnings)
	return t, ctx, nil
}

// WarningHeader is the gRPC header metadata key that carries a trigger's
// warnings (an unknown metadata key, say), one value per warning. KEDA
// ignores it; scalerctl prints it.
const WarningHeader = "kedascalers-warning"

// How often the warnings of one ScaledObject are logged, how often one
// kind of failed read of one ScaledObject is, and how many ScaledObjects
// the rate limits remember.
const (
	warnEvery   = time.Minute
	failEvery   = 10 * time.Second
	warnMaxKeys = 4096
)

// warn sends a trigger's warnings to the client as header metadata and to
// the log, at most once per warnEvery for one ScaledObject.
func (s *Service) warn(ctx context.Context, ref *pb.ScaledObjectRef, warnings []string) {
	if len(warnings) == 0 {
		return
	}
	// Fails only outside a gRPC call (a test calling the Service itself),
	// where there is no header to set.
	_ = grpc.SetHeader(ctx, grpcmd.MD{WarningHeader: warnings})
	s.warnLog.Log(ctx, s.logger(ctx), slog.LevelInfo, metadata.Clip(ref.GetNamespace())+"/"+metadata.Clip(ref.GetName()),
		"trigger metadata has warnings", slog.Any("warnings", warnings))
}

// readValue reads t's value through the cache and applies its error
// policy.
func (s *Service) readValue(ctx context.Context, t *Trigger) (Reading, error) {
	r, err := s.read(ctx, "value", t.Probe)
	if err != nil && t.OnError == ErrorInactive && ctx.Err() == nil && backendFailure(err) {
		return Reading{Switch: SwitchOff}, nil
	}
	return r, err
}

// target returns t's current target, from memory: the newest reading of
// its target probe, or t.Target until there is one. When no reader can be
// started for the probe (MAX_TARGET_READERS readers, all streamed), it is
// ResourceExhausted: a made-up target would scale the workload wrongly.
func (s *Service) target(ctx context.Context, t *Trigger) (float64, error) {
	if t.TargetProbe == nil {
		return t.Target, nil
	}
	r, ok, err := s.targets.Latest(s.source(ctx, "target", t.TargetProbe))
	switch {
	case err != nil:
		return 0, s.refuse(ctx, limitTargetReaders)
	case ok:
		return r.Value, nil
	}
	return t.Target, nil
}

// read asks p through the cache: one backend call per key and TTL.
func (s *Service) read(ctx context.Context, kind string, p Probe) (Reading, error) {
	key := kind + ":" + p.Key()
	r, err := s.cache.Get(ctx, key, func(ctx context.Context) (Reading, error) {
		return s.fetch(ctx, kind, p)
	})
	switch {
	case err == nil:
		return r, nil
	case errors.Is(err, cache.ErrFull):
		return r, s.refuse(ctx, limitQuestions)
	case ctx.Err() != nil:
		// The caller went away; the shared call goes on for the others.
		return r, status.FromContextError(ctx.Err()).Err()
	case errors.Is(err, cache.ErrClosed):
		return r, status.Errorf(codes.Unavailable, "reading %s: the scaler is stopping", kind)
	}
	return r, err // fetch's status
}

// fetch is one backend call: timed, checked, and the one place where a
// backend panic is recovered, a read error becomes the gRPC status KEDA
// gets, and the failure is logged and counted. ctx is the cache's: bounded
// by BACKEND_TIMEOUT, and carrying the ScaledObject of the first caller.
func (s *Service) fetch(ctx context.Context, kind string, p Probe) (r Reading, err error) {
	start := time.Now()
	defer func() {
		if v := recover(); v != nil {
			err = status.Errorf(codes.Internal, "reading %s: the backend panicked: %v", kind, v)
			s.logger(ctx).Error("backend panicked", slog.String("kind", kind), slog.String("probe", metadata.Clip(p.Key())),
				slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
		} else if err != nil {
			err = s.statusOf(ctx, kind, err)
			if !errors.Is(ctx.Err(), context.Canceled) { // cancelled: the shutdown's hard stop, no news
				// Once per failEvery for one ScaledObject, kind and code: a
				// trigger polled in a loop, or an outage, must not log a
				// line per call.
				ref := refOf(ctx)
				key := metadata.Clip(ref.GetNamespace()) + "/" + metadata.Clip(ref.GetName()) + "|" + kind + "|" + status.Code(err).String()
				s.failLog.Log(ctx, s.logger(ctx), fault.Level(err), key, "backend read failed",
					slog.String("kind", kind), slog.String("probe", metadata.Clip(p.Key())),
					slog.Duration("elapsed", time.Since(start)), slog.Any("error", err))
			}
		}
		s.metrics.BackendRequests.WithLabelValues(kind, metrics.Outcome(err)).Observe(time.Since(start).Seconds())
	}()
	// Value and target reads have places of their own, as they have pools
	// of their own in the SQL backends: a tenant's slow targetQuery does
	// not hold up its own value reads either.
	release, err := s.tenants.acquire(ctx, kind+"|"+refOf(ctx).GetNamespace())
	if err != nil {
		if errors.Is(err, errTenantFull) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return r, s.refuse(ctx, limitNamespace)
		}
		return r, err
	}
	defer release()
	r, err = p.Read(ctx)
	if err == nil {
		err = checkReading(kind, r)
	}
	return r, err
}

// checkMetadataSize refuses metadata larger than MaxMetadataBytes, before
// the backend spends anything on it.
func (s *Service) checkMetadataSize(ctx context.Context, md map[string]string) error {
	total, largest, largestSize := 0, "", -1
	for k, v := range md {
		total += len(k) + len(v)
		if len(k)+len(v) > largestSize {
			largest, largestSize = k, len(k)+len(v)
		}
	}
	if total <= s.opts.MaxMetadataBytes {
		return nil
	}
	s.metrics.LimitRefusals.WithLabelValues(limitMetadata).Inc()
	err := status.Errorf(codes.InvalidArgument,
		"trigger metadata is %d bytes (keys and values), over the limit of %d (%s); the largest entry is %q (%d bytes)",
		total, s.opts.MaxMetadataBytes, limitMetadata, metadata.Clip(largest), largestSize)
	s.limitLog.Log(ctx, s.logger(ctx), slog.LevelWarn, limitMetadata, "trigger metadata rejected",
		slog.String("limit", limitMetadata), slog.String("error", status.Convert(err).Message()))
	return err
}

// refuse is the ResourceExhausted status of a limit reached, naming the
// limit and its variable. It counts the refusal and logs it, at most once a
// minute per limit: a hostile trigger repeats it at will.
func (s *Service) refuse(ctx context.Context, limit string) error {
	var msg string
	switch limit {
	case limitQuestions:
		msg = fmt.Sprintf("too many distinct questions held (%d, %s): every one has a backend call in flight; try again shortly",
			s.opts.MaxQuestions, limit)
	case limitFeeds:
		msg = fmt.Sprintf("too many push feeds (%d, %s): every one serves an open StreamIsActive stream", s.opts.MaxFeeds, limit)
	case limitNamespace:
		msg = fmt.Sprintf("too many backend calls of namespace %q (%d running, %s; %d waiting, MAX_WAITING_PER_NAMESPACE): another tenant's calls go on; try again shortly",
			metadata.Clip(refOf(ctx).GetNamespace()), s.opts.MaxCallsPerNamespace, limit, s.opts.MaxWaitingPerNamespace)
	case limitTargetReaders:
		msg = fmt.Sprintf("too many targets read from the backend (%d, %s): every reader serves an open StreamMetricSpec stream",
			s.opts.MaxTargetReaders, limit)
	}
	s.metrics.LimitRefusals.WithLabelValues(limit).Inc()
	s.limitLog.Log(ctx, s.logger(ctx), slog.LevelWarn, limit, "limit reached", slog.String("limit", limit), slog.String("error", msg))
	return status.Error(codes.ResourceExhausted, msg)
}

// backendFailure reports whether err is a failure of the backend, which a
// trigger's error policy may turn into "inactive", rather than a limit of
// ours: a refusal is never a silent 0.
func backendFailure(err error) bool { return status.Code(err) != codes.ResourceExhausted }

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

// statusOf turns the error of a backend call into a gRPC status: a status
// the backend chose is kept, running out of BACKEND_TIMEOUT is
// DeadlineExceeded, anything else is taken for an outage (Unavailable).
func (s *Service) statusOf(ctx context.Context, kind string, err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Errorf(codes.DeadlineExceeded, "reading %s: no answer from the backend within %v (BACKEND_TIMEOUT): %v",
			kind, s.opts.BackendTimeout, err)
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return status.Errorf(codes.Canceled, "reading %s: cancelled: the scaler is stopping", kind)
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
	ref := refOf(ctx)
	if ref == nil {
		return s.log
	}
	// Clipped: any client may send a name, not only KEDA.
	return s.log.With(slog.Group("scaledObject",
		slog.String("namespace", metadata.Clip(ref.GetNamespace())), slog.String("name", metadata.Clip(ref.GetName()))))
}

// refOf returns the ScaledObject ctx carries (see parse), or nil.
func refOf(ctx context.Context) *pb.ScaledObjectRef {
	ref, _ := ctx.Value(refKey{}).(*pb.ScaledObjectRef)
	return ref
}
