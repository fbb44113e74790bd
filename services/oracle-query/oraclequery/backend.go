package oraclequery

import (
	"context"
	"database/sql"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	go_ora "github.com/sijms/go-ora/v2"

	"github.com/kedascalers/kedascalers/libs/scalerkit"
	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
)

var _ scaler.Backend = (*Backend)(nil)

// Backend is the oracle-query backend: sqlmetric's SQL triggers (Parse)
// over two go-ora connection pools per configured connection (value
// reads, and background target reads apart). It is safe for concurrent
// use; Close cancels the queries in flight and closes the pools.
type Backend struct {
	*sqlmetric.Backend

	pools    sqlmetric.Pools[*sql.DB]
	queriers map[string]sqlmetric.Querier // of value reads
}

// New returns a Backend over the connections of s, which it trusts (see
// Config.Resolve). It connects to nothing: a pool opens its first session
// on the first query, so the scaler starts (and reports Unavailable)
// while the database is down; Ping checks once.
func New(_ context.Context, s Settings, env scalerkit.Env) (*Backend, error) {
	pools := sqlmetric.NewPools[*sql.DB]()
	for name, u := range s.urls {
		// A connector per pool: go-ora's registered driver is one value
		// that keeps the character sets of the first database it met.
		pools.Value[name] = sql.OpenDB(go_ora.NewConnector(u))
		s.applyPool(pools.Value[name], s.MaxConns)
		pools.Target[name] = sql.OpenDB(go_ora.NewConnector(u))
		s.applyPool(pools.Target[name], s.MaxTargetConns)
		pools.URLVars[name] = s.urlVariable(name)
	}
	b, err := newBackend(s.sql, pools, oracle, env.Registerer)
	if err != nil {
		_ = pools.Close((*sql.DB).Close)
		return nil, err
	}
	pools.Export(b.Backend, dbStats)
	env.Log.Info("oracle configured", slog.Any("connections", pools.Names()),
		slog.Int("maxOpenConns", s.MaxConns), slog.Int("maxTargetConns", s.MaxTargetConns),
		slog.Duration("queryTimeout", s.QueryTimeout), slog.String("queryPolicy", s.QueryPolicy), slog.Int("maxRows", s.MaxRows))
	return b, nil
}

// newBackend builds the backend over open pools with dialect d; a
// connection without a target pool reads its targets through its value
// pool.
func newBackend(cfg sqlmetric.Settings, pools sqlmetric.Pools[*sql.DB], d dialect, reg prometheus.Registerer) (*Backend, error) {
	b := &Backend{pools: pools, queriers: make(map[string]sqlmetric.Querier, len(pools.Value))}
	targetQueriers := make(map[string]sqlmetric.Querier, len(pools.Target))
	for name, db := range pools.Value {
		b.queriers[name] = d.querier(db, cfg.Config)
	}
	for name, db := range pools.Target {
		targetQueriers[name] = d.querier(db, cfg.Config)
	}
	core, err := sqlmetric.NewBackend(cfg, sqlmetric.Options{
		Conns: b.queriers, Targets: targetQueriers, Convert: Convert, Registerer: reg,
	})
	if err != nil {
		return nil, err
	}
	b.Backend = core
	return b, nil
}

// Ping implements scalerkit.Pinger: it opens a session on each
// connection's database, naming the variable of one that fails.
func (b *Backend) Ping(ctx context.Context) error {
	return b.pools.Ping(ctx, func(ctx context.Context, db *sql.DB) error { return db.PingContext(ctx) })
}

// Close cancels the queries in flight (go-ora breaks them) and closes
// every connection pool.
func (b *Backend) Close() error {
	if b.Backend != nil {
		_ = b.Backend.Close()
	}
	return b.pools.Close((*sql.DB).Close)
}

// dbStats reports a pool's connections for sqlmetric.Metrics.
func dbStats(db *sql.DB) func() (inUse, idle int) {
	return func() (int, int) {
		st := db.Stats()
		return st.InUse, st.Idle
	}
}
