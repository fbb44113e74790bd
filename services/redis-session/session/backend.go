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

	"github.com/redis/go-redis/v9"

	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
)

// Backend reads session counts from Redis for scalerkit. It keeps one
// go-redis client per database that triggers use, created on first use,
// each within the configured pool limits. It is safe for concurrent use.
type Backend struct {
	cfg     Config
	log     *slog.Logger
	opts    redis.UniversalOptions // template of every database's client
	cluster bool

	mu     sync.Mutex
	dbs    map[int]*database
	closed bool
}

// database is the client of one database index and its shared
// keyspace-notification subscription.
type database struct {
	client   redis.UniversalClient
	cluster  bool
	notifier *notifier
}

// New validates cfg and returns a Backend. It does no I/O beyond reading
// REDIS_TLS_CA_FILE: Redis may be down when the scaler starts, and reads
// report that until it is back. Call Close when done.
func New(cfg Config, log *slog.Logger) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	opts := redis.UniversalOptions{
		MasterName:   cfg.MasterName,
		DB:           cfg.DB,
		PoolSize:     cfg.PoolSize,
		MinIdleConns: cfg.MinIdleConns,
		// PoolSize alone lets go-redis open more connections under load,
		// and a separate pipeline pool would add its own: the scaler must
		// never be what loads Redis.
		MaxActiveConns:   cfg.PoolSize,
		PipelinePoolSize: -1,
		// One dial per attempt: a refused connection is an outage to
		// report now (Unavailable), not to retry until BACKEND_TIMEOUT
		// turns it into DeadlineExceeded. Commands still retry, which
		// covers pooled connections gone stale after a Redis restart.
		DialerRetries: 1,
		DialTimeout:   cfg.DialTimeout,
		ReadTimeout:   cfg.ReadTimeout,
		WriteTimeout:  cfg.WriteTimeout,
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
	redis.SetLogger(redisLogger{log.With(slog.String("component", "go-redis"))})
	b := &Backend{cfg: cfg, log: log, opts: opts, cluster: cfg.isCluster(), dbs: make(map[int]*database)}
	log.Info("redis configured", slog.String("topology", b.topology()), slog.Any("addrs", opts.Addrs),
		slog.Int("defaultDB", opts.DB), slog.Bool("tls", opts.TLSConfig != nil), slog.Int("poolSize", cfg.PoolSize))
	return b, nil
}

// redisLogger sends go-redis's own log lines (reconnects, pool trouble)
// to the service's structured log. go-redis has one logger per process.
type redisLogger struct{ log *slog.Logger }

// Printf implements go-redis's logging interface.
func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(format, v...))
}

// topology names the kind of deployment the configuration describes.
func (b *Backend) topology() string {
	switch {
	case b.opts.MasterName != "":
		return "sentinel"
	case b.cluster:
		return "cluster"
	}
	return "standalone"
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
func (b *Backend) Parse(md map[string]string) (*scaler.Trigger, error) {
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
	if !b.cluster {
		t.Probe = watchingProbe{p}
	}
	if s.sessionSizeKey != "" {
		tp := &targetProbe{b: b, db: s.db, key: s.sessionSizeKey, fallback: s.sessionSize}
		t.TargetProbe = tp
		if !b.cluster {
			t.TargetProbe = watchingTargetProbe{tp}
		}
	}
	return t, nil
}

// db returns the client of database index n, creating it on first use.
func (b *Backend) db(n int) (*database, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	if d, ok := b.dbs[n]; ok {
		return d, nil
	}
	opts := b.opts
	opts.DB = n
	c := redis.NewUniversalClient(&opts)
	d := &database{client: c, cluster: b.cluster, notifier: newNotifier(c, n)}
	b.dbs[n] = d
	b.log.Debug("redis client created", slog.Int("db", n))
	return d, nil
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
	b.dbs = nil
	b.mu.Unlock()
	var errs []error
	for n, d := range dbs {
		d.notifier.close()
		if err := d.client.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the client of db %d: %w", n, err))
		}
	}
	return errors.Join(errs...)
}
