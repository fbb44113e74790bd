package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kedascalers/kedascalers/libs/scalerkit/stream"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
)

// redisSession demonstrates redis-session: sessions stored in Redis, each
// replica serving at most sessionSize of them.
func (d *demo) redisSession(ctx context.Context) (err error) {
	d.step("redis-session: starting a throwaway Redis (keyspace notifications on)")
	r, err := testenv.StartRedis("--notify-keyspace-events", "KEA")
	if err != nil {
		return err
	}
	defer r.Close()
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()

	fmt.Fprintln(d.out, "storing 230 user sessions sess:0000..sess:0229 with a 30 min TTL")
	if err := addKeys(ctx, rdb, "sess:", 230); err != nil {
		return err
	}
	svc, err := d.startService(ctx, "redis-session", "REDIS_URL="+r.URL())
	if err != nil {
		return err
	}
	defer func() {
		d.step("stopping redis-session with SIGTERM: streams end cleanly, exit status 0")
		if stopErr := svc.stop(); stopErr != nil && err == nil {
			err = stopErr
		}
		if err == nil {
			fmt.Fprintln(d.out, "redis-session stopped cleanly")
		}
	}()

	sessions := "mode=pattern,keyPattern=sess:*,sessionSize=100"
	d.step("one KEDA poll (GetMetricSpec, GetMetrics, IsActive) with 1 replica running")
	if err := d.scalerctl(ctx, outcome{0, "value 230, decision 3 replicas", []string{`value\s+230\b`, `decision\s+3 replicas`}},
		"check", "--addr", svc.addr, "--metadata", sessions, "--current-replicas", "1"); err != nil {
		return err
	}
	d.step("the same poll with 3 replicas running: 230 sessions need 3, the HPA stays")
	if err := d.scalerctl(ctx, outcome{0, "value 230, decision 3 replicas", []string{`value\s+230\b`, `decision\s+3 replicas`}},
		"check", "--addr", svc.addr, "--metadata", sessions, "--current-replicas", "3"); err != nil {
		return err
	}

	d.step("a sorted set scored by expiry time: minScore=now counts only live sessions")
	now := time.Now().Unix()
	var members []redis.Z
	for i := range 115 {
		score := now + 600 // live
		if i < 40 {
			score = now - 60 // expired
		}
		members = append(members, redis.Z{Score: float64(score), Member: "user-" + strconv.Itoa(i)})
	}
	if err := rdb.ZAdd(ctx, "sessions:by-expiry", members...).Err(); err != nil {
		return err
	}
	fmt.Fprintln(d.out, "sessions:by-expiry holds 115 members, 40 of them expired")
	if err := d.scalerctl(ctx, outcome{0, "value 75 (the live sessions), decision 3 replicas", []string{`value\s+75\b`, `decision\s+3 replicas`}}, "check", "--addr", svc.addr, "--metadata",
		"mode=zset,key=sessions:by-expiry,minScore=now,sessionSize=25", "--current-replicas", "2"); err != nil {
		return err
	}

	d.step("external-push: StreamIsActive for a scaled-to-zero cart service (6 s)")
	fmt.Fprintln(d.out, "at +2s three carts open (cart:*), at +4s they close again")
	go func() {
		if stream.Sleep(ctx, 2*time.Second) {
			addKeys(ctx, rdb, "cart:", 3)
		}
		if stream.Sleep(ctx, 2*time.Second) {
			rdb.Del(ctx, "cart:0000", "cart:0001", "cart:0002")
		}
	}()
	if err := d.scalerctl(ctx, outcome{0, "false, then true at +2s, then false again", []string{`StreamIsActive result=false`, `StreamIsActive result=true(.|\n)*StreamIsActive result=false`}},
		"watch", "--addr", svc.addr, "--metadata", "mode=pattern,keyPattern=cart:*,sessionSize=10", "--duration", "6s"); err != nil {
		return err
	}
	fmt.Fprintln(d.out, "KEDA scales 0->1 at the true (without waiting for its poll); false is only information")

	d.step("Redis goes down: the scaler answers Unavailable, never a made-up 0")
	if err := r.Stop(); err != nil {
		return err
	}
	if err := d.scalerctl(ctx, outcome{1, "GetMetrics fails with Unavailable", []string{`GetMetrics: code = Unavailable`}},
		"check", "--addr", svc.addr, "--metadata", sessions, "--current-replicas", "3"); err != nil {
		return err
	}
	fmt.Fprintln(d.out, "KEDA keeps the 3 replicas (or applies spec.fallback): nothing scales down on an outage")

	d.step("Redis is back (empty: it keeps nothing on disk); 120 sessions come back")
	if err := r.Start(); err != nil { // returns once Redis answers PING
		return err
	}
	if err := addKeys(ctx, rdb, "sess:", 120); err != nil {
		return err
	}
	if err := d.readsAgain(ctx, "--addr", svc.addr, "--metadata", sessions); err != nil {
		return err
	}
	return d.scalerctl(ctx, outcome{0, "value 120, decision 2 replicas", []string{`value\s+120\b`, `decision\s+2 replicas`}},
		"check", "--addr", svc.addr, "--metadata", sessions, "--current-replicas", "3")
}

// addKeys stores n keys prefix0000... with a 30 minute TTL.
func addKeys(ctx context.Context, rdb *redis.Client, prefix string, n int) error {
	pipe := rdb.Pipeline()
	for i := range n {
		pipe.Set(ctx, fmt.Sprintf("%s%04d", prefix, i), "{}", 30*time.Minute)
	}
	_, err := pipe.Exec(ctx)
	return err
}
