package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/kedascalers/kedascalers/libs/testkit/proc"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
)

// backend is a throwaway server the scalers read, seen from outside.
type backend interface {
	// env returns the scaler's connection settings; superuser asks for a
	// connection as the server's superuser where there is one.
	env(superuser bool) []string
	// innocent returns the trigger metadata of the tenant that does nothing
	// wrong.
	innocent() map[string]string
	// sample returns the connections the scaler holds to the server and the
	// server's memory spent on them, in bytes.
	sample(ctx context.Context) (conns int, mem int64, err error)
	// accepting checks that a new client (not the scaler) is served.
	accepting(ctx context.Context) error
	// reset ends what a previous case left behind.
	reset(ctx context.Context)
	close()
}

// redisBackend is a throwaway redis-server.
type redisBackend struct {
	srv *testenv.Redis
	mon *redis.Client // one connection, counted out of connected_clients
}

func startRedis(ctx context.Context) (*redisBackend, error) {
	srv, err := testenv.StartRedis()
	if err != nil {
		return nil, err
	}
	b := &redisBackend{srv: srv, mon: redis.NewClient(&redis.Options{
		Addr: srv.Addr(), PoolSize: 1, MaxIdleConns: 1, ClientName: "abuse-monitor",
		DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second, MaxRetries: -1,
	})}
	if err := b.mon.SAdd(ctx, "innocent:sessions", "s1", "s2", "s3").Err(); err != nil {
		b.close()
		return nil, fmt.Errorf("seed redis: %w", err)
	}
	return b, nil
}

func (b *redisBackend) env(bool) []string { return []string{"REDIS_URL=" + b.srv.URL()} }

func (b *redisBackend) innocent() map[string]string {
	return map[string]string{"mode": "set", "key": "innocent:sessions", "sessionSize": "10"}
}

func (b *redisBackend) sample(ctx context.Context) (int, int64, error) {
	info, err := b.mon.Info(ctx, "clients", "memory").Result()
	if err != nil {
		return 0, 0, fmt.Errorf("redis INFO: %w", err)
	}
	clients, err := infoInt(info, "connected_clients")
	if err != nil {
		return 0, 0, err
	}
	mem, err := infoInt(info, "used_memory")
	return int(clients) - 1, mem, err
}

// opsPerSec returns Redis's instantaneous_ops_per_sec.
func (b *redisBackend) opsPerSec(ctx context.Context) (int64, error) {
	info, err := b.mon.Info(ctx, "stats").Result()
	if err != nil {
		return 0, fmt.Errorf("redis INFO stats: %w", err)
	}
	return infoInt(info, "instantaneous_ops_per_sec")
}

func (b *redisBackend) accepting(ctx context.Context) error {
	c := redis.NewClient(&redis.Options{Addr: b.srv.Addr(), PoolSize: 1, DialTimeout: 2 * time.Second, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("a new Redis client: %w", err)
	}
	return nil
}

// reset turns keyspace notifications off again: the cases that need
// them turn them on (notifications).
func (b *redisBackend) reset(ctx context.Context) {
	_ = b.mon.ConfigSet(ctx, "notify-keyspace-events", "").Err()
}

// notifications turns keyspace notifications on, as a push user has them.
func (b *redisBackend) notifications(ctx context.Context) error {
	if err := b.mon.ConfigSet(ctx, "notify-keyspace-events", "KEA").Err(); err != nil {
		return fmt.Errorf("redis CONFIG SET notify-keyspace-events: %w", err)
	}
	return nil
}

func (b *redisBackend) close() {
	b.mon.Close()
	b.srv.Close()
}

// scalerRole is the least-privilege role postgres-query connects as.
const scalerRole = "kedascaler"

// pgBackend is a throwaway PostgreSQL with a least-privilege role for the
// scaler (LOGIN, member of nothing, owning nothing).
type pgBackend struct {
	srv *testenv.Postgres
	mon *pgxpool.Pool // as the superuser
}

func startPostgres(ctx context.Context) (*pgBackend, error) {
	srv, err := testenv.StartPostgres()
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(srv.URL())
	if err != nil {
		srv.Close()
		return nil, err
	}
	cfg.MaxConns = 3
	cfg.ConnConfig.RuntimeParams["application_name"] = "abuse-monitor"
	mon, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		srv.Close()
		return nil, err
	}
	b := &pgBackend{srv: srv, mon: mon}
	if _, err := mon.Exec(ctx, `create role `+scalerRole+` login nosuperuser nocreatedb nocreaterole noinherit nobypassrls;
		revoke create on schema public from public;
		create extension if not exists dblink`); err != nil {
		b.close()
		return nil, fmt.Errorf("set up postgres: %w", err)
	}
	return b, nil
}

func (b *pgBackend) env(superuser bool) []string {
	if superuser {
		return []string{"POSTGRES_URL=" + b.srv.URL()}
	}
	return []string{"POSTGRES_URL=postgres://" + scalerRole + "@" + b.srv.Addr() + "/postgres?sslmode=disable"}
}

func (b *pgBackend) innocent() map[string]string {
	return map[string]string{"query": "select 1 as innocent", "targetQueryValue": "10"}
}

// sample counts the scaler role's sessions and sums the resident memory
// (VmRSS) of their server processes.
func (b *pgBackend) sample(ctx context.Context) (int, int64, error) {
	rows, err := b.mon.Query(ctx, `select pid from pg_stat_activity where usename = $1`, scalerRole)
	if err != nil {
		return 0, 0, fmt.Errorf("pg_stat_activity: %w", err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return 0, 0, fmt.Errorf("pg_stat_activity: %w", err)
	}
	var mem int64
	for _, pid := range pids {
		if u, err := proc.UsageOf(int(pid)); err == nil {
			mem += u.RSS
		}
	}
	return len(pids), mem, nil
}

func (b *pgBackend) accepting(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, b.srv.URL())
	if err != nil {
		return fmt.Errorf("a new PostgreSQL client: %w", err)
	}
	defer conn.Close(context.Background())
	return conn.Ping(ctx)
}

// reset ends every session of the scaler's role, superuser ones included
// (a pg_sleep outlives its client), and drops what a superuser case wrote.
func (b *pgBackend) reset(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, _ = b.mon.Exec(ctx, `select pg_terminate_backend(pid) from pg_stat_activity
		where pid <> pg_backend_pid() and backend_type = 'client backend'
		  and coalesce(application_name, '') <> 'abuse-monitor'`)
	_, _ = b.mon.Exec(ctx, `drop table if exists abuse_dblink_wrote`)
}

// tableExists reports whether a table of that name exists.
func (b *pgBackend) tableExists(ctx context.Context, name string) (bool, error) {
	var ok bool
	err := b.mon.QueryRow(ctx, `select to_regclass($1) is not null`, name).Scan(&ok)
	return ok, err
}

func (b *pgBackend) close() {
	b.mon.Close()
	b.srv.Close()
}

// backends starts each throwaway server once, when a case first needs it.
type backends struct {
	redis *redisBackend
	pg    *pgBackend
}

func (bs *backends) get(ctx context.Context, service string) (backend, error) {
	var err error
	switch service {
	case "redis-session":
		if bs.redis == nil {
			bs.redis, err = startRedis(ctx)
		}
		return bs.redis, err
	case "postgres-query":
		if bs.pg == nil {
			bs.pg, err = startPostgres(ctx)
		}
		return bs.pg, err
	}
	return nil, errors.New("no backend for service " + service)
}

func (bs *backends) close() {
	if bs.redis != nil {
		bs.redis.close()
	}
	if bs.pg != nil {
		bs.pg.close()
	}
}
