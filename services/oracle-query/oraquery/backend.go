package oraquery

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"

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
}

// New returns a Backend over cfg's connections, validating cfg unless
// config.Load did, and refusing a QUERY_TIMEOUT that is not below env's
// BACKEND_TIMEOUT. It connects to nothing: a pool opens its first session
// on the first query, so the scaler starts (and reports Unavailable)
// while the database is down.
func New(_ context.Context, cfg Config, env scalerkit.Env) (*Backend, error) {
	if cfg.urls == nil {
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
	dbs := make(map[string]*sql.DB, len(cfg.urls))
	targets := make(map[string]*sql.DB, len(cfg.urls))
	for name, u := range cfg.urls {
		// A connector of its own per pool rather than sql.Open("oracle",
		// u): go-ora's registered driver is one value shared by every
		// sql.Open and keeps the character-set converters of the first
		// database it met (driver.go, OracleDriver.init).
		dbs[name] = sql.OpenDB(go_ora.NewConnector(u))
		cfg.applyPool(dbs[name], cfg.MaxOpenConns)
		targets[name] = sql.OpenDB(go_ora.NewConnector(u))
		cfg.applyPool(targets[name], cfg.MaxTargetConns)
	}
	b, err := newBackend(cfg.Config, dbs, targets, oracle, metrics)
	if err != nil {
		for _, db := range dbs {
			_ = db.Close()
		}
		for _, db := range targets {
			_ = db.Close()
		}
		return nil, err
	}
	for name := range dbs {
		metrics.AddPool(name, sqlmetric.PoolValue, dbStats(dbs[name]))
		metrics.AddPool(name, sqlmetric.PoolTarget, dbStats(targets[name]))
	}
	log.Info("oracle configured", slog.Any("connections", slices.Sorted(maps.Keys(dbs))),
		slog.Int("maxOpenConns", cfg.MaxOpenConns), slog.Int("maxTargetConns", cfg.MaxTargetConns),
		slog.Duration("queryTimeout", cfg.QueryTimeout), slog.String("queryPolicy", cfg.QueryPolicy), slog.Int("maxRows", cfg.MaxRows))
	return b, nil
}

// newBackend builds the backend over open pools, by connection name:
// dbs for value reads, targets (nil: dbs) for background target reads.
func newBackend(cfg sqlmetric.Config, dbs, targets map[string]*sql.DB, d dialect, metrics *sqlmetric.Metrics) (*Backend, error) {
	b := &Backend{dbs: dbs, targets: targets, queriers: make(map[string]sqlmetric.Querier, len(dbs))}
	targetQueriers := make(map[string]sqlmetric.Querier, len(targets))
	for name, db := range dbs {
		b.queriers[name] = d.querier(db, cfg.QueryTimeout)
	}
	for name, db := range targets {
		targetQueriers[name] = d.querier(db, cfg.QueryTimeout)
	}
	core, err := sqlmetric.NewBackend(cfg, sqlmetric.Options{
		Conns: b.queriers, Targets: targetQueriers, Convert: Convert, Metrics: metrics,
	})
	if err != nil {
		return nil, err
	}
	b.Backend = core
	return b, nil
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
