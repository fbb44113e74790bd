package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// activationTrials is how many 0→1 activations each push scenario measures.
const activationTrials = 20

// backendSwitch makes a push trigger active (on) or inactive (off) through
// the backend.
type backendSwitch interface {
	on(ctx context.Context) error
	off(ctx context.Context) error
}

// TestActivationPushRedis: a session written to Redis takes a Deployment
// from 0 to 1 through redis-session's StreamIsActive (keyspace
// notifications) and KEDA's external-push trigger, well before any poll.
func TestActivationPushRedis(t *testing.T) {
	needCluster(t)
	_, rdb, s := redisScaler(t, notifications)
	ns := newNamespace(t, "")
	apply(t, ns, pushScaledObject("chat", s.Addr, "chat:sessions", 10, 5))
	measureActivation(t, ns, "chat", "redis-session external-push, keyspace notifications", redisSwitch{rdb, "chat:sessions"})
}

// redisSwitch turns a set mode trigger on (a session in key) and off.
type redisSwitch struct {
	rdb *redis.Client
	key string
}

func (r redisSwitch) on(ctx context.Context) error  { return r.rdb.SAdd(ctx, r.key, "s1").Err() }
func (r redisSwitch) off(ctx context.Context) error { return r.rdb.Del(ctx, r.key).Err() }

// TestActivationNotifyPostgres: a row inserted with NOTIFY takes a
// Deployment from 0 to 1 through postgres-query's LISTEN and KEDA's
// external-push trigger.
func TestActivationNotifyPostgres(t *testing.T) {
	needCluster(t)
	conn, s := jobsScaler(t)
	ns := newNamespace(t, "")
	apply(t, ns, deployment("mailer", 0)+fmt.Sprintf(`apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: mailer}
spec:
  scaleTargetRef: {name: mailer}
  minReplicaCount: 0
  maxReplicaCount: 10
  pollingInterval: 10
  cooldownPeriod: 5
  triggers:
    - type: external-push
      metadata:
        scalerAddress: %s
        query: "SELECT count(*) FROM jobs WHERE queue = 'mail'"
        targetQueryValue: "20"
        notifyChannel: jobs_changed
`, s.Addr))
	measureActivation(t, ns, "mailer", "postgres-query external-push, NOTIFY", pgSwitch{conn})
}

// pgSwitch turns the jobs query on (a mail job, NOTIFY) and off.
type pgSwitch struct{ conn *pgx.Conn }

func (p pgSwitch) on(ctx context.Context) error {
	_, err := p.conn.Exec(ctx, `INSERT INTO jobs (queue) VALUES ('mail'); NOTIFY jobs_changed`)
	return err
}

func (p pgSwitch) off(ctx context.Context) error {
	_, err := p.conn.Exec(ctx, `DELETE FROM jobs; NOTIFY jobs_changed`)
	return err
}

// measureActivation waits for the ScaledObject to be ready, then, trial
// after trial, turns the trigger off, sets the Deployment to 0 (as KEDA's
// cooldown would, faster), turns it on and times the write → spec.replicas
// 1. At the end it checks that KEDA itself scales back to 0 after the
// cooldown. The ScaledObject polls every 10 s: an activation in well under
// that comes from the push stream.
func measureActivation(t *testing.T, ns, name, what string, sw backendSwitch) {
	t.Helper()
	waitReady(t, ns, name, 60*time.Second)
	var lat []time.Duration
	for i := range activationTrials {
		lat = append(lat, activationTrial(t, ns, name, i, sw, nil))
	}
	p50, p99 := percentile(lat, 50), percentile(lat, 99)
	t.Logf("activation latency, write → spec.replicas 1: %v", lat)
	t.Logf("e2e activation (%s, %d trials): p50 %s, p99 %s", what, len(lat), ms(p50), ms(p99))
	if p99 > time.Second {
		t.Errorf("p99 %s: want under 1 s", ms(p99))
	}
	// Back to 0 through KEDA's own cooldown (5 s) and poll.
	if err := sw.off(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitReplicas(t, ns, name, 0, 60*time.Second)
}

// activationTrial turns the trigger off, sets the Deployment to 0 (as
// KEDA's cooldown would, faster), calls before (if set) and turns the
// trigger on; it returns the time from that write to spec.replicas 1, and
// fails the test when none comes within 40 s.
func activationTrial(t *testing.T, ns, name string, i int, sw backendSwitch, before func()) time.Duration {
	t.Helper()
	c := needCluster(t)
	if err := sw.off(t.Context()); err != nil {
		t.Fatal(err)
	}
	setReplicas(t, ns, name, 0)
	waitReplicas(t, ns, name, 0, 10*time.Second)
	// Let the scaler's feed see "inactive" first: it sends true only
	// on a change from inactive.
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()
	obs, err := c.Kube().WatchReplicas(ctx, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	if first := <-obs; first.Replicas != 0 {
		t.Fatalf("trial %d: spec.replicas %d before the write", i, first.Replicas)
	}
	if before != nil {
		before()
	}
	t0 := time.Now()
	if err := sw.on(t.Context()); err != nil {
		t.Fatal(err)
	}
	for o := range obs {
		if o.Replicas >= 1 {
			return o.At.Sub(t0)
		}
	}
	t.Fatalf("trial %d: no scale from 0 within 40 s%s", i, diagnose(t, ns))
	return 0
}
