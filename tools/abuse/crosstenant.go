package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// evilNS is the hostile namespace of the cross-tenant cases.
const evilNS = "evil"

// crossTenantCases are the cases of issue 14: namespace evil fills a
// shared pool to its bound, then namespace good creates a new trigger of
// each kind and must be served within 1 s; and two honest clusters that
// must see no refusal. Their counts are the bounds themselves (the
// issue's, set in the case's env where today's default is larger): a
// quick run (-scale) does not shrink them.
func crossTenantCases() []*abuseCase {
	return []*abuseCase{
		bounded(crossTenant("fair-redis-databases", "redis-session",
			"evil polls databaseIndex 10, 11 and 12 (with 0: REDIS_MAX_DATABASES=4) and goes on polling; good polls databaseIndex 5 and the rest",
			3, func(ctx context.Context, a *attack) func() {
				md := func(i int) map[string]string {
					return map[string]string{"mode": "dbsize", "databaseIndex": strconv.Itoa(10 + i)}
				}
				held := 0
				for i := range a.n {
					err := a.poll(ctx, evilNS, i, md(i))
					a.record(err)
					if err == nil {
						held++
					}
				}
				a.sent(a.n)
				a.value("evilHeld", float64(held))
				return a.repeat(ctx, time.Second, func(ctx context.Context) {
					for i := range a.n {
						if err := a.poll(ctx, evilNS, i, md(i)); ctx.Err() == nil {
							a.record(err)
						}
					}
				})
			}), "REDIS_MAX_DATABASES=4"),
		bounded(crossTenant("fair-redis-feeds", "redis-session",
			"evil holds 200 StreamIsActive streams with distinct keys (MAX_FEEDS); good opens a push and the rest",
			200, func(ctx context.Context, a *attack) func() {
				return a.evilStreams(ctx, a.isActiveStreams(evilNS, func(i int) map[string]string {
					return map[string]string{"mode": "set", "key": fmt.Sprintf("evil:feed:%d", i)}
				}))
			}), "MAX_FEEDS=200"),
		bounded(crossTenant("fair-redis-targets", "redis-session",
			"evil holds 100 StreamMetricSpec streams with distinct sessionSizeKeys (MAX_TARGET_READERS); good asks a target and the rest",
			100, func(ctx context.Context, a *attack) func() {
				return a.evilStreams(ctx, a.specStreams(evilNS, func(i int) map[string]string {
					return map[string]string{"mode": "set", "key": "evil:sessions", "sessionSizeKey": fmt.Sprintf("evil:target:%d", i)}
				}))
			}), "MAX_TARGET_READERS=100"),
		crossTenant("fair-redis-questions", "redis-session",
			"evil floods distinct questions, 128 at a time (MAX_QUESTIONS, backend calls); good asks each kind meanwhile",
			1_000_000, func(ctx context.Context, a *attack) func() {
				return a.flood(ctx, func(i int) map[string]string {
					return map[string]string{"mode": "set", "key": fmt.Sprintf("evil:question:%d", i)}
				})
			}),
		crossTenant("fair-pg-questions", "postgres-query",
			"evil floods distinct slow queries (select pg_sleep(0.5), N), 128 at a time; good asks each kind meanwhile",
			1_000_000, func(ctx context.Context, a *attack) func() {
				return a.flood(ctx, func(i int) map[string]string {
					return map[string]string{"query": fmt.Sprintf("select pg_sleep(0.5), %d", i), "targetQueryValue": "1"}
				})
			}),
		crossTenant("fair-pg-listen", "postgres-query",
			"evil holds 8 StreamIsActive streams with distinct notifyChannels (POSTGRES_MAX_LISTEN_CHANNELS); good's NOTIFY must be pushed",
			8, func(ctx context.Context, a *attack) func() {
				return a.evilStreams(ctx, a.isActiveStreams(evilNS, func(i int) map[string]string {
					return map[string]string{"query": fmt.Sprintf("select %d", i), "targetQueryValue": "1",
						"notifyChannel": fmt.Sprintf("evil_%d", i)}
				}))
			}),
		{
			name: "honest-push", service: "redis-session",
			what:  "600 push ScaledObjects in 60 namespaces, 10 each (StreamIsActive, distinct keys), held 12 s: none refused",
			count: 600, min: 600, limit: 60 * time.Second,
			attack: func(ctx context.Context, a *attack) {
				if err := a.backend.(*redisBackend).notifications(ctx); err != nil {
					a.res.note("%v", err)
				}
				h := a.holdStreams(ctx, a.n, 64, 40*time.Second, func(ctx context.Context, i int) (recvFunc, error) {
					md := map[string]string{"mode": "set", "key": fmt.Sprintf("honest:push:%d", i)}
					return a.isActiveStreams(fmt.Sprintf("team-%02d", i/10), func(int) map[string]string { return md })(ctx, i)
				})
				defer h.stop()
				sleep(ctx, 12*time.Second) // over two PUSH_INTERVALs: a feed cut late shows
				a.value("opened", float64(h.opened.Load()))
				a.value("failed", float64(h.failed.Load()))
				a.res.note("%d of %d streams got their first message (p50 %v, p99 %v); %d ended with an error while held %s",
					h.opened.Load(), a.n, h.firstP(50).Round(time.Millisecond), h.firstP(99).Round(time.Millisecond),
					h.failed.Load(), h.sample)
			},
			checks: []func(*result) string{allCodes(codes.OK), func(r *result) string {
				if r.values["opened"] != float64(r.n) || r.values["failed"] > 0 {
					return fmt.Sprintf("%.0f of %d streams opened, %.0f ended with an error while held", r.values["opened"], r.n, r.values["failed"])
				}
				return ""
			}},
		},
		{
			name: "honest-burst", service: "redis-session",
			what:  "one namespace's 500 ScaledObjects (distinct keys) polled at once, as after a KEDA restart: no ResourceExhausted",
			count: 500, min: 500, limit: 60 * time.Second,
			attack: func(ctx context.Context, a *attack) {
				a.sent(a.fanout(ctx, a.n, a.n, func(ctx context.Context, i int) error {
					return a.poll(ctx, "burst", i, map[string]string{"mode": "set", "key": fmt.Sprintf("burst:%d", i)})
				}))
			},
			checks: []func(*result) string{allCodes(codes.OK)},
		},
	}
}

