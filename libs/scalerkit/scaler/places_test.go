package scaler_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	grpcmd "google.golang.org/grpc/metadata"

	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// answer bounds the wait for a stream's message: a safety net, not a
// performance expectation.
const answer = 10 * time.Second

// refIn returns the ScaledObject ns/name with md as metadata.
func refIn(ns, name string, md map[string]string) *pb.ScaledObjectRef {
	return &pb.ScaledObjectRef{Namespace: ns, Name: name, ScalerMetadata: md}
}

// openActive opens StreamIsActive for ref and returns its messages (the
// channel closes when the stream ends) and a func that leaves it.
func openActive(t testing.TB, s *scalertest.Scaler, ref *pb.ScaledObjectRef) (<-chan *pb.IsActiveResponse, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := s.Client.StreamIsActive(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	return scalertest.Messages(ctx, st.Recv), cancel
}

// openSpec opens StreamMetricSpec for ref; see openActive.
func openSpec(t *testing.T, s *scalertest.Scaler, ref *pb.ScaledObjectRef) (<-chan *pb.GetMetricSpecResponse, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := s.Client.StreamMetricSpec(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	return scalertest.Messages(ctx, st.Recv), cancel
}

// nextTarget waits for a message of ch with target want, skipping others.
func nextTarget(t *testing.T, ch <-chan *pb.GetMetricSpecResponse, want float64, what string) {
	t.Helper()
	deadline := time.Now().Add(answer)
	for {
		m := scalertest.Next(t, ch, time.Until(deadline), what)
		if m.MetricSpecs[0].TargetSizeFloat == want {
			return
		}
	}
}

// specWithHeader calls GetMetricSpec and returns the target and warnings.
func specWithHeader(t *testing.T, s *scalertest.Scaler, ref *pb.ScaledObjectRef) (float64, []string) {
	t.Helper()
	var header grpcmd.MD
	spec, err := s.Client.GetMetricSpec(ctxT(t), ref, grpc.Header(&header))
	if err != nil {
		t.Fatalf("GetMetricSpec(%s/%s): %v", ref.Namespace, ref.Name, err)
	}
	return spec.MetricSpecs[0].TargetSizeFloat, header.Get(scaler.WarningHeader)
}

// TestMaxFeedsPollsPastTheBound: a push stream past MAX_FEEDS opens and
// is served by polling; it is watched once a place frees.
func TestMaxFeedsPollsPastTheBound(t *testing.T) {
	t.Setenv("MAX_FEEDS", "1")
	f := newFake()
	f.set("a", 1)
	s := scalertest.Serve(t, f, scalertest.Options{PushInterval: 50 * time.Millisecond})
	gauge := func(resource string) float64 { return gaugeValue(t, s.Metrics.Held.WithLabelValues(resource)) }
	// At the bound: one watched feed, shared by two streams.
	a1, leaveA1 := openActive(t, s, refIn("test", "a1", map[string]string{"key": "a"}))
	a2, leaveA2 := openActive(t, s, refIn("test", "a2", map[string]string{"key": "a"}))
	for _, ch := range []<-chan *pb.IsActiveResponse{a1, a2} {
		if m := scalertest.Next(t, ch, answer, "StreamIsActive(a)"); !m.Result {
			t.Fatalf("a's first message = %v, want active", m.Result)
		}
	}
	wait.For(t, answer, "a to be watched", func() bool { return f.watchers("a") == 1 })
	// Past it: open, answered, polled.
	b, _ := openActive(t, s, refIn("test", "b", map[string]string{"key": "b"}))
	if m := scalertest.Next(t, b, answer, "StreamIsActive(b) past the bound"); m.Result {
		t.Fatalf("b's first message = %v, want inactive", m.Result)
	}
	wait.For(t, answer, "b to count as polled", func() bool { return gauge("feeds_polled") == 1 })
	if f.watchers("b") != 0 || gauge("feeds") != 1 || gaugeValue(t, s.Metrics.HeldLimit.WithLabelValues("feeds")) != 1 {
		t.Errorf("b watched %d times, feeds held %v (limit %v); want 0, 1 (1)", f.watchers("b"), gauge("feeds"),
			gaugeValue(t, s.Metrics.HeldLimit.WithLabelValues("feeds")))
	}
	// Polling still tells b's stream of a change, unsignalled.
	f.set("b", 3)
	if m := scalertest.Next(t, b, answer, "StreamIsActive(b) after a change"); !m.Result {
		t.Fatalf("b's message after a change = %v, want active", m.Result)
	}
	// a's streams leave: b takes the free place and is watched.
	leaveA1()
	leaveA2()
	wait.For(t, answer, "b to be watched", func() bool { return f.watchers("b") == 1 && gauge("feeds_polled") == 0 })
	if got := counterValue(t, s.Metrics.LimitRefusals.WithLabelValues("MAX_FEEDS")); got != 0 {
		t.Errorf("MAX_FEEDS refusals = %v, want 0", got)
	}
}

// TestFeedsOfAnotherNamespace: one namespace holding every watch place
// (the 200 streams of evil) does not keep another from push.
func TestFeedsOfAnotherNamespace(t *testing.T) {
	t.Setenv("MAX_FEEDS", "200")
	f := newFake()
	s := scalertest.Serve(t, f, scalertest.Options{})
	for i := range 200 {
		ch, _ := openActive(t, s, refIn("evil", fmt.Sprint("so", i), map[string]string{"key": fmt.Sprint("e", i)}))
		scalertest.Next(t, ch, answer, "evil's StreamIsActive")
	}
	wait.For(t, answer, "evil's 200 feeds to be watched", func() bool {
		return gaugeValue(t, s.Metrics.Held.WithLabelValues("feeds")) == 200
	})
	f.set("g", 1)
	g, _ := openActive(t, s, refIn("good", "so", map[string]string{"key": "g"}))
	if m := scalertest.Next(t, g, answer, "good's StreamIsActive"); !m.Result {
		t.Fatalf("good's first message = %v, want active", m.Result)
	}
	wait.For(t, answer, "good's feed to be watched", func() bool { return f.watchers("g") == 1 })
	if got := gaugeValue(t, s.Metrics.HeldLargest.WithLabelValues("feeds")); got != 199 {
		t.Errorf("largest namespace holds %v feeds, want 199", got)
	}
	if got := counterValue(t, s.Metrics.PlacesTaken.WithLabelValues("feeds")); got != 1 {
		t.Errorf("feed places taken = %v, want 1", got)
	}
	wait.For(t, answer, "evil's feed without a place to poll", func() bool {
		return gaugeValue(t, s.Metrics.Held.WithLabelValues("feeds_polled")) == 1
	})
}

// TestFeedsOfAnHonestCluster: 600 push streams in 60 namespaces with
// MAX_FEEDS=200 all open and are answered; every namespace is watched for
// at least its share.
func TestFeedsOfAnHonestCluster(t *testing.T) {
	const namespaces, each, places = 60, 10, 200
	t.Setenv("MAX_FEEDS", fmt.Sprint(places))
	f := newFake()
	s := scalertest.Serve(t, f, scalertest.Options{PushInterval: 2 * time.Second})
	for n := range namespaces {
		for i := range each {
			ch, _ := openActive(t, s, refIn(fmt.Sprint("ns", n), fmt.Sprint("so", i), map[string]string{"key": fmt.Sprintf("ns%d-k%d", n, i)}))
			scalertest.Next(t, ch, answer, fmt.Sprintf("StreamIsActive ns%d/so%d", n, i))
		}
	}
	watched := func() (total, least int) {
		least = each
		for n := range namespaces {
			w := 0
			for i := range each {
				w += f.watchers(fmt.Sprintf("ns%d-k%d", n, i))
			}
			total += w
			least = min(least, w)
		}
		return total, least
	}
	wait.For(t, answer, "the watch places to settle", func() bool {
		total, least := watched()
		return total == places && least >= places/namespaces &&
			gaugeValue(t, s.Metrics.Held.WithLabelValues("feeds_polled")) == namespaces*each-places
	})
	if got := gaugeValue(t, s.Metrics.OpenStreams.WithLabelValues("StreamIsActive")); got != namespaces*each {
		t.Errorf("open streams = %v, want %d", got, namespaces*each)
	}
	if got := counterValue(t, s.Metrics.LimitRefusals.WithLabelValues("MAX_FEEDS")); got != 0 {
		t.Errorf("MAX_FEEDS refusals = %v, want 0", got)
	}
}

// TestTargetReadersOfAnotherNamespace: one namespace's 100 StreamMetricSpec
// (every reader place) do not keep another from GetMetricSpec: it takes
// its first place, answers the static target until the reader has read,
// then the read target; evil's newest stream falls back to its static
// target.
func TestTargetReadersOfAnotherNamespace(t *testing.T) {
	t.Setenv("MAX_TARGET_READERS", "100")
	f := newFake()
	s := scalertest.Serve(t, f, scalertest.Options{PushInterval: 100 * time.Millisecond})
	var last <-chan *pb.GetMetricSpecResponse
	for i := range 100 {
		key := fmt.Sprint("cap", i)
		f.set(key, 20)
		last, _ = openSpec(t, s, refIn("evil", fmt.Sprint("so", i), map[string]string{"key": "v", "target": "5", "targetKey": key}))
		nextTarget(t, last, 20, "evil's StreamMetricSpec")
	}
	f.set("capg", 30)
	good := refIn("good", "so", map[string]string{"key": "v", "target": "5", "targetKey": "capg"})
	target, warnings := specWithHeader(t, s, good)
	if target != 5 && target != 30 || len(warnings) != 0 {
		t.Fatalf("good's GetMetricSpec = %v, warnings %q; want its static 5 (or 30, once read) and no warning", target, warnings)
	}
	wait.For(t, answer, "good's target read from the backend", func() bool {
		target, _ := specWithHeader(t, s, good)
		return target == 30
	})
	nextTarget(t, last, 5, "evil's newest stream, its reader place taken")
	if got := counterValue(t, s.Metrics.PlacesTaken.WithLabelValues("target_readers")); got != 1 {
		t.Errorf("reader places taken = %v, want 1", got)
	}
	if got := counterValue(t, s.Metrics.LimitRefusals.WithLabelValues("MAX_TARGET_READERS")); got != 0 {
		t.Errorf("MAX_TARGET_READERS refusals = %v, want 0", got)
	}
}

// TestMaxTargetReadersStaticTarget: a namespace at its share of reader
// places is answered its static target with a warning, by GetMetricSpec
// and StreamMetricSpec alike, and gets the read target once a place
// frees.
func TestMaxTargetReadersStaticTarget(t *testing.T) {
	t.Setenv("MAX_TARGET_READERS", "2")
	f := newFake()
	for k, v := range map[string]float64{"cap1": 20, "capg1": 30, "capg2": 40} {
		f.set(k, v)
	}
	logs := &wait.Buffer{}
	s := scalertest.Serve(t, f, scalertest.Options{PushInterval: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	md := func(key string) map[string]string {
		return map[string]string{"key": "v", "target": "5", "targetKey": key}
	}
	evil, _ := openSpec(t, s, refIn("evil", "so", md("cap1")))
	nextTarget(t, evil, 20, "evil's StreamMetricSpec")
	g1, leaveG1 := openSpec(t, s, refIn("good", "g1", md("capg1")))
	nextTarget(t, g1, 30, "good's first StreamMetricSpec")

	// good holds its share (1 of 2), both streamed: its second target is
	// the static one, with a warning, never refused.
	g2 := refIn("good", "g2", md("capg2"))
	target, warnings := specWithHeader(t, s, g2)
	if target != 5 || len(warnings) != 1 || !strings.Contains(warnings[0], "MAX_TARGET_READERS=2") || !strings.Contains(warnings[0], "static target") {
		t.Fatalf("GetMetricSpec(g2) at good's share = %v, warnings %q; want 5 and a warning naming MAX_TARGET_READERS=2", target, warnings)
	}
	g2stream, _ := openSpec(t, s, g2)
	nextTarget(t, g2stream, 5, "good's second StreamMetricSpec, without a reader")
	for _, w := range []string{"level=WARN", "static target: no target reader place", "scaledObject.namespace=good", "MAX_TARGET_READERS"} {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("log lacks %q:\n%s", w, logs.String())
		}
	}
	// good's first stream leaves: its idle reader makes room for g2,
	// whose stream asks again every PUSH_INTERVAL.
	leaveG1()
	nextTarget(t, g2stream, 40, "good's second StreamMetricSpec once a place freed")
	if target, warnings := specWithHeader(t, s, g2); target != 40 || len(warnings) != 0 {
		t.Errorf("GetMetricSpec(g2) with a reader = %v, warnings %q; want 40, none", target, warnings)
	}
	if got := counterValue(t, s.Metrics.Evictions.WithLabelValues("target_readers")); got != 1 {
		t.Errorf("evictions = %v, want 1 (g1's idle reader)", got)
	}
	if got := counterValue(t, s.Metrics.LimitRefusals.WithLabelValues("MAX_TARGET_READERS")); got != 0 {
		t.Errorf("MAX_TARGET_READERS refusals = %v, want 0", got)
	}
}

// TestStreamMetricSpecReaderLost: a stream whose reader place is taken
// for another namespace falls back to its static target and gets the read
// target back once a place frees.
func TestStreamMetricSpecReaderLost(t *testing.T) {
	t.Setenv("MAX_TARGET_READERS", "1")
	f := newFake()
	f.set("cap1", 20)
	f.set("capg", 30)
	s := scalertest.Serve(t, f, scalertest.Options{PushInterval: 50 * time.Millisecond})
	md := func(key string) map[string]string {
		return map[string]string{"key": "v", "target": "5", "targetKey": key}
	}
	evil, _ := openSpec(t, s, refIn("evil", "so", md("cap1")))
	nextTarget(t, evil, 20, "evil's StreamMetricSpec")
	good, leaveGood := openSpec(t, s, refIn("good", "so", md("capg")))
	nextTarget(t, good, 30, "good's StreamMetricSpec, its first place taken from evil")
	nextTarget(t, evil, 5, "evil's stream, its reader place taken")
	// evil asks again every PUSH_INTERVAL but takes no single place back.
	scalertest.None(t, evil, 200*time.Millisecond, "evil's stream while good holds the only place")
	leaveGood()
	nextTarget(t, evil, 20, "evil's stream once good's reader is idle")
}
