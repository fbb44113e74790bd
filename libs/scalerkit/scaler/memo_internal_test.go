package scaler

import (
	"context"
	"log/slog"
	"maps"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metrics"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

func TestTriggerMemo(t *testing.T) {
	var evicted, held int
	m := newTriggerMemo(2, 1<<20, func() { evicted++ }, func(n int) { held = n })
	a := map[string]string{"k": "v", "x": "y"}
	aSwapped := map[string]string{"x": "y", "k": "v"}
	b := map[string]string{"k": "y", "x": "v"} // the same keys and values, paired otherwise

	sizeA, hashA := m.measure(a)
	if _, h := m.measure(aSwapped); h != hashA {
		t.Error("the hash depends on the order of the entries")
	}
	if sizeA != 4 {
		t.Errorf("size = %d, want 4", sizeA)
	}
	if _, h := m.measure(b); h == hashA {
		t.Error("entries paired otherwise hash the same")
	}

	pa := &parsed{md: a}
	m.put(hashA, pa)
	if got := m.get(hashA, aSwapped); got != pa {
		t.Errorf("get of equal metadata = %v, want the kept parse", got)
	}
	if got := m.get(hashA, b); got != nil {
		t.Error("a hash match with other metadata answered: it must be checked")
	}

	for i, md := range []map[string]string{{"n": "1"}, {"n": "2"}, {"n": "3"}} {
		_, h := m.measure(md)
		m.put(h, &parsed{md: maps.Clone(md)})
		if held > 2 {
			t.Fatalf("after put %d: held %d, want <= 2", i, held)
		}
		if got := m.get(h, md); got == nil {
			t.Fatalf("after put %d: the newest parse was dropped", i)
		}
	}
	if held != 2 || evicted != 2 {
		t.Errorf("held %d, evicted %d; want 2 and 2", held, evicted)
	}
}

// TestTriggerMemoBytes: the parses kept weigh at most maxBytes; large
// ones make room for a new one, which is always kept.
func TestTriggerMemoBytes(t *testing.T) {
	tests := []struct {
		name      string
		sizes     []int
		wantHeld  int
		wantBytes int
	}{
		{"under the bound", []int{10, 20, 30}, 3, 60},
		{"at the bound", []int{50, 50}, 2, 100},
		{"past it", []int{60, 50}, 1, 50},
		{"one larger than the bound", []int{10, 200}, 1, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var held, evicted int
			m := newTriggerMemo(100, 100, func() { evicted++ }, func(n int) { held = n })
			var last uint64
			for i, size := range tc.sizes {
				md := map[string]string{"n": string(rune('a' + i))}
				_, last = m.measure(md)
				m.put(last, &parsed{md: md, size: size})
			}
			if held != tc.wantHeld || m.bytes != tc.wantBytes || evicted != len(tc.sizes)-tc.wantHeld {
				t.Errorf("held %d (%d bytes), evicted %d; want %d (%d bytes), %d", held, m.bytes, evicted, tc.wantHeld, tc.wantBytes, len(tc.sizes)-tc.wantHeld)
			}
			if v, ok := m.byHash.Load(last); !ok || v.(*parsed).size != tc.sizes[len(tc.sizes)-1] {
				t.Error("the newest parse was dropped")
			}
		})
	}
}

// countingBackend parses "key" into a trigger and counts its parses.
type countingBackend struct{ parses atomic.Int64 }

type constProbe struct {
	NoChanges
	key string
}

func (p constProbe) Key() string                           { return p.key }
func (p constProbe) Read(context.Context) (Reading, error) { return Reading{Value: 1}, nil }

func (b *countingBackend) Parse(p *metadata.Parser) (*Trigger, error) {
	b.parses.Add(1)
	key := p.String("key", "")
	return &Trigger{MetricName: "m", Target: 1, Probe: constProbe{key: key}}, p.Err()
}

func (b *countingBackend) Close() error { return nil }

// The memo keeps a copy of the metadata it parsed: a caller that reuses
// and changes its map after a call neither hides the kept parse from equal
// metadata nor races with the calls that compare against it.
func TestTriggerMemoOwnsMetadata(t *testing.T) {
	b := &countingBackend{}
	s := New(b, Options{CacheTTL: time.Second, PushInterval: time.Second, BackendTimeout: time.Second, TargetLease: time.Second,
		MaxQuestions: 10, MaxQuestionBytes: 1 << 20, MaxFeeds: 1, MaxTargetReaders: 1, MaxCallsPerNamespace: 1, MaxMetadataBytes: 1 << 10,
		Logger: slog.New(slog.DiscardHandler), Metrics: metrics.New()})
	t.Cleanup(s.Close)
	ctx := context.Background()
	md := map[string]string{"key": "a"}
	if _, err := s.GetMetricSpec(ctx, &pb.ScaledObjectRef{Namespace: "ns", Name: "so", ScalerMetadata: md}); err != nil {
		t.Fatal(err)
	}
	md["key"] = "b" // the caller reuses its map
	if _, err := s.GetMetricSpec(ctx, &pb.ScaledObjectRef{Namespace: "ns", Name: "so2", ScalerMetadata: map[string]string{"key": "a"}}); err != nil {
		t.Fatal(err)
	}
	if n := b.parses.Load(); n != 1 {
		t.Errorf("metadata equal to a kept parse parsed %d times, want once", n)
	}
}
