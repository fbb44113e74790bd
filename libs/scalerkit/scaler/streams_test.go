package scaler_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// pushStream is one StreamIsActive as KEDA holds it: first is its first
// message, ended receives how it ended.
type pushStream struct {
	first *pb.IsActiveResponse
	ended chan error
}

// openPush opens StreamIsActive for ref and waits for its first message,
// or returns how the stream ended before one.
func openPush(t *testing.T, s *scalertest.Scaler, ref *pb.ScaledObjectRef) (*pushStream, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := s.Client.StreamIsActive(ctx, ref)
	if err != nil {
		return nil, err
	}
	first, err := st.Recv()
	if err != nil {
		return nil, err
	}
	p := &pushStream{first: first, ended: make(chan error, 1)}
	go func() {
		for {
			if _, err := st.Recv(); err != nil {
				p.ended <- err
				return
			}
		}
	}()
	return p, nil
}

// TestPushStreamsPerNamespace: one namespace holds at most
// MAX_PUSH_STREAMS_PER_NAMESPACE streams, even with places free; another
// namespace opens its own.
func TestPushStreamsPerNamespace(t *testing.T) {
	t.Setenv("MAX_PUSH_STREAMS_PER_NAMESPACE", "2")
	f := newFake()
	s := scalertest.Serve(t, f, scalertest.Options{})
	for _, name := range []string{"a1", "a2"} {
		if _, err := openPush(t, s, refIn("evil", name, map[string]string{"key": name})); err != nil {
			t.Fatalf("evil's stream %s: %v", name, err)
		}
	}
	_, err := openPush(t, s, refIn("evil", "a3", map[string]string{"key": "a3"}))
	wantRefused(t, "evil's third stream", err, codes.ResourceExhausted, "MAX_PUSH_STREAMS_PER_NAMESPACE", `"evil"`)
	if _, err := openPush(t, s, refIn("good", "b", map[string]string{"key": "b"})); err != nil {
		t.Fatalf("good's stream beside evil's: %v", err)
	}
	if got := counterValue(t, s.Metrics.LimitRefusals.WithLabelValues("MAX_PUSH_STREAMS_PER_NAMESPACE")); got != 1 {
		t.Errorf("MAX_PUSH_STREAMS_PER_NAMESPACE refusals = %v, want 1", got)
	}
}

// TestPushStreamsFairShare: at MAX_PUSH_STREAMS, a namespace under its
// share takes the newest stream of the namespace holding the most, which
// ends cleanly (KEDA reopens it at once, its backoff reset), and whose
// reopening is refused while it holds its share.
func TestPushStreamsFairShare(t *testing.T) {
	t.Setenv("MAX_PUSH_STREAMS", "4")
	f := newFake()
	s := scalertest.Serve(t, f, scalertest.Options{})
	var evil []*pushStream
	for _, name := range []string{"e1", "e2", "e3", "e4"} {
		p, err := openPush(t, s, refIn("evil", name, map[string]string{"key": name}))
		if err != nil {
			t.Fatalf("evil's stream %s with places free: %v", name, err)
		}
		evil = append(evil, p)
	}
	for i, name := range []string{"g1", "g2"} { // good's share: 4 / 2
		if _, err := openPush(t, s, refIn("good", name, map[string]string{"key": name})); err != nil {
			t.Fatalf("good's stream %s under its share: %v", name, err)
		}
		// evil's newest stream gave its place: it ends with OK.
		if err := <-evil[3-i].ended; !errors.Is(err, io.EOF) {
			t.Fatalf("evil's stream %d after good took its place: %v, want a clean end (io.EOF)", 4-i, err)
		}
	}
	for i := range 2 {
		select {
		case err := <-evil[i].ended:
			t.Fatalf("evil's stream %d within its share ended: %v", i+1, err)
		default:
		}
	}
	_, err := openPush(t, s, refIn("evil", "e3", map[string]string{"key": "e3"}))
	wantRefused(t, "evil reopening at its share", err, codes.ResourceExhausted, "MAX_PUSH_STREAMS", `"evil"`)
	_, err = openPush(t, s, refIn("good", "g3", map[string]string{"key": "g3"}))
	wantRefused(t, "good past its share", err, codes.ResourceExhausted, "MAX_PUSH_STREAMS", `"good"`)
	if got := counterValue(t, s.Metrics.PlacesTaken.WithLabelValues("push_streams")); got != 2 {
		t.Errorf("push_streams places taken = %v, want 2", got)
	}
	if got := gaugeValue(t, s.Metrics.HeldLargest.WithLabelValues("push_streams")); got != 2 {
		t.Errorf("push_streams held by the largest namespace = %v, want 2", got)
	}
}

// TestStaticSpecStreamHoldsNoPlace: a static target's StreamMetricSpec
// ends Unimplemented at once, even with every stream place taken.
func TestStaticSpecStreamHoldsNoPlace(t *testing.T) {
	t.Setenv("MAX_PUSH_STREAMS", "1")
	f := newFake()
	s := scalertest.Serve(t, f, scalertest.Options{})
	if _, err := openPush(t, s, refIn("a", "push", map[string]string{"key": "k"})); err != nil {
		t.Fatal(err)
	}
	st, err := s.Client.StreamMetricSpec(ctxT(t), refIn("a", "push", map[string]string{"key": "k"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatalf("static spec: %v, want the spec first", err)
	}
	if _, err := st.Recv(); status.Code(err) != codes.Unimplemented {
		t.Fatalf("static spec stream ended %v, want Unimplemented", err)
	}
}
