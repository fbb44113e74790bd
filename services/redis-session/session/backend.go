package session

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

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
// closed after REDIS_CLIENT_IDLE_TIMEOUT without a read, at most
// REDIS_MAX_DATABASES at once, each pool sized so that every connection
// fits in REDIS_MAX_CONNECTIONS. It is safe for concurrent use.
type Backend struct {
	cfg      Config
	log      *slog.Logger
	opts     redis.UniversalOptions // template of every database's client
	cluster  bool
	conns    *connLimit
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

// New validates cfg and returns a Backend whose metrics are registered on
// reg (none when nil). It does no I/O beyond reading REDIS_TLS_CA_FILE:
// Redis may be down when the scaler starts, and reads report that until
// it is back. Call Close when done.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	bud, err := cfg.budget()
	if err != nil {
		return nil, err
	}
	opts := redis.UniversalOptions{
		MasterName:   cfg.MasterName,
		DB:           cfg.DB,
		PoolSize:     bud.pool,
		MinIdleConns: cfg.MinIdleConns,
		// PoolSize alone lets go-redis open more connections under load,
		// and a separate pipeline pool would add its own: the scaler must
		// never be what loads Redis.
		MaxActiveConns:   bud.pool,
		PipelinePoolSize: -1,
		// One dial per attempt: a refused connection is an outage to
		// report now (Unavailable), not to retry until BACKEND_TIMEOUT
		// turns it into DeadlineExceeded. Commands still retry, which
		// covers pooled connections gone stale after a Redis restart.
		DialerRetries: 1,
		DialTimeout:   cfg.DialTimeout,
		ReadTimeout:   cfg.ReadTimeout,
		WriteTimeout:  cfg.WriteTimeout,
		// A connection idle as long as its client would be is closed too.
		ConnMaxIdleTime: cfg.ClientIdleTimeout,
		// scalerkit bounds every read with BACKEND_TIMEOUT through ctx.
		ContextTimeoutEnabled: true,
		IsClusterMode:         cfg.Cluster,
	}
	for _, a := range cfg.Addrs {
		opts.Addrs = append(opts.Addrs, strings.TrimSpace(a))
	}
	tlsHost := ""
	if cfg.URL != "" {
		u, err := parseURL(cfg.URL)
		if err != nil {
			return nil, err
		}
		opts.Addrs = []string{u.addr}
		opts.Username, opts.Password, opts.DB = u.username, u.password, u.db
		tlsHost, _, _ = net.SplitHostPort(u.addr)
	}
	if cfg.Username != "" {
		opts.Username = cfg.Username
	}
	if cfg.Password != "" {
		opts.Password = cfg.Password
	}
	if cfg.tlsOn() {
		tc, err := tlsConfig(cfg, tlsHost)
		if err != nil {
			return nil, err
		}
		opts.TLSConfig = tc
	}
	b := &Backend{cfg: cfg, log: log, opts: opts, cluster: cfg.isCluster(), dbs: make(map[int]*database),
		warn: ratelog.New(time.Minute, 64), stop: make(chan struct{}), swept: make(chan struct{})}
	b.conns = &connLimit{max: int64(cfg.MaxConnections), timeout: cfg.DialTimeout, tls: opts.TLSConfig,
		refused: func() { b.limitReached(limitConnections) }}
	b.opts.Dialer = b.conns.dial
	if b.metrics, err = newMetrics(reg, b); err != nil {
		return nil, err
	}
	b.dbCount.sem = make(chan struct{}, 1)
	b.notifier = newNotifier(b)
	routeRedisLog(log)
	go b.sweep()
	log.Info("redis configured", slog.String("topology", cfg.topology()), slog.Any("addrs", opts.Addrs),
		slog.Int("defaultDB", opts.DB), slog.Bool("tls", opts.TLSConfig != nil), slog.Int("poolSize", bud.pool),
		slog.Int("maxConnections", cfg.MaxConnections), slog.Int("maxDatabases", cfg.MaxDatabases))
	return b, nil
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

// tlsConfig builds the client TLS settings. host is the URL's host name,
// checked in the certificate unless REDIS_TLS_SERVER_NAME says otherwise;
// when both are empty (REDIS_ADDRS) each connection checks the host it
// dials.
func tlsConfig(cfg Config, host string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host, InsecureSkipVerify: cfg.TLSInsecureSkipVerify} //nolint:gosec // opt-in, documented as tests only
	if cfg.TLSServerName != "" {
		tc.ServerName = cfg.TLSServerName
	}
	if cfg.TLSCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("REDIS_TLS_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("REDIS_TLS_CA_FILE %s: no PEM certificate found", cfg.TLSCAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
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
