package scaler

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kedascalers/kedascalers/libs/scalerkit/cache"
	"github.com/kedascalers/kedascalers/libs/scalerkit/config"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metrics"
	"github.com/kedascalers/kedascalers/libs/scalerkit/ratelog"
	"github.com/kedascalers/kedascalers/libs/scalerkit/share"
	"github.com/kedascalers/kedascalers/libs/scalerkit/stream"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// Options configures a Service. New trusts them: they come from a loaded
// and validated configuration (ConfigOptions), whose tags hold the
// defaults.
type Options struct {
	// CacheTTL is how long a reading answers further GetMetrics and
	// IsActive calls for the same probe. Zero keeps no readings but still
	// coalesces concurrent calls.
	CacheTTL time.Duration
	// PushInterval is how often push feeds read their probe.
	PushInterval time.Duration
	// PushWatched is how often a push feed whose watch is in place reads
	// its probe without a change signal (PUSH_WATCHED_INTERVAL); at or
	// below PushInterval, every PushInterval.
	PushWatched time.Duration
	// BackendTimeout bounds every backend call.
	BackendTimeout time.Duration
	// TargetLease is how long a target read from the backend keeps being
	// refreshed after the last GetMetricSpec or GetMetrics that needed it
	// (TARGET_READER_IDLE).
	TargetLease time.Duration
	// MaxQuestions bounds the distinct questions the cache holds, and the
	// distinct trigger metadata kept parsed (MAX_QUESTIONS).
	MaxQuestions int
	// MaxQuestionBytes bounds the bytes of the questions the cache keeps
	// (their keys), and apart those of the trigger metadata kept parsed
	// (MAX_QUESTION_BYTES).
	MaxQuestionBytes int
	// MaxPushStreams bounds the push streams open at once, shared fairly
	// among namespaces (MAX_PUSH_STREAMS).
	MaxPushStreams int
	// MaxPushStreamsPerNamespace bounds one namespace's push streams
	// (MAX_PUSH_STREAMS_PER_NAMESPACE).
	MaxPushStreamsPerNamespace int
	// MaxFeeds bounds the StreamIsActive feeds that watch their probe
	// (MAX_FEEDS), shared fairly among namespaces; the others poll.
	MaxFeeds int
	// MaxBackendCalls bounds the backend calls in flight, all namespaces
	// together (MAX_BACKEND_CALLS, at least 2: see callShares).
	MaxBackendCalls int
	// MaxCallsPerNamespace bounds the backend calls one namespace runs at
	// once (MAX_CALLS_PER_NAMESPACE).
	MaxCallsPerNamespace int
	// MaxWaitingPerNamespace bounds the calls of one namespace waiting for
	// a place (MAX_WAITING_PER_NAMESPACE). Zero is a valid bound: none
	// waits.
	MaxWaitingPerNamespace int
	// MaxTargetReaders bounds the background readers of targets
	// (MAX_TARGET_READERS), shared fairly among namespaces; a target
	// without one is the trigger's static target.
	MaxTargetReaders int
	// MaxMetadataBytes bounds one trigger's metadata, keys and values
	// (MAX_METADATA_BYTES).
	MaxMetadataBytes int
	// Logger receives one line per notable event.
	Logger *slog.Logger
	// Metrics receives the service's metrics.
	Metrics *metrics.Metrics
}

// ConfigOptions returns the Options the shared configuration sets; the
// caller adds the Logger and the Metrics.
func ConfigOptions(cfg config.Config) Options {
	return Options{
		CacheTTL:         cfg.CacheTTL,
		PushInterval:     cfg.PushInterval,
		PushWatched:      cfg.PushWatchedInterval,
		BackendTimeout:   cfg.BackendTimeout,
		TargetLease:      cfg.TargetReaderIdle,
		MaxQuestions:     cfg.MaxQuestions,
		MaxQuestionBytes: cfg.MaxQuestionBytes,
		MaxFeeds:         cfg.MaxFeeds,

		MaxPushStreams:             cfg.MaxPushStreams,
		MaxPushStreamsPerNamespace: cfg.MaxPushStreamsPerNamespace,
		MaxTargetReaders:           cfg.MaxTargetReaders,

		MaxBackendCalls:        cfg.MaxBackendCalls,
		MaxCallsPerNamespace:   cfg.MaxCallsPerNamespace,
		MaxWaitingPerNamespace: cfg.MaxWaitingPerNamespace,
		MaxMetadataBytes:       cfg.MaxMetadataBytes,
	}
}

