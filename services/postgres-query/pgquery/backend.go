package pgquery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kedascalers/kedascalers/libs/scalerkit"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
)

var (
	_ scaler.Backend = (*Backend)(nil)
	_ scaler.Probe   = (*notifyProbe)(nil)
)

// Backend is the scaler's backend: sqlmetric's SQL triggers over two
// PostgreSQL pools per connection (value reads, and background target
// reads apart), plus the notifyChannel key. It is safe for concurrent use.
type Backend struct {
	sql       *sqlmetric.Backend
	pools     map[string]*pgxpool.Pool // value reads
	targets   map[string]*pgxpool.Pool // background target reads
	listeners map[string]*Listener
}

// New returns a Backend with two pools and a Listener per connection of
// cfg, validating cfg unless config.Load did. It refuses a QUERY_TIMEOUT
// that is not below env's BACKEND_TIMEOUT, and a connection whose role is
// a superuser or bypasses row security (unless POSTGRES_ALLOW_SUPERUSER):
// it connects once per connection to check, but a database that is down
// does not stop the start (reads report it until it is back, and the
// check runs on every new connection). Call Close when done.
func New(ctx context.Context, cfg Config, env scalerkit.Env) (*Backend, error) {
	if cfg.pools == nil {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
	}
	if err := cfg.CheckBackendTimeout(env.Config.BackendTimeout); err != nil {
		return nil, err
	}
	log := env.Log
	if log == nil {
		log = slog.Default()
	}
	metrics, err := sqlmetric.NewMetrics(env.Registerer)
	if err != nil {
		return nil, err
	}
	b := &Backend{pools: make(map[string]*pgxpool.Pool), targets: make(map[string]*pgxpool.Pool), listeners: make(map[string]*Listener)}
	queriers := make(map[string]sqlmetric.Querier, len(cfg.pools))
	targets := make(map[string]sqlmetric.Querier, len(cfg.pools))
	for _, name := range slices.Sorted(maps.Keys(cfg.pools)) {
		rp := cfg.pools[name]
		connLog := log.With(slog.String("connection", name))
		pc := rp.config.Copy()
		pc.AfterConnect = checkRole(cfg.AllowSuperuser, connLog)
		tc := pc.Copy()
		tc.MaxConns, tc.MinConns = cfg.MaxTargetConns, 0
		tc.ConnConfig.RuntimeParams["application_name"] += TargetSuffix
		pool, err := pgxpool.NewWithConfig(context.Background(), pc)
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("%s: %w", rp.urlVar, err)
		}
		b.pools[name] = pool
		target, err := pgxpool.NewWithConfig(context.Background(), tc)
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("%s: %w", rp.urlVar, err)
		}
		b.targets[name] = target
		queriers[name] = NewQuerier(pool, cfg.QueryTimeout)
		targets[name] = NewQuerier(target, cfg.QueryTimeout)
		metrics.AddPool(name, sqlmetric.PoolValue, poolStats(pool))
		metrics.AddPool(name, sqlmetric.PoolTarget, poolStats(target))
		b.listeners[name] = NewListener(listenConfig(pc), ListenerOptions{MaxChannels: cfg.MaxListenChannels, Logger: connLog})
		cc := pc.ConnConfig
		connLog.Info("postgres configured", slog.String("host", cc.Host), slog.Int("port", int(cc.Port)),
			slog.String("database", cc.Database), slog.String("user", cc.User), slog.Bool("tls", cc.TLSConfig != nil),
			slog.Int("maxConns", int(pc.MaxConns)), slog.Int("maxTargetConns", int(tc.MaxConns)))
	}
	b.sql, err = sqlmetric.NewBackend(cfg.Config, sqlmetric.Options{
		Conns: queriers, Targets: targets, Convert: Convert, Margin: clientMargin, Metrics: metrics,
	})
	if err != nil {
		b.Close()
		return nil, err
	}
	if err := b.checkRoles(ctx, cfg, log); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// checkRoles connects once to each connection's database, at once, to
// refuse a superuser role at start rather than at the first query. A
// database that cannot be reached is logged and left to the reads.
func (b *Backend) checkRoles(ctx context.Context, cfg Config, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout+time.Second)
	defer cancel()
	names := slices.Sorted(maps.Keys(b.pools))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := b.pools[name].Acquire(ctx)
			if err == nil {
				conn.Release()
				return
			}
			var refused *roleError
			if errors.As(err, &refused) {
				errs[i] = fmt.Errorf("%s: %w", cfg.pools[name].urlVar, refused)
				return
			}
			log.Warn("postgres not reachable at start; reads report it until it is back",
				slog.String("connection", name), slog.Any("error", mapError(err, cfg.QueryTimeout)))
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// poolStats reports a pool's connections for sqlmetric.Metrics.
func poolStats(p *pgxpool.Pool) func() (inUse, idle int) {
	return func() (int, int) {
		st := p.Stat()
		return int(st.AcquiredConns()), int(st.IdleConns())
	}
}

// Parse implements scaler.Backend: sqlmetric's keys (see
// sqlmetric.Backend.Parse) and notifyChannel, a channel whose NOTIFY
// makes push streams re-check the query at once.
func (b *Backend) Parse(p *metadata.Parser) (*scaler.Trigger, error) {
	channel := p.String("notifyChannel", "")
	if channel != "" && !channelRE.MatchString(channel) {
		p.Fail(&metadata.Error{Key: "notifyChannel", Value: channel,
			Want: "a lowercase PostgreSQL identifier: a-z or '_', then a-z, 0-9 or '_', at most 63 characters"})
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	t, err := b.sql.Parse(p)
	if err != nil || channel == "" {
		return t, err
	}
	q, ok := t.Probe.(*sqlmetric.Query)
	if !ok {
		return nil, fmt.Errorf("postgres-query: probe of type %T, want *sqlmetric.Query", t.Probe)
	}
	t.Probe = &notifyProbe{Query: q, channel: channel, listener: b.listeners[q.Connection]}
	return t, nil
}

// Close cancels the queries in flight, then closes the listeners and the
// pools: it does not wait for a running query.
func (b *Backend) Close() error {
	if b.sql != nil {
		_ = b.sql.Close()
	}
	for _, l := range b.listeners {
		l.Close()
	}
	for _, p := range b.pools {
		p.Close()
	}
	for _, p := range b.targets {
		p.Close()
	}
	return nil
}

// notifyProbe is a query that also watches a NOTIFY channel, so that a push feed re-reads the query as
// soon as an application says the answer may have changed.
type notifyProbe struct {
	*sqlmetric.Query
	channel  string
	listener *Listener
}

// Key implements scaler.Probe: the query's key and the channel, since the
// feed of a key watches the channel of the probe that started it.
func (p *notifyProbe) Key() string { return p.Query.Key() + "|notify:" + p.channel }

// Watch implements scaler.Probe.
func (p *notifyProbe) Watch(ctx context.Context, changed func()) error {
	return p.listener.Watch(ctx, p.channel, changed)
}
