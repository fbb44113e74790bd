package redissession

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kedascalers/kedascalers/libs/scalerkit"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/ratelog"
	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
)

var (
	_ scaler.Backend = (*Backend)(nil)
	_ scaler.Probe   = (*probe)(nil)
	_ scaler.Probe   = watchingProbe{}
	_ scaler.Probe   = (*targetProbe)(nil)
	_ scaler.Probe   = watchingTargetProbe{}
)

// Backend reads session counts from Redis for scalerkit. It keeps one
// go-redis client per database that triggers use: created on first use,
// closed after REDIS_CLIENT_IDLE_TIMEOUT without a read (or sooner when
// another database needs its connections), at most REDIS_MAX_DATABASES
// at once. Every read takes its turn for one of the REDIS_MAX_CONNECTIONS
// (gate), fairly among namespaces. It is safe for concurrent use.
type Backend struct {
	cfg      Config
	log      *slog.Logger
	opts     redis.UniversalOptions // template of every database's client
	cluster  bool
	conns    *connLimit
	gate     *gate
	metrics  *metrics
	notifier *notifier
	warn     *ratelog.Limiter // repeated warnings of limits reached

	// dbCount is the number of databases of the server, read once.
	dbCount dbCount

	mu     sync.Mutex
	dbs    map[int]*database
	closed bool
	stop   chan struct{} // closed by Close: ends the idle sweeper
	swept  chan struct{} // closed when the idle sweeper has ended
}

// database is the client of one database index.
type database struct {
	n       int
	client  redis.UniversalClient
	cluster bool
	refs    int       // reads using the client now
	used    time.Time // end of the last read
}

// New returns a Backend over s, whose metrics are registered on
// env.Registerer (none when nil). It trusts s (see Config.Resolve) and
// does no I/O: Redis may be down when the scaler starts, and reads report
// that until it is back (Ping checks once). Call Close when done.
func New(_ context.Context, s Settings, env scalerkit.Env) (*Backend, error) {
	log := env.Log
	cfg := s.Config
	b := &Backend{cfg: cfg, log: log, opts: s.opts, cluster: cfg.isCluster(), dbs: make(map[int]*database),
		warn: ratelog.New(time.Minute, 64), stop: make(chan struct{}), swept: make(chan struct{})}
	b.conns = &connLimit{max: int64(cfg.MaxConnections), timeout: cfg.ConnectTimeout, tls: s.opts.TLSConfig,
		refused: func() { b.limitReached(limitConnections) }, evict: b.evictForConn}
	b.opts.Dialer = b.conns.dial
	var err error
	if b.metrics, err = newMetrics(env.Registerer, b, s.budget.slots); err != nil {
		return nil, err
	}
	b.gate = newGate(s.budget.slots, b.metrics.connections)
	b.dbCount.sem = make(chan struct{}, 1)
	b.notifier = newNotifier(b)
	routeRedisLog(log)
	go b.sweep()
	log.Info("redis configured", slog.String("topology", cfg.topology()), slog.Any("addrs", b.opts.Addrs),
		slog.Int("defaultDB", b.opts.DB), slog.Bool("tls", b.opts.TLSConfig != nil), slog.Int("poolSize", s.budget.pool),
		slog.Int("maxConnections", cfg.MaxConnections), slog.Int("sharedConnections", s.budget.slots),
		slog.Int("maxDatabases", cfg.MaxDatabases))
	if s.budget.pool < cfg.PoolSize {
		log.Info("REDIS_POOL_SIZE cut to fit REDIS_MAX_CONNECTIONS",
			slog.Int("REDIS_POOL_SIZE", cfg.PoolSize), slog.Int("poolSize", s.budget.pool),
			slog.String("reason", fmt.Sprintf("a pool of %d connections and %d reserved (%s) must fit in REDIS_MAX_CONNECTIONS=%d",
				s.budget.pool, s.budget.reserved, cfg.topology(), cfg.MaxConnections)))
	}
	return b, nil
}

// Ping implements scalerkit.Pinger: it reaches the default database once.
func (b *Backend) Ping(ctx context.Context) error {
	d, release, err := b.acquire(ctx, b.opts.DB)
	if err != nil {
		return fmt.Errorf("%s: %w", b.cfg.addressVariable(), err)
	}
	defer release()
	if err := d.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%s (%s): %w", b.cfg.addressVariable(), strings.Join(b.opts.Addrs, ","), err)
	}
	return nil
}

// limitReached counts a refusal because of limit.
func (b *Backend) limitReached(limit string) {
	b.metrics.limitReached.WithLabelValues(limit).Inc()
}

// redisLogs rate-limits go-redis's own lines: one per kind a minute.
var redisLogs = ratelog.New(time.Minute, 64)

// routeRedisLog sends go-redis's own log lines (dial failures, pool
// trouble) to log at debug level, each kind at most once a minute: the
// failure they describe reaches the caller as an error, which scalerkit
// logs once. go-redis has one logger per process.
func routeRedisLog(log *slog.Logger) {
	redis.SetLogger(redisLogger{log.With(slog.String("component", "go-redis"))})
}

// redisLogger adapts slog to go-redis's logging interface.
type redisLogger struct{ log *slog.Logger }

// Printf implements go-redis's logging interface. The format is the key
// of the rate limit: it names the kind of event, not its details.
func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	redisLogs.Log(ctx, l.log, slog.LevelDebug, format, fmt.Sprintf(format, v...))
}

// Parse implements scaler.Backend: it turns trigger metadata into a
// Trigger without any I/O. Bad metadata is a *metadata.Error naming the
// key (InvalidArgument).
func (b *Backend) Parse(md *metadata.Parser) (*scaler.Trigger, error) {
	s, err := parseSpec(md, b.opts.DB, b.cluster)
	if err != nil {
		return nil, err
	}
	p := &probe{b: b, s: s, key: s.probeKey()}
	t := &scaler.Trigger{
		MetricName: s.metricName,
		Target:     s.sessionSize,
		Activation: s.activation,
		Probe:      p,
		OnError:    s.onError,
	}
	watch := !b.cluster && b.cfg.MaxWatchedKeys > 0
	if watch {
		t.Probe = watchingProbe{p}
	}
	if s.sessionSizeKey != "" {
		tp := &targetProbe{b: b, db: s.db, key: s.sessionSizeKey, fallback: s.sessionSize}
		t.TargetProbe = tp
		if watch {
			t.TargetProbe = watchingTargetProbe{tp}
		}
	}
	return t, nil
}

// Close ends keyspace watches and closes every client. Reads after Close
// fail.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	dbs := b.dbs
	b.dbs = map[int]*database{}
	b.mu.Unlock()
	close(b.stop)
	<-b.swept
	b.notifier.close()
	var errs []error
	for n, d := range dbs {
		if err := d.client.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the client of db %d: %w", n, err))
		}
	}
	b.metrics.clients.Set(0)
	return errors.Join(errs...)
}
