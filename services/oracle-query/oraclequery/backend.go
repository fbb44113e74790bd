package oraclequery

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"

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

	dbs      map[string]*sql.DB // value reads
	targets  map[string]*sql.DB // background target reads
	queriers map[string]sqlmetric.Querier
	urlVars  map[string]string // the variable of each connection
}

// New returns a Backend over the connections of s, which it trusts (see
// Config.Resolve). It connects to nothing: a pool opens its first session
// on the first query, so the scaler starts (and reports Unavailable)
// while the database is down; Ping checks once.
func New(_ context.Context, s Settings, env scalerkit.Env) (*Backend, error) {
	dbs := make(map[string]*sql.DB, len(s.urls))
	targets := make(map[string]*sql.DB, len(s.urls))
	for name, u := range s.urls {
		// A connector per pool: go-ora's registered driver is one value
		// that keeps the character sets of the first database it met.
		dbs[name] = sql.OpenDB(go_ora.NewConnector(u))
		s.applyPool(dbs[name], s.MaxConns)
		targets[name] = sql.OpenDB(go_ora.NewConnector(u))
		s.applyPool(targets[name], s.MaxTargetConns)
	}
	b, err := newBackend(s.sql, dbs, targets, oracle, env.Registerer)
	if err != nil {
		for _, db := range dbs {
			_ = db.Close()
		}
		for _, db := range targets {
			_ = db.Close()
		}
		return nil, err
	}
	b.urlVars = make(map[string]string, len(dbs))
	for name := range dbs {
		b.urlVars[name] = s.urlVariable(name)
		b.AddPool(name, sqlmetric.PoolValue, dbStats(dbs[name]))
		b.AddPool(name, sqlmetric.PoolTarget, dbStats(targets[name]))
	}
	env.Log.Info("oracle configured", slog.Any("connections", slices.Sorted(maps.Keys(dbs))),
		slog.Int("maxOpenConns", s.MaxConns), slog.Int("maxTargetConns", s.MaxTargetConns),
		slog.Duration("queryTimeout", s.QueryTimeout), slog.String("queryPolicy", s.QueryPolicy), slog.Int("maxRows", s.MaxRows))
	return b, nil
}

// newBackend builds the backend over open pools, by connection name:
// dbs for value reads, targets (nil: dbs) for background target reads.
func newBackend(cfg sqlmetric.Settings, dbs, targets map[string]*sql.DB, d dialect, reg prometheus.Registerer) (*Backend, error) {
	b := &Backend{dbs: dbs, targets: targets, queriers: make(map[string]sqlmetric.Querier, len(dbs))}
	targetQueriers := make(map[string]sqlmetric.Querier, len(targets))
	for name, db := range dbs {
		b.queriers[name] = d.querier(db, cfg.Config)
	}
	for name, db := range targets {
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
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(b.dbs)) {
		if err := b.dbs[name].PingContext(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", b.urlVars[name], err))
		}
	}
	return errors.Join(errs...)
}

// Close cancels the queries in flight (go-ora breaks them) and closes
// every connection pool.
func (b *Backend) Close() error {
	if b.Backend != nil {
		_ = b.Backend.Close()
	}
	var errs []error
	for _, pools := range []map[string]*sql.DB{b.dbs, b.targets} {
		for name, db := range pools {
			if err := db.Close(); err != nil {
				errs = append(errs, fmt.Errorf("closing connection %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// dbStats reports a pool's connections for sqlmetric.Metrics.
func dbStats(db *sql.DB) func() (inUse, idle int) {
	return func() (int, int) {
		st := db.Stats()
		return st.InUse, st.Idle
	}
}
