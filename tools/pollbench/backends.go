package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
)

// setup is one service's throwaway backend, filled, and the question the
// benchmark asks: env for the scaler, the trigger's metadata and metric.
type setup struct {
	env    []string
	md     map[string]string
	metric string
	close  func()
}

// sessions is the number of session keys redis-session counts.
const sessions = 250

// setups builds the backend of each benchmarked service.
var setups = map[string]func(ctx context.Context) (*setup, error){
	"redis-session":  redisSetup,
	"postgres-query": postgresSetup,
}

func redisSetup(ctx context.Context) (*setup, error) {
	r, err := testenv.StartRedis()
	if err != nil {
		return nil, err
	}
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	pipe := rdb.Pipeline()
	for i := range sessions {
		pipe.Set(ctx, fmt.Sprintf("sess:%04d", i), "u", 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		r.Close()
		return nil, fmt.Errorf("filling redis: %w", err)
	}
	return &setup{
		env:    []string{"REDIS_URL=" + r.URL()},
		md:     map[string]string{"mode": "pattern", "keyPattern": "sess:*", "sessionSize": "100"},
		metric: "session_size",
		close:  func() { r.Close() },
	}, nil
}

func postgresSetup(ctx context.Context) (*setup, error) {
	pg, err := testenv.StartPostgres()
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, pg.URL())
	if err != nil {
		pg.Close()
		return nil, err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `
		create table bookings (id serial primary key, status text not null);
		insert into bookings (status)
		select case when i % 3 = 0 then 'pending' else 'confirmed' end from generate_series(1, 300) as i`); err != nil {
		pg.Close()
		return nil, fmt.Errorf("filling postgres: %w", err)
	}
	// The throwaway server has only its superuser.
	return &setup{
		env:    []string{"POSTGRES_URL=" + pg.URL(), "POSTGRES_ALLOW_SUPERUSER=true"},
		md:     map[string]string{"query": "select count(*) from bookings where status = 'confirmed'", "targetQueryValue": "10"},
		metric: "query_value",
		close:  func() { pg.Close() },
	}, nil
}
