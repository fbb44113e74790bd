package postgresquery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kedascalers/kedascalers/libs/scalerkit"
	"github.com/kedascalers/kedascalers/libs/scalerkit/config"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	skmetrics "github.com/kedascalers/kedascalers/libs/scalerkit/metrics"
	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
)

var _ scaler.Backend = (*Backend)(nil)

// Backend is the scaler's backend: sqlmetric's SQL triggers over two
// PostgreSQL pools per connection (value reads, and background target
// reads apart), plus the notifyChannel key. It is safe for concurrent use.
type Backend struct {
	*sqlmetric.Backend
	pools     sqlmetric.Pools[*pgxpool.Pool]
	listeners map[string]*Listener
}

// New returns a Backend with two pools and a Listener per connection of
// s, which it trusts (see Config.Resolve). It refuses a connection whose
// role is a superuser or bypasses row security (unless
// POSTGRES_ALLOW_SUPERUSER): it connects once per connection to check,
// but a database that is down does not stop the start (Ping says so;
// reads report it until it is back, and the check runs on every new
// connection). Call Close when done.
func New(ctx context.Context, s Settings, env scalerkit.Env) (*Backend, error) {
	b := &Backend{pools: sqlmetric.NewPools[*pgxpool.Pool](), listeners: make(map[string]*Listener)}
	queriers := make(map[string]sqlmetric.Querier, len(s.pools))
	targets := make(map[string]sqlmetric.Querier, len(s.pools))
	for _, name := range slices.Sorted(maps.Keys(s.pools)) {
		rp := s.pools[name]
		b.pools.URLVars[name] = rp.urlVar
		connLog := env.Log.With(slog.String("connection", name))
		pc := rp.config.Copy()
		pc.AfterConnect = checkRole(s.AllowSuperuser, connLog)
		tc := pc.Copy()
		tc.MaxConns, tc.MinConns = s.MaxTargetConns, 0
		tc.ConnConfig.RuntimeParams["application_name"] += TargetSuffix
		pool, err := pgxpool.NewWithConfig(context.Background(), pc)
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("%s: %w", rp.urlVar, err)
		}
		b.pools.Value[name] = pool
		target, err := pgxpool.NewWithConfig(context.Background(), tc)
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("%s: %w", rp.urlVar, err)
		}
		b.pools.Target[name] = target
		queriers[name] = NewQuerier(pool, s.QueryTimeout)
		targets[name] = NewQuerier(target, s.QueryTimeout)
		resource := "listen_channels"
		if name != sqlmetric.DefaultConnection {
			resource += "_" + name
		}
		shared, err := skmetrics.SharedOn(env.Registerer, resource, s.MaxListenChannels)
		if err != nil {
			b.Close()
			return nil, err
		}
		refused, err := skmetrics.Refusals(env.Registerer)
		if err != nil {
			b.Close()
			return nil, err
		}
		waited := refused.WithLabelValues("POSTGRES_MAX_LISTEN_CHANNELS")
		b.listeners[name] = NewListener(listenConfig(pc), ListenerOptions{MaxChannels: s.MaxListenChannels, Shared: shared, Refused: waited.Inc, Logger: connLog})
		cc := pc.ConnConfig
		connLog.Info("postgres configured", slog.String("host", cc.Host), slog.Int("port", int(cc.Port)),
			slog.String("database", cc.Database), slog.String("user", cc.User), slog.Bool("tls", cc.TLSConfig != nil),
			slog.Int("maxConns", int(pc.MaxConns)), slog.Int("maxTargetConns", int(tc.MaxConns)))
	}
	var err error
	b.Backend, err = sqlmetric.NewBackend(s.sql, sqlmetric.Options{
		Conns: queriers, Targets: targets, Convert: Convert, Margin: clientMargin, Registerer: env.Registerer, Extend: b.notify,
	})
	if err != nil {
		b.Close()
		return nil, err
	}
	b.pools.Export(b.Backend, poolStats)
	if err := b.checkRoles(ctx, s.ConnectTimeout); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// checkRoles connects once to each connection's database, at once, to
// refuse a superuser role at start rather than at the first query. A
// database that cannot be reached is left to Ping and the reads.
func (b *Backend) checkRoles(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout+time.Second)
	defer cancel()
	return b.pools.Check(ctx, acquire, func(name string, err error) error {
		var refused *roleError
		if errors.As(err, &refused) { // a configuration error: exit status 2
			return config.Invalid(fmt.Errorf("%s: %w", b.pools.URLVars[name], refused))
		}
		return nil
	})
}

// Ping implements scalerkit.Pinger: it connects once to each
// connection's database, naming the variable of one that fails.
func (b *Backend) Ping(ctx context.Context) error {
	return b.pools.Ping(ctx, acquire)
}

// acquire takes a connection of p and gives it back: one round trip to
// the database where the pool holds no connection.
func acquire(ctx context.Context, p *pgxpool.Pool) error {
	conn, err := p.Acquire(ctx)
	if err == nil {
		conn.Release()
	}
	return err
}

// poolStats reports a pool's connections for sqlmetric.Metrics.
func poolStats(p *pgxpool.Pool) func() (inUse, idle int) {
	return func() (int, int) {
		st := p.Stat()
		return int(st.AcquiredConns()), int(st.IdleConns())
	}
}

// notify is sqlmetric's Extend: the notifyChannel key, a channel whose
// NOTIFY makes push streams re-check the value query at once.
func (b *Backend) notify(p *metadata.Parser, q *sqlmetric.Query) scaler.Probe {
	channel := p.String("notifyChannel", "")
	switch {
	case channel == "":
		return q
	case !channelRE.MatchString(channel):
		p.Fail(&metadata.Error{Key: "notifyChannel", Value: channel,
			Want: "a lowercase PostgreSQL identifier: a-z or '_', then a-z, 0-9 or '_', at most 63 characters"})
		return q
	}
	return &notifyProbe{Query: q, channel: channel, listener: b.listeners[q.Connection]}
}

// Close cancels the queries in flight, then closes the listeners and the
// pools: it does not wait for a running query.
func (b *Backend) Close() error {
	if b.Backend != nil {
		_ = b.Backend.Close()
	}
	for _, l := range b.listeners {
		l.Close()
	}
	return b.pools.Close(func(p *pgxpool.Pool) error {
		p.Close()
		return nil
	})
}

var _ scaler.Probe = (*notifyProbe)(nil)

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

// Watch implements scaler.Probe. Its signals are not trusted
// (stream.TrustSignals): a LISTEN session being made again would leave
// its feed reading only every PUSH_WATCHED_INTERVAL while nothing is
// heard, so the feed also reads every PUSH_INTERVAL.
func (p *notifyProbe) Watch(ctx context.Context, changed func()) error {
	return p.listener.Watch(ctx, p.channel, changed)
}
