package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

const (
	// aimNewcomer is how soon another namespace's new trigger must be
	// answered correctly, and its first push message arrive, whatever a
	// hostile namespace holds (issue 14).
	aimNewcomer = time.Second
	// newcomerWait bounds each wait, so that a late answer is measured.
	newcomerWait = 5 * time.Second
	// goodNS is the namespace next door to the hostile one.
	goodNS = "good"
)

// newcomer is a new trigger of one kind that namespace good creates.
type newcomer struct {
	kind string // poll, push, target, databaseIndex, notifyChannel
	rpc  string // poll (GetMetrics, IsActive), push (StreamIsActive) or target (GetMetricSpec, StreamMetricSpec)
	md   map[string]string
	// want is the correct answer: the metric value of a poll, the target
	// read from the backend, the activity of a push's first message (> 0).
	want float64
	// change makes a push trigger active after a first false; nil: none.
	change func(ctx context.Context) error
}

// probe is what good got for one newcomer.
type probe struct {
	kind   string
	answer time.Duration // to the correct answer, or the first push message
	change time.Duration // from the change to its push message
	err    error
}

// newcomers sets up, in the backend, one new trigger of each kind for
// namespace good (keys and tables named after tag), asks each as KEDA
// would, and keeps what each got in a.res.probes.
func (a *attack) newcomers(ctx context.Context, tag string) {
	var ns []newcomer
	var err error
	switch b := a.backend.(type) {
	case *redisBackend:
		ns, err = b.newcomers(ctx, tag)
	case *pgBackend:
		ns, err = b.newcomers(ctx, tag)
	default:
		err = errors.New("no newcomers for this backend")
	}
	if err != nil {
		a.res.note("set up good's triggers: %v", err)
		return
	}
	for i, n := range ns {
		p := a.ask(ctx, i, n)
		a.mu.Lock()
		a.res.probes = append(a.res.probes, p)
		a.mu.Unlock()
		line := fmt.Sprintf("good's new %s trigger: answered in %v", p.kind, p.answer.Round(time.Millisecond))
		if p.change > 0 {
			line += fmt.Sprintf(", its change pushed in %v", p.change.Round(time.Millisecond))
		}
		if p.err != nil {
			line += ": " + clip(p.err.Error(), 200)
		}
		a.res.note("%s", line)
	}
}

// ask asks newcomer n as ScaledObject i of namespace good.
func (a *attack) ask(ctx context.Context, i int, n newcomer) probe {
	ctx, cancel := context.WithTimeout(ctx, 2*newcomerWait)
	defer cancel()
	ref := refIn(goodNS, i, n.md)
	p := probe{kind: n.kind}
	t0 := time.Now()
	switch n.rpc {
	case "poll":
		p.err = a.pollValue(ctx, ref, n.want)
		p.answer = time.Since(t0)
	case "target":
		p.answer, p.err = a.readTarget(ctx, ref, n.want, t0)
	case "push":
		p.answer, p.change, p.err = a.push(ctx, ref, n)
	}
	return p
}

// pollValue polls ref as KEDA does and checks the value and activity.
func (a *attack) pollValue(ctx context.Context, ref *pb.ScaledObjectRef, want float64) error {
	ctx, cancel := context.WithTimeout(ctx, newcomerWait)
	defer cancel()
	resp, err := a.client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: metricName(ref.ScalerMetadata)})
	if err != nil {
		return fmt.Errorf("GetMetrics: %w", err)
	}
	if v := resp.GetMetricValues(); len(v) != 1 || v[0].GetMetricValueFloat() != want {
		return fmt.Errorf("GetMetrics answered %v, want %v", v, want)
	}
	act, err := a.client.IsActive(ctx, ref)
	if err != nil {
		return fmt.Errorf("IsActive: %w", err)
	}
	if act.GetResult() != (want > 0) {
		return fmt.Errorf("IsActive answered %v with a value of %v", act.GetResult(), want)
	}
	return nil
}

// readTarget asks GetMetricSpec (which must answer), then follows
// StreamMetricSpec until the target read from the backend (want) comes,
// and returns when it came, from t0.
func (a *attack) readTarget(ctx context.Context, ref *pb.ScaledObjectRef, want float64, t0 time.Time) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, newcomerWait)
	defer cancel()
	spec, err := a.client.GetMetricSpec(ctx, ref)
	if err != nil {
		return time.Since(t0), fmt.Errorf("GetMetricSpec: %w", err)
	}
	if target(spec) == want {
		return time.Since(t0), nil
	}
	st, err := a.client.StreamMetricSpec(ctx, ref)
	if err != nil {
		return time.Since(t0), fmt.Errorf("StreamMetricSpec: %w", err)
	}
	var got []float64
	for {
		spec, err := st.Recv()
		if err != nil {
			return time.Since(t0), fmt.Errorf("StreamMetricSpec after targets %v, want %v: %w", got, want, err)
		}
		if got = append(got, target(spec)); target(spec) == want {
			return time.Since(t0), nil
		}
	}
}

// target is the one target of a spec, or -1.
func target(spec *pb.GetMetricSpecResponse) float64 {
	if s := spec.GetMetricSpecs(); len(s) == 1 {
		return s[0].GetTargetSizeFloat()
	}
	return -1
}

