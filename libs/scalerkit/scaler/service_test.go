package scaler_test

import (
	"context"
	"errors"
	"io"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPoll(t *testing.T) {
	f := newFake()
	f.set("sessions", 42)
	f.set("on", 1)
	f.set("off", 0)
	f.set("frac", 0.5)
	s := scalertest.Serve(t, f, scalertest.Options{})
	tests := []struct {
		name string
		md   map[string]string
		want scalertest.Poll
	}{
		{"defaults", map[string]string{"key": "sessions"}, scalertest.Poll{MetricName: "fake_value", Target: 10, Value: 42, Active: true}},
		{"kedas own keys are ignored", map[string]string{"key": "sessions", "scalerAddress": "x:9090", "enableTLS": "false"},
			scalertest.Poll{MetricName: "fake_value", Target: 10, Value: 42, Active: true}},
		{"fractional target", map[string]string{"key": "sessions", "target": "2.5", "metricName": "my_metric"},
			scalertest.Poll{MetricName: "my_metric", Target: 2.5, Value: 42, Active: true}},
		{"at the threshold is inactive", map[string]string{"key": "sessions", "activation": "42"},
			scalertest.Poll{MetricName: "fake_value", Target: 10, Value: 42, Active: false}},
		{"above the threshold is active", map[string]string{"key": "sessions", "activation": "41.5"},
			scalertest.Poll{MetricName: "fake_value", Target: 10, Value: 42, Active: true}},
		{"zero is inactive", map[string]string{"key": "missing"}, scalertest.Poll{MetricName: "fake_value", Target: 10}},
		{"switch on beats the threshold", map[string]string{"key": "missing", "switchKey": "on"},
			scalertest.Poll{MetricName: "fake_value", Target: 10, Value: 0, Active: true}},
		{"switch off beats the threshold", map[string]string{"key": "sessions", "switchKey": "off"},
			scalertest.Poll{MetricName: "fake_value", Target: 10, Value: 42, Active: false}},
		{"fraction", map[string]string{"key": "frac"}, scalertest.Poll{MetricName: "fake_value", Target: 10, Value: 0.5, Active: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Poll(ctxT(t), tt.md)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("poll = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestIntFields checks the deprecated int64 fields: target rounded up,
// value rounded half away from zero.
func TestIntFields(t *testing.T) {
	f := newFake()
	s := scalertest.Serve(t, f, scalertest.Options{CacheTTL: -1})
	tests := []struct {
		target, value       float64
		wantTarget, wantVal int64
	}{
		{2.5, 0.5, 3, 1},
		{10, 42, 10, 42},
		{0.1, 0.49, 1, 0},
		{100, 1e30, 100, math.MaxInt64},
	}
	for _, tt := range tests {
		f.set("v", tt.value)
		md := map[string]string{"key": "v", "target": strconvF(tt.target)}
		spec, err := s.Client.GetMetricSpec(ctxT(t), scalertest.Ref(md))
		if err != nil {
			t.Fatal(err)
		}
		if got := spec.MetricSpecs[0]; got.TargetSize != tt.wantTarget || got.TargetSizeFloat != tt.target {
			t.Errorf("target %v: spec = %v, want int %d", tt.target, got, tt.wantTarget)
		}
		vals, err := s.Client.GetMetrics(ctxT(t), &pb.GetMetricsRequest{ScaledObjectRef: scalertest.Ref(md), MetricName: "fake_value"})
		if err != nil {
			t.Fatal(err)
		}
		if len(vals.MetricValues) != 1 {
			t.Fatalf("got %d metric values, want exactly 1", len(vals.MetricValues))
		}
		if got := vals.MetricValues[0]; got.MetricValue != tt.wantVal || got.MetricValueFloat != tt.value || got.MetricName != "fake_value" {
			t.Errorf("value %v: got %v, want int %d", tt.value, got, tt.wantVal)
		}
	}
}

func strconvF(f float64) string { return fmtFloat(f) }

func TestBadMetadata(t *testing.T) {
	f := newFake()
	f.set("v", 1)
	s := scalertest.Serve(t, f, scalertest.Options{})
	tests := []struct {
		md      map[string]string
		wantKey string
	}{
		{map[string]string{}, `"key"`},
		{map[string]string{"key": "v", "target": "abc"}, `"target"="abc"`},
		{map[string]string{"key": "v", "target": "-1"}, `"target"="-1"`},
		{map[string]string{"key": "v", "target": "0"}, `"target"="0"`},
		{map[string]string{"key": "v", "target": "NaN"}, `"target"="NaN"`},
		{map[string]string{"key": "v", "activation": "-0.5"}, `"activation"`},
		{map[string]string{"key": "v", "onError": "maybe"}, `"onError"="maybe"`},
		{map[string]string{"key": "v", "metricName": "Has Spaces"}, `"metricName"`},
	}
	for _, tt := range tests {
		ref := scalertest.Ref(tt.md)
		calls := map[string]func() error{
			"GetMetricSpec": func() error { _, err := s.Client.GetMetricSpec(ctxT(t), ref); return err },
			"GetMetrics": func() error {
				_, err := s.Client.GetMetrics(ctxT(t), &pb.GetMetricsRequest{ScaledObjectRef: ref})
				return err
			},
			"IsActive": func() error { _, err := s.Client.IsActive(ctxT(t), ref); return err },
			"StreamIsActive": func() error {
				st, err := s.Client.StreamIsActive(ctxT(t), ref)
				if err == nil {
					_, err = st.Recv()
				}
				return err
			},
			"StreamMetricSpec": func() error {
				st, err := s.Client.StreamMetricSpec(ctxT(t), ref)
				if err == nil {
					_, err = st.Recv()
				}
				return err
			},
		}
		for rpc, call := range calls {
			err := call()
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tt.wantKey) {
				t.Errorf("%s(%v) = %v, want InvalidArgument naming %s", rpc, tt.md, err, tt.wantKey)
			}
		}
	}
	// The service is still up.
	if _, err := s.Poll(ctxT(t), map[string]string{"key": "v"}); err != nil {
		t.Fatalf("good request after bad ones: %v", err)
	}
}

func TestBackendErrors(t *testing.T) {
	f := newFake()
	f.setErr("down", errDown)
	f.hold("slow")
	f.panics["boom"] = true
	f.set("nan", math.NaN())
	f.set("inf", math.Inf(1))
	s := scalertest.Serve(t, f, scalertest.Options{BackendTimeout: 200 * time.Millisecond})
	tests := []struct {
		name     string
		md       map[string]string
		wantCode codes.Code
		wantMsg  string
	}{
		{"outage is unavailable", map[string]string{"key": "down"}, codes.Unavailable, "connection refused"},
		{"hang is bounded", map[string]string{"key": "slow"}, codes.DeadlineExceeded, "within 200ms"},
		{"panic is internal", map[string]string{"key": "boom"}, codes.Internal, "fake backend exploded"},
		{"NaN is refused", map[string]string{"key": "nan"}, codes.OutOfRange, "NaN"},
		{"Inf is refused", map[string]string{"key": "inf"}, codes.OutOfRange, "Inf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := scalertest.Ref(tt.md)
			start := time.Now()
			_, err := s.Client.GetMetrics(ctxT(t), &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: "fake_value"})
			if status.Code(err) != tt.wantCode || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("GetMetrics = %v, want %v containing %q", err, tt.wantCode, tt.wantMsg)
			}
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("GetMetrics took %v, want it bounded by the backend timeout", elapsed)
			}
			_, err = s.Client.IsActive(ctxT(t), ref)
			if status.Code(err) != tt.wantCode {
				t.Errorf("IsActive = %v, want %v", err, tt.wantCode)
			}
			// With onError=inactive the same failure reads as 0 and inactive.
			md := map[string]string{"key": tt.md["key"], "onError": "inactive"}
			got, err := s.Poll(ctxT(t), md)
			if err != nil || got.Value != 0 || got.Active {
				t.Errorf("onError=inactive: poll = %+v, %v; want 0, inactive, no error", got, err)
			}
		})
	}
	// Errors are not kept: once the backend is back, so is the value.
	f.setErr("down", nil)
	f.set("down", 3)
	got, err := s.Poll(ctxT(t), map[string]string{"key": "down"})
	if err != nil || got.Value != 3 {
		t.Errorf("after recovery: %+v, %v; want value 3", got, err)
	}
}

func TestCoalescing(t *testing.T) {
	f := newFake()
	f.set("v", 7)
	s := scalertest.Serve(t, f, scalertest.Options{CacheTTL: time.Minute})
	md := map[string]string{"key": "v"}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Client.GetMetrics(ctxT(t), &pb.GetMetricsRequest{ScaledObjectRef: scalertest.Ref(md), MetricName: "fake_value"})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Client.IsActive(ctxT(t), scalertest.Ref(md)); err != nil {
		t.Fatal(err)
	}
	// Differently spelled metadata asking the same question shares too.
	if _, err := s.Client.IsActive(ctxT(t), scalertest.Ref(map[string]string{"key": "v", "activation": "3", "scalerAddress": "a"})); err != nil {
		t.Fatal(err)
	}
	if n := f.readCount("v"); n != 1 {
		t.Errorf("100 GetMetrics and 2 IsActive cost %d backend reads, want 1", n)
	}
	if got := s.Metrics.CacheRequests.WithLabelValues("miss"); counterValue(t, got) != 1 {
		t.Errorf("cache misses = %v, want 1", counterValue(t, got))
	}
}

func TestNoCacheStillCoalesces(t *testing.T) {
	f := newFake()
	f.set("v", 1)
	s := scalertest.Serve(t, f, scalertest.Options{CacheTTL: -1})
	for range 3 {
		if _, err := s.Poll(ctxT(t), map[string]string{"key": "v"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.readCount("v"); n != 6 {
		t.Errorf("3 polls without a cache cost %d reads, want 6 (GetMetrics and IsActive each)", n)
	}
}

func TestGetMetricSpecDoesNoIO(t *testing.T) {
	f := newFake()
	f.set("v", 1)
	f.set("capacity", 25)
	s := scalertest.Serve(t, f, scalertest.Options{PushInterval: 50 * time.Millisecond})
	for range 10 {
		if _, err := s.Client.GetMetricSpec(ctxT(t), scalertest.Ref(map[string]string{"key": "v"})); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.readCount("v"); n != 0 {
		t.Errorf("GetMetricSpec read the backend %d times, want 0", n)
	}

	// A target read from the backend: the fallback first, then the reading
	// made in the background.
	f.hold("capacity")
	md := map[string]string{"key": "v", "target": "10", "targetKey": "capacity"}
	start := time.Now()
	spec, err := s.Client.GetMetricSpec(ctxT(t), scalertest.Ref(md))
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.MetricSpecs[0].TargetSizeFloat; got != 10 {
		t.Errorf("first target = %v, want the fallback 10", got)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("GetMetricSpec waited %v for a blocked backend", elapsed)
	}
	f.release("capacity")
	wait.For(t, 5*time.Second, "the target read in the background", func() bool {
		spec, err := s.Client.GetMetricSpec(ctxT(t), scalertest.Ref(md))
		return err == nil && spec.MetricSpecs[0].TargetSizeFloat == 25
	})
	// A bad target keeps the last good one.
	f.set("capacity", -3)
	time.Sleep(200 * time.Millisecond)
	spec, err = s.Client.GetMetricSpec(ctxT(t), scalertest.Ref(md))
	if err != nil || spec.MetricSpecs[0].TargetSizeFloat != 25 {
		t.Errorf("after a bad target: %v, %v; want 25 kept", spec, err)
	}
}

func TestStreamIsActive(t *testing.T) {
	f := newFake()
	f.set("v", 0)
	interval := 100 * time.Millisecond
	s := scalertest.Serve(t, f, scalertest.Options{PushInterval: interval, CacheTTL: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	st, err := s.Client.StreamIsActive(ctx, scalertest.Ref(map[string]string{"key": "v", "activation": "5"}))
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan bool, 10)
	go func() {
		defer close(msgs)
		for {
			m, err := st.Recv()
			if err != nil {
				return
			}
			msgs <- m.Result
		}
	}()
	expect := func(want bool, within time.Duration) {
		t.Helper()
		select {
		case got, ok := <-msgs:
			if !ok || got != want {
				t.Fatalf("stream sent %v (open=%v), want %v", got, ok, want)
			}
		case <-time.After(within):
			t.Fatalf("no message within %v, want %v", within, want)
		}
	}
	expectNone := func(d time.Duration) {
		t.Helper()
		select {
		case got := <-msgs:
			t.Fatalf("stream sent %v, want nothing while nothing changes", got)
		case <-time.After(d):
		}
	}
	expect(false, time.Second) // the current state at once
	expectNone(3 * interval)
	f.set("v", 6)
	expect(true, 3*interval) // within one push interval (plus cache TTL)
	f.set("v", 9)
	expectNone(4 * interval) // still active: no repeated true
	f.set("v", 1)
	expect(false, 3*interval)
	cancel()
	for range msgs { // the stream ends when the client leaves
	}
}

func TestStreamIsActiveWatch(t *testing.T) {
	f := newFake()
	s := scalertest.Serve(t, f, scalertest.Options{PushInterval: time.Hour, CacheTTL: time.Hour})
	st, err := s.Client.StreamIsActive(ctxT(t), scalertest.Ref(map[string]string{"key": "w"}))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := st.Recv(); err != nil || m.Result {
		t.Fatalf("first message = %v, %v; want false", m, err)
	}
	wait.For(t, 5*time.Second, "the watcher to start", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.changed["w"]) > 0
	})
	f.set("w", 1)
	start := time.Now()
	f.notify("w") // the change signal drops the hour-long cached reading
	m, err := st.Recv()
	if err != nil || !m.Result {
		t.Fatalf("after the change signal: %v, %v; want true", m, err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("true came %v after the signal, want well under a second", elapsed)
	}
}

// TestStreamsShareOneFeed: many streams on one question cost one backend
// read per interval, not one per stream.
func TestStreamsShareOneFeed(t *testing.T) {
	f := newFake()
	interval := 200 * time.Millisecond
	s := scalertest.Serve(t, f, scalertest.Options{PushInterval: interval, CacheTTL: -1})
	ctx, cancel := context.WithCancel(ctxT(t))
	var wg sync.WaitGroup
	for i := range 20 {
		st, err := s.Client.StreamIsActive(ctx, scalertest.Ref(map[string]string{"key": "shared", "activation": strconvF(float64(i))}))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, err := st.Recv(); err != nil {
					return
				}
			}
		}()
	}
	before := f.readCount("shared")
	time.Sleep(5 * interval)
	reads := f.readCount("shared") - before
	cancel()
	wg.Wait()
	if reads > 7 {
		t.Errorf("20 streams over 5 intervals cost %d reads, want about 5", reads)
	}
}

func TestStreamMetricSpec(t *testing.T) {
	f := newFake()
	f.set("capacity", 20)
	s := scalertest.Serve(t, f, scalertest.Options{PushInterval: 50 * time.Millisecond, CacheTTL: -1})
	md := map[string]string{"key": "v", "target": "5", "targetKey": "capacity"}
	st, err := s.Client.StreamMetricSpec(ctxT(t), scalertest.Ref(md))
	if err != nil {
		t.Fatal(err)
	}
	first, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := first.MetricSpecs[0].TargetSizeFloat; got != 5 && got != 20 {
		t.Fatalf("first spec target = %v, want the fallback 5 or the read 20", got)
	}
	if first.MetricSpecs[0].TargetSizeFloat == 5 {
		m, err := st.Recv()
		if err != nil || m.MetricSpecs[0].TargetSizeFloat != 20 {
			t.Fatalf("second spec = %v, %v; want target 20", m, err)
		}
	}
	f.set("capacity", 40)
	m, err := st.Recv()
	if err != nil || m.MetricSpecs[0].TargetSizeFloat != 40 || m.MetricSpecs[0].TargetSize != 40 {
		t.Fatalf("after the change: %v, %v; want target 40", m, err)
	}
	spec, err := s.Client.GetMetricSpec(ctxT(t), scalertest.Ref(md))
	if err != nil || spec.MetricSpecs[0].TargetSizeFloat != 40 {
		t.Errorf("GetMetricSpec = %v, %v; want 40 like the stream", spec, err)
	}

}

// TestStreamMetricSpecStaticTarget: a static target is sent once, then the
// stream ends Unimplemented (KEDA stops watching it, silently) and holds
// nothing open.
func TestStreamMetricSpecStaticTarget(t *testing.T) {
	f := newFake()
	s := scalertest.Serve(t, f, scalertest.Options{})
	st, err := s.Client.StreamMetricSpec(ctxT(t), scalertest.Ref(map[string]string{"key": "v", "target": "3"}))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := st.Recv(); err != nil || m.MetricSpecs[0].TargetSizeFloat != 3 {
		t.Fatalf("static spec = %v, %v", m, err)
	}
	_, err = st.Recv()
	// scalerctl watch tells this end by the message's prefix.
	if status.Code(err) != codes.Unimplemented || !strings.HasPrefix(status.Convert(err).Message(), "static target") {
		t.Fatalf("after the static spec: %v, want Unimplemented naming the static target", err)
	}
}

// TestShutdownEndsStreams: on shutdown push streams end cleanly (io.EOF,
// so KEDA reopens in 2 s) and the server stops without waiting for them.
func TestShutdownEndsStreams(t *testing.T) {
	f := newFake()
	s := scalertest.Serve(t, f, scalertest.Options{ShutdownTimeout: 30 * time.Second})
	a, err := s.Client.StreamIsActive(ctxT(t), scalertest.Ref(map[string]string{"key": "v"}))
	if err != nil {
		t.Fatal(err)
	}
	f.set("capacity", 7)
	b, err := s.Client.StreamMetricSpec(ctxT(t), scalertest.Ref(map[string]string{"key": "v", "targetKey": "capacity"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, recv := range []func() error{
		func() error { _, err := a.Recv(); return err },
		func() error { _, err := b.Recv(); return err },
	} {
		if err := recv(); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := s.Shutdown(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("shutdown took %v with open streams", elapsed)
	}
	if _, err := a.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("StreamIsActive after shutdown: %v, want io.EOF (a clean end)", err)
	}
	err = nil
	for err == nil {
		_, err = b.Recv() // the read target may come before the end
	}
	if !errors.Is(err, io.EOF) {
		t.Errorf("StreamMetricSpec after shutdown: %v, want io.EOF (a clean end)", err)
	}
}

// TestFeedIgnoresLongCacheTTL: a push feed reads every interval even when
// CACHE_TTL is longer, so a change is pushed within one interval.
func TestFeedIgnoresLongCacheTTL(t *testing.T) {
	f := newFake()
	interval := 100 * time.Millisecond
	s := scalertest.Serve(t, f, scalertest.Options{PushInterval: interval, CacheTTL: time.Hour})
	st, err := s.Client.StreamIsActive(ctxT(t), scalertest.Ref(map[string]string{"key": "nowatch"}))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := st.Recv(); err != nil || m.Result {
		t.Fatalf("first message = %v, %v; want false", m, err)
	}
	f.set("nowatch", 1) // no change signal: only the interval can see it
	start := time.Now()
	if m, err := st.Recv(); err != nil || !m.Result {
		t.Fatalf("after the change: %v, %v; want true", m, err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("true came after %v with an hour-long CACHE_TTL, want about one interval", elapsed)
	}
}

// TestStreamIsActiveOutlivesOutage: a backend outage does not end a push
// stream (an error end would make KEDA back off, up to a minute): the
// stream stays open, says nothing while reads fail, and pushes the next
// change once the backend is back.
func TestStreamIsActiveOutlivesOutage(t *testing.T) {
	f := newFake()
	f.set("v", 0)
	interval := 50 * time.Millisecond
	s := scalertest.Serve(t, f, scalertest.Options{PushInterval: interval, CacheTTL: -1})
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	st, err := s.Client.StreamIsActive(ctx, scalertest.Ref(map[string]string{"key": "v"}))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := st.Recv(); err != nil || m.Result {
		t.Fatalf("first message %v, %v; want false", m, err)
	}
	f.setErr("v", errDown)
	ended := make(chan error, 1)
	msgs := make(chan bool, 4)
	go func() {
		for {
			m, err := st.Recv()
			if err != nil {
				ended <- err
				return
			}
			msgs <- m.Result
		}
	}()
	select {
	case err := <-ended:
		t.Fatalf("stream ended during the outage: %v", err)
	case m := <-msgs:
		t.Fatalf("stream sent %v during the outage, want nothing", m)
	case <-time.After(10 * interval):
	}
	f.setErr("v", nil)
	f.set("v", 3)
	select {
	case m := <-msgs:
		if !m {
			t.Fatalf("after the outage: %v, want true", m)
		}
	case err := <-ended:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5 s of the backend coming back")
	}
}
