package pgquery

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
)

// Backend is the scaler's backend: sqlmetric's SQL triggers over one
// PostgreSQL pool per connection, plus the notifyChannel key. It
// implements scaler.Backend and io.Closer and is safe for concurrent use.
type Backend struct {
	sql       *sqlmetric.Backend
	pools     map[string]*pgxpool.Pool
	listeners map[string]*Listener
}

// New validates cfg and returns a Backend with a pool and a Listener per
// connection. It does not connect: the database may be down when the
// scaler starts, and reads report that until it is back. Call Close when
// done.
func New(cfg Config, log *slog.Logger) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	conns, err := cfg.connections()
	if err != nil {
		return nil, err
	}
	b := &Backend{pools: make(map[string]*pgxpool.Pool), listeners: make(map[string]*Listener)}
	queriers := make(map[string]sqlmetric.Querier, len(conns))
	for _, name := range slices.Sorted(maps.Keys(conns)) {
		conn := conns[name]
		pc, err := cfg.poolConfig(conn)
		if err != nil {
			b.Close()
			return nil, err
		}
		connLog := log.With(slog.String("connection", name))
		pc.AfterConnect = warnSuperuser(connLog)
		pool, err := pgxpool.NewWithConfig(context.Background(), pc)
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("%s: %w", conn.URLVar, err)
		}
		b.pools[name] = pool
		queriers[name] = NewQuerier(pool, cfg.QueryTimeout)
		b.listeners[name] = NewListener(listenConfig(pc), ListenerOptions{MaxChannels: cfg.MaxListenChannels, Logger: connLog})
		cc := pc.ConnConfig
		connLog.Info("postgres configured", slog.String("host", cc.Host), slog.Int("port", int(cc.Port)),
			slog.String("database", cc.Database), slog.String("user", cc.User), slog.Bool("tls", cc.TLSConfig != nil),
			slog.Int("maxConns", int(pc.MaxConns)))
	}
	if b.sql, err = sqlmetric.NewBackend(cfg.Config, queriers, Convert); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// warnSuperuser logs once per pool when the scaler's user is a superuser:
// READ ONLY keeps tables safe, but a superuser's query may still read
// server files or signal other sessions.
func warnSuperuser(log *slog.Logger) func(context.Context, *pgx.Conn) error {
	var once sync.Once
	return func(_ context.Context, conn *pgx.Conn) error {
		if isSuperuser(conn) {
			once.Do(func() {
				log.Warn("connected as a superuser: give the scaler a role with SELECT on the tables its queries need only (see README, Security)",
					slog.String("user", conn.Config().User))
			})
		}
		return nil
	}
}

// Parse implements scaler.Backend: sqlmetric's keys (see
// sqlmetric.Backend.Parse) and notifyChannel, a channel whose NOTIFY
// makes push streams re-check the query at once.
func (b *Backend) Parse(md map[string]string) (*scaler.Trigger, error) {
	p := metadata.NewParser(md)
	channel := p.String("notifyChannel", "")
	if channel != "" && !channelRE.MatchString(channel) {
		p.Fail(&metadata.Error{Key: "notifyChannel", Value: channel,
			Want: "a lowercase PostgreSQL identifier: a-z or '_', then a-z, 0-9 or '_', at most 63 characters"})
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	t, err := b.sql.Parse(md)
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

// Close closes the listeners and the pools. It waits for queries in
// flight, which QUERY_TIMEOUT bounds.
func (b *Backend) Close() error {
	for _, l := range b.listeners {
		l.Close()
	}
	for _, p := range b.pools {
		p.Close()
	}
	return nil
}

// notifyProbe is a query that also watches a NOTIFY channel: it
// implements stream.Watcher, so that a push feed re-reads the query as
// soon as an application says the answer may have changed.
type notifyProbe struct {
	*sqlmetric.Query
	channel  string
	listener *Listener
}

// Key implements scaler.Probe: the query's key and the channel, since the
// feed of a key watches the channel of the probe that started it.
func (p *notifyProbe) Key() string { return p.Query.Key() + "|notify:" + p.channel }

// Watch implements stream.Watcher.
func (p *notifyProbe) Watch(ctx context.Context, changed func()) error {
	return p.listener.Watch(ctx, p.channel, changed)
}
