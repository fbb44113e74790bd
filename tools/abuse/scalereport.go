package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/kedascalers/kedascalers/libs/testkit/proc"
)

// monitorEvery is how often the scale run samples the scaler and backend.
const monitorEvery = 2 * time.Second

// fill writes what the ScaledObjects read: redis-session's sets (0 to 3
// members; the push sample's empty) and targets (4), with keyspace
// notifications on; postgres-query's table of 10 rows per ScaledObject.
func (r *scaleRun) fill(ctx context.Context) error {
	switch b := r.b.(type) {
	case *redisBackend:
		if err := b.notifications(ctx); err != nil {
			return err
		}
		if err := b.mon.FlushAll(ctx).Err(); err != nil {
			return fmt.Errorf("redis FLUSHALL: %w", err)
		}
		for start := 0; start < len(r.sos); start += 1000 {
			pipe := b.mon.Pipeline()
			for i, o := range r.sos[start:min(start+1000, len(r.sos))] {
				for m := range (start + i) % 4 {
					if !o.sample {
						pipe.SAdd(ctx, o.key, m)
					}
				}
				if k := o.ref.ScalerMetadata["sessionSizeKey"]; k != "" {
					pipe.Set(ctx, k, "4", 0)
				}
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return fmt.Errorf("fill redis: %w", err)
			}
		}
	case *pgBackend:
		if _, err := b.mon.Exec(ctx, fmt.Sprintf(`drop table if exists scale_items;
			create table scale_items (k int not null, v int not null);
			insert into scale_items select g %% %[1]d, g from generate_series(1, %[1]d * 10) g;
			create index on scale_items (k); analyze scale_items;
			grant select on scale_items to %[2]s`, max(1, len(r.sos)), scalerRole)); err != nil {
			return fmt.Errorf("fill postgres: %w", err)
		}
	}
	return nil
}

// monitor samples the scaler and its backend every monitorEvery until
// ctx ends, and takes the backend reads counted once the ramp is over
// and at the end.
func (r *scaleRun) monitor(ctx context.Context) {
	start := time.Now()
	sample := func(ctx context.Context) {
		if u, err := proc.UsageOf(r.s.pid()); err == nil {
			r.peakRSSSeen = max(r.peakRSSSeen, u.RSS)
		}
		if code, body := r.s.get(ctx, "/metrics"); code == 200 {
			if g, err := metricValue(body, "go_goroutines"); err == nil {
				r.peakGoroutines = max(r.peakGoroutines, int(g))
				r.endGoroutines = int(g)
			}
			r.peakStreams = max(r.peakStreams, metricSum(body, "kedascalers_open_streams"))
			r.streamCapReached = metricSum(body, "kedascalers_grpc_stream_limit_reached_total")
			reads := metricSum(body, "kedascalers_backend_request_duration_seconds_count")
			if r.t0.IsZero() && time.Since(start) >= r.o.interval {
				r.reads0, r.t0 = reads, time.Now()
			}
			r.reads1, r.t1 = reads, time.Now()
		}
		if conns, _, err := r.b.sample(ctx); err == nil {
			r.peakConns = max(r.peakConns, conns)
			r.endConns = conns
		}
		if rb, ok := r.b.(*redisBackend); ok && time.Since(start) >= r.o.interval {
			if ops, err := rb.opsPerSec(ctx); err == nil {
				r.opsPerSec = append(r.opsPerSec, ops)
			}
		}
	}
	for ctx.Err() == nil {
		sample(ctx)
		sleep(ctx, monitorEvery)
	}
	end, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sample(end)
}

// writeSample makes each push-sample ScaledObject's key active once,
// spread between the end of the ramp (plus 5 s) and 10 s before the end.
func (r *scaleRun) writeSample(ctx context.Context) {
	rb, ok := r.b.(*redisBackend)
	if !ok || r.o.sample == 0 {
		return
	}
	var sample []*so
	for _, o := range r.sos {
		if o.sample {
			sample = append(sample, o)
		}
	}
	sleep(ctx, r.o.interval+5*time.Second)
	span := r.o.duration - r.o.interval - 15*time.Second
	for _, o := range sample {
		if ctx.Err() != nil {
			return
		}
		o.wrote.Store(time.Now().UnixNano())
		if err := rb.mon.SAdd(ctx, o.key, "written").Err(); err != nil {
			o.wrote.Store(0)
			continue
		}
		r.writes++
		sleep(ctx, span/time.Duration(len(sample)))
	}
}

// failures counts the calls refused or failed, unanswered, and the push
// sample's writes that were never pushed.
func (r *scaleRun) failures() int {
	n := 0
	for _, byCode := range r.codes {
		for c, k := range byCode {
			if c != codes.OK {
				n += k
			}
		}
	}
	for _, k := range r.unanswered {
		n += k
	}
	return n + r.writes - len(r.pushLat)
}