// Service implements externalscaler.ExternalScalerServer for a Backend.
type Service struct {
	pb.UnimplementedExternalScalerServer

	backend  Backend
	opts     Options
	warnLog  *ratelog.Limiter
	log      *slog.Logger
	metrics  *metrics.Metrics
	cache    *cache.Group[Reading]
	triggers *triggerMemo         // parsed trigger metadata, so that a poll parses nothing
	calls    *calls               // backend calls in flight, shared among namespaces
	streams  *share.Pool          // push streams open, shared among namespaces
	values   *stream.Hub[Reading] // feeds StreamIsActive; MAX_FEEDS places for watches
	targets  *stream.Hub[Reading] // refreshes targets read from the backend; MAX_TARGET_READERS places

	limitLog *ratelog.Limiter // one "limit reached" line per limit and minute
	failLog  *ratelog.Limiter // one "backend read failed" line per ScaledObject, kind and code per failEvery

	closeOnce sync.Once
	closed    chan struct{} // closed by Close: push streams end
	hubsDone  chan struct{} // closed once both hubs' feeds have ended
}

// New returns a Service for b. opts are trusted as given: ConfigOptions
// of a loaded configuration, plus a Logger and Metrics. Call Close when
// done.
func New(b Backend, opts Options) *Service {
	m := opts.Metrics
	s := &Service{backend: b, opts: opts, log: opts.Logger, metrics: m,
		limitLog: ratelog.New(time.Minute, 8), warnLog: ratelog.New(warnEvery, warnMaxKeys),
		failLog: ratelog.New(failEvery, warnMaxKeys), closed: make(chan struct{}), hubsDone: make(chan struct{})}
	m.HeldLimit.WithLabelValues("questions").Set(float64(opts.MaxQuestions))
	m.HeldLimit.WithLabelValues("triggers").Set(float64(opts.MaxQuestions))
	s.calls = newCalls(opts, m)
	s.streams = share.New(opts.MaxPushStreams, m.Shared("push_streams", opts.MaxPushStreams))
	heldTriggers := m.Held.WithLabelValues("triggers")
	s.triggers = newTriggerMemo(opts.MaxQuestions, opts.MaxQuestionBytes, m.Evictions.WithLabelValues("triggers").Inc,
		func(n int) { heldTriggers.Set(float64(n)) })
	var outcomes [3]prometheus.Counter // by cache.Outcome: resolved once, not per call
	for _, o := range []cache.Outcome{cache.Hit, cache.Shared, cache.Miss} {
		outcomes[o] = m.CacheRequests.WithLabelValues(o.String())
	}
	heldQuestions := m.Held.WithLabelValues("questions")
	s.cache = cache.New[Reading](cache.Options{
		TTL:        opts.CacheTTL,
		Timeout:    opts.BackendTimeout,
		MaxEntries: opts.MaxQuestions,
		MaxBytes:   opts.MaxQuestionBytes,
		Observe:    func(o cache.Outcome) { outcomes[o].Inc() },
		Evicted:    m.Evictions.WithLabelValues("questions").Inc,
		Held:       func(n int) { heldQuestions.Set(float64(n)) },
		Namespace:  func(ctx context.Context) string { return refOf(ctx).GetNamespace() },
		Shares:     m.Shared("questions_in_flight", opts.MaxQuestions),
	})
	polled := m.Held.WithLabelValues("feeds_polled")
	s.values = stream.NewHub[Reading](stream.Options{
		Interval: opts.PushInterval, Watched: opts.PushWatched, Logger: opts.Logger,
		Watches: share.New(opts.MaxFeeds, m.Shared("feeds", opts.MaxFeeds)),
		Polled:  func(n int) { polled.Set(float64(n)) },
		NoWatch: s.noWatch,
	})
	s.targets = stream.NewHub[Reading](stream.Options{
		Interval: opts.PushInterval, Watched: opts.PushWatched, Logger: opts.Logger, Lease: opts.TargetLease,
		Readers: share.New(opts.MaxTargetReaders, m.Shared("target_readers", opts.MaxTargetReaders)),
		Evicted: m.Evictions.WithLabelValues("target_readers").Inc,
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