// push opens StreamIsActive for ref and returns the delay of its first
// message; with n.change, it then makes the trigger active and returns
// the delay of the true that follows.
func (a *attack) push(ctx context.Context, ref *pb.ScaledObjectRef, n newcomer) (first, change time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*newcomerWait)
	defer cancel()
	t0 := time.Now()
	st, err := a.client.StreamIsActive(ctx, ref)
	if err != nil {
		return time.Since(t0), 0, fmt.Errorf("StreamIsActive: %w", err)
	}
	msg, err := st.Recv()
	first = time.Since(t0)
	if err != nil {
		return first, 0, fmt.Errorf("StreamIsActive's first message: %w", err)
	}
	if msg.GetResult() != (n.want > 0) {
		return first, 0, fmt.Errorf("StreamIsActive's first message is %v, want %v", msg.GetResult(), n.want > 0)
	}
	if n.change == nil {
		return first, 0, nil
	}
	t1 := time.Now()
	if err := n.change(ctx); err != nil {
		return first, 0, fmt.Errorf("change the backend: %w", err)
	}
	for {
		msg, err := st.Recv()
		if err != nil {
			return first, time.Since(t1), fmt.Errorf("StreamIsActive after the change: %w", err)
		}
		if msg.GetResult() {
			return first, time.Since(t1), nil
		}
	}
}

// newcomersServed is the check of a cross-tenant case: each of good's
// new triggers answered correctly, and pushed, within aimNewcomer.
func newcomersServed(r *result) string {
	if len(r.probes) == 0 {
		return "namespace good tried no new trigger"
	}
	var missed []string
	for _, p := range r.probes {
		switch {
		case p.err != nil:
			missed = append(missed, fmt.Sprintf("good's new %s trigger: %s", p.kind, clip(p.err.Error(), 160)))
		case p.answer > aimNewcomer:
			missed = append(missed, fmt.Sprintf("good's new %s trigger answered in %v > 1s", p.kind, p.answer.Round(time.Millisecond)))
		case p.change > aimNewcomer:
			missed = append(missed, fmt.Sprintf("good's %s change pushed in %v > 1s", p.kind, p.change.Round(time.Millisecond)))
		}
	}
	return strings.Join(missed, "; ")
}

// newcomers writes the keys of good's triggers: a set of 3 (poll), an
// empty set made active later (push), a target of 7, and a set of 4 in
// database 5.
func (b *redisBackend) newcomers(ctx context.Context, tag string) ([]newcomer, error) {
	poll, push, tgt, db := "good:poll:"+tag, "good:push:"+tag, "good:target:"+tag, "good:db:"+tag
	pipe := b.mon.TxPipeline()
	pipe.Del(ctx, poll, push, tgt)
	pipe.SAdd(ctx, poll, "a", "b", "c")
	pipe.Set(ctx, tgt, "7", 0)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("write good's keys: %w", err)
	}
	db5 := redis.NewClient(&redis.Options{Addr: b.srv.Addr(), DB: 5, PoolSize: 1, MaxRetries: -1, DialTimeout: 2 * time.Second})
	defer db5.Close()
	if err := db5.Del(ctx, db).Err(); err != nil {
		return nil, fmt.Errorf("write good's key in database 5: %w", err)
	}
	if err := db5.SAdd(ctx, db, "a", "b", "c", "d").Err(); err != nil {
		return nil, fmt.Errorf("write good's key in database 5: %w", err)
	}
	return []newcomer{
		{kind: "poll", rpc: "poll", want: 3, md: map[string]string{"mode": "set", "key": poll, "sessionSize": "10"}},
		{kind: "push", rpc: "push", want: 0, md: map[string]string{"mode": "set", "key": push, "sessionSize": "10"},
			change: func(ctx context.Context) error { return b.mon.SAdd(ctx, push, "a").Err() }},
		{kind: "target", rpc: "target", want: 7, md: map[string]string{"mode": "set", "key": poll, "sessionSize": "10", "sessionSizeKey": tgt}},
		{kind: "databaseIndex", rpc: "poll", want: 4, md: map[string]string{"mode": "set", "key": db, "sessionSize": "10", "databaseIndex": "5"}},
	}, nil
}

// newcomers creates good's table (one row, 0, readable by the scaler's
// role) and returns a poll of 3, a push, a target of 7 and a
// notifyChannel whose NOTIFY after an update to 5 must be pushed.
func (b *pgBackend) newcomers(ctx context.Context, tag string) ([]newcomer, error) {
	table := "good_" + strings.ReplaceAll(tag, "-", "_")
	if _, err := b.mon.Exec(ctx, fmt.Sprintf(`drop table if exists %[1]s; create table %[1]s (v int);
		insert into %[1]s values (0); grant select on %[1]s to %[2]s`, table, scalerRole)); err != nil {
		return nil, fmt.Errorf("create good's table: %w", err)
	}
	return []newcomer{
		{kind: "poll", rpc: "poll", want: 3, md: map[string]string{"query": "select 3 as " + table, "targetQueryValue": "10"}},
		{kind: "push", rpc: "push", want: 2, md: map[string]string{"query": "select 2 as " + table, "targetQueryValue": "10"}},
		{kind: "target", rpc: "target", want: 7, md: map[string]string{"query": "select 1 as " + table, "targetQueryValue": "10",
			"targetQuery": "select 7 as " + table}},
		{kind: "notifyChannel", rpc: "push", want: 0, md: map[string]string{"query": "select v from " + table, "targetQueryValue": "10",
			"notifyChannel": table},
			change: func(ctx context.Context) error {
				_, err := b.mon.Exec(ctx, fmt.Sprintf(`update %[1]s set v = 5; notify %[1]s`, table))
				return err
			}},
	}, nil
}