// report prints what the run measured, as a Markdown table.
func (r *scaleRun) report(w io.Writer) {
	streams := "default"
	if r.o.maxStreams > 0 {
		streams = fmt.Sprint(r.o.maxStreams)
	}
	push := 0
	for _, o := range r.sos {
		if o.push {
			push++
		}
	}
	fmt.Fprintf(w, "\nscale %s, %s, load average %s: %d ScaledObjects in %d namespaces (%d push, %d with a backend-read target), "+
		"polled every %v for %v; GRPC_MAX_CONCURRENT_STREAMS %s, GOMEMLIMIT %q, GOGC %q\n\n",
		r.name, time.Now().UTC().Format("2006-01-02 15:04 UTC"), loadAverage(), len(r.sos), r.nsCount, push,
		min(push, r.o.targets), r.o.interval, r.o.duration, streams, r.o.memLimit, r.o.gogc)
	fmt.Fprintln(w, "| figure | value |")
	fmt.Fprintln(w, "|---|---|")
	rpcs := make([]string, 0, len(r.codes))
	for rpc := range r.codes {
		rpcs = append(rpcs, rpc)
	}
	slices.Sort(rpcs)
	for _, rpc := range rpcs {
		fmt.Fprintf(w, "| %s | %s |\n", rpc, codeString(r.codes[rpc]))
	}
	fmt.Fprintf(w, "| refused, failed or unanswered (must be 0) | %d |\n", r.failures())
	if len(r.unanswered) > 0 {
		fmt.Fprintf(w, "| unanswered when the run ended (waited > %v) | %v |\n", lateAtEnd, r.unanswered)
	}
	fmt.Fprintf(w, "| peak RSS of the scaler (VmHWM) | %d MiB |\n", r.peakRSS>>20)
	fmt.Fprintf(w, "| goroutines (go_goroutines, peak / after the run) | %d / %d |\n", r.peakGoroutines, r.endGoroutines)
	fmt.Fprintf(w, "| push streams open (kedascalers_open_streams, peak) | %.0f |\n", r.peakStreams)
	fmt.Fprintf(w, "| StreamMetricSpec of a static target: spec sent, then ended Unimplemented (KEDA stops watching) | %d |\n", r.staticSpecs)
	fmt.Fprintf(w, "| GRPC_MAX_CONCURRENT_STREAMS reached (kedascalers_grpc_stream_limit_reached_total) | %.0f |\n", r.streamCapReached)
	fmt.Fprintf(w, "| backend connections of the scaler (peak / after the run) | %d / %d |\n", r.peakConns, r.endConns)
	if d := r.t1.Sub(r.t0); d > 0 {
		fmt.Fprintf(w, "| backend reads per second after the ramp (kedascalers_backend_request_duration_seconds_count) | %.1f |\n",
			(r.reads1-r.reads0)/d.Seconds())
	}
	if len(r.opsPerSec) > 0 {
		s := slices.Clone(r.opsPerSec)
		slices.Sort(s)
		fmt.Fprintf(w, "| Redis commands per second (instantaneous_ops_per_sec, median after the ramp) | %d |\n", s[len(s)/2])
	}
	if len(r.pollLat) > 0 {
		fmt.Fprintf(w, "| GetMetrics latency (p50 / p99 / max) | %v / %v / %v |\n", percentile(r.pollLat, 50).Round(time.Millisecond),
			percentile(r.pollLat, 99).Round(time.Millisecond), percentile(r.pollLat, 100).Round(time.Millisecond))
	}
	if r.writes > 0 {
		fmt.Fprintf(w, "| push latency of the sample (write to true; p50 / p99 / max) | %v / %v / %v (%d of %d writes pushed) |\n",
			percentile(r.pushLat, 50).Round(time.Millisecond), percentile(r.pushLat, 99).Round(time.Millisecond),
			percentile(r.pushLat, 100).Round(time.Millisecond), len(r.pushLat), r.writes)
	}
	exit := fmt.Sprintf("%.1f s", r.exit.Seconds())
	if r.killed {
		exit += " (killed)"
	}
	fmt.Fprintf(w, "| exit after SIGTERM | %s |\n", exit)
	fmt.Fprintf(w, "| WARN and ERROR lines in the scaler's log, by message | %s |\n", r.logSummary)
	keys := make([]string, 0, len(r.samples))
	for k := range r.samples {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "\n- %s: %s", k, strings.ReplaceAll(r.samples[k], "\n", " "))
	}
	fmt.Fprintln(w)
}

// logMsg finds a slog JSON line's message.
var logMsg = regexp.MustCompile(`"msg":"([^"]*)"`)

// warnSummary counts the WARN and ERROR lines of a scaler's log by
// message, most frequent first, at most five.
func warnSummary(log []byte) string {
	counts := map[string]int{}
	for _, line := range bytes.Split(log, []byte("\n")) {
		if warnLines(line) == 0 {
			continue
		}
		msg := "?"
		if m := logMsg.FindSubmatch(line); m != nil {
			msg = string(m[1])
		}
		counts[msg]++
	}
	if len(counts) == 0 {
		return "none"
	}
	msgs := make([]string, 0, len(counts))
	for m := range counts {
		msgs = append(msgs, m)
	}
	slices.SortFunc(msgs, func(a, b string) int { return counts[b] - counts[a] })
	parts := make([]string, 0, 5)
	for _, m := range msgs[:min(5, len(msgs))] {
		parts = append(parts, fmt.Sprintf("%d %s", counts[m], m))
	}
	return strings.Join(parts, "; ")
}