// crossTenant is a case where namespace evil does its worst (worst
// returns once its hold is in place, and a function that ends it), then
// namespace good creates a new trigger of each kind (newcomers).
func crossTenant(name, service, what string, count int, worst func(ctx context.Context, a *attack) func()) *abuseCase {
	return &abuseCase{
		name: name, service: service, what: what,
		count: count, min: count, limit: 60 * time.Second,
		attack: func(ctx context.Context, a *attack) {
			if b, ok := a.backend.(*redisBackend); ok {
				if err := b.notifications(ctx); err != nil {
					a.res.note("%v", err)
				}
			}
			end := worst(ctx, a)
			defer end()
			a.newcomers(ctx, name)
		},
		checks: []func(*result) string{evilFilled, newcomersServed},
	}
}

// bounded sets a case's bound below its default, to the value.
func bounded(c *abuseCase, env ...string) *abuseCase {
	c.env = env
	return c
}

// evilFilled is the check that evil's worst took all it asked for (a
// stream or database each) before good came: else the case proves
// nothing. Floods, which have no count to reach, set no evilHeld.
func evilFilled(r *result) string {
	if held, ok := r.values["evilHeld"]; ok && held < float64(r.n) {
		return fmt.Sprintf("evil held only %.0f of %d: the pool was not full when good came", held, r.n)
	}
	return ""
}

// evilStreams holds a.n streams of evil's opened with open, and notes how
// many got their first message.
func (a *attack) evilStreams(ctx context.Context, open func(ctx context.Context, i int) (recvFunc, error)) func() {
	h := a.holdStreams(ctx, a.n, 64, 30*time.Second, open)
	a.value("evilHeld", float64(h.opened.Load()))
	a.res.note("evil: %d of %d streams got their first message", h.opened.Load(), a.n)
	return h.stop
}

// flood asks evil's distinct questions md(i), 128 at a time, until the
// returned function is called; it returns after 2 s of flood.
func (a *attack) flood(ctx context.Context, md func(i int) map[string]string) func() {
	fctx, stop := context.WithCancel(ctx)
	done := make(chan int)
	go func() {
		done <- a.fanout(fctx, a.n, 128, func(ctx context.Context, i int) error {
			return a.poll(ctx, evilNS, i, md(i))
		})
	}()
	sleep(ctx, 2*time.Second)
	return func() {
		stop()
		a.sent(<-done)
	}
}

// repeat calls f every interval until the returned function is called.
func (a *attack) repeat(ctx context.Context, interval time.Duration, f func(ctx context.Context)) func() {
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for rctx.Err() == nil {
			sleep(rctx, interval)
			if rctx.Err() == nil {
				f(rctx)
			}
		}
	})
	return func() {
		stop()
		wg.Wait()
	}
}

// poll polls ScaledObject i of namespace ns as KEDA does: GetMetrics, then
// IsActive unless GetMetrics failed.
func (a *attack) poll(ctx context.Context, ns string, i int, md map[string]string) error {
	ref := refIn(ns, i, md)
	if _, err := a.client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: metricName(md)}); err != nil {
		return err
	}
	_, err := a.client.IsActive(ctx, ref)
	return err
}
