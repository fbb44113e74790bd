package scaler

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kedascalers/kedascalers/libs/scalerkit/config"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metrics"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// BenchmarkHeldQuestions reports the heap a Service at the default
// configuration holds once it has answered distinct ScaledObjects (one
// GetMetrics and one IsActive each, in 1000 namespaces): an honest 10,000
// with keys of ~100 bytes, and hostile ones with metadata of 16 KiB, which
// MAX_QUESTION_BYTES bounds. Run with -benchtime 1x; it is a figure for
// RELIABILITY.md, not a check.
func BenchmarkHeldQuestions(b *testing.B) {
	tests := []struct {
		name    string
		objects int
		keySize int
	}{
		{"honest 10000", 10000, 100},
		{"hostile 16KiB x 20000", 20000, 16000},
	}
	for _, tc := range tests {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				opts := ConfigOptions(config.Defaults())
				opts.Logger, opts.Metrics = slog.New(slog.DiscardHandler), metrics.New()
				before := heap()
				s := New(&countingBackend{}, opts)
				ctx := context.Background()
				pad := strings.Repeat("x", tc.keySize)
				for i := range tc.objects {
					ref := &pb.ScaledObjectRef{Namespace: fmt.Sprintf("ns-%d", i%1000), Name: fmt.Sprintf("so-%d", i),
						ScalerMetadata: map[string]string{"key": fmt.Sprintf("%s:%d", pad, i)}}
					if _, err := s.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: "m"}); err != nil {
						b.Fatal(err)
					}
					if _, err := s.IsActive(ctx, ref); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(heap()-before)/(1<<20), "MiB-held")
				b.ReportMetric(float64(s.cache.Held()), "questions")
				b.ReportMetric(float64(s.triggers.n), "parses")
				runtime.KeepAlive(s)
				s.Close()
			}
		})
	}
}

func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// blockedBackend parses "key" into a trigger whose reads wait until
// release is closed.
type blockedBackend struct{ release chan struct{} }

type blockedProbe struct {
	NoChanges
	key     string
	release chan struct{}
}

func (p blockedProbe) Key() string { return p.key }
func (p blockedProbe) Read(ctx context.Context) (Reading, error) {
	select {
	case <-p.release:
		return Reading{Value: 1}, nil
	case <-ctx.Done():
		return Reading{}, ctx.Err()
	}
}

func (b *blockedBackend) Parse(p *metadata.Parser) (*Trigger, error) {
	return &Trigger{MetricName: "m", Target: 1, Probe: blockedProbe{key: p.String("key", ""), release: b.release}}, p.Err()
}

func (b *blockedBackend) Close() error { return nil }

// BenchmarkWaitingCalls reports what one question waiting its turn for a
// backend call costs (heap and goroutine stacks, the caller's included):
// 10 namespaces each ask 1000 distinct questions of a backend that does
// not answer. Run with -benchtime 1x; a figure for RELIABILITY.md.
func BenchmarkWaitingCalls(b *testing.B) {
	const namespaces, each = 10, 1000
	for b.Loop() {
		opts := ConfigOptions(config.Defaults())
		opts.Logger, opts.Metrics = slog.New(slog.DiscardHandler), metrics.New()
		before := memory()
		be := &blockedBackend{release: make(chan struct{})}
		s := New(be, opts)
		var wg sync.WaitGroup
		for i := range namespaces * each {
			wg.Go(func() {
				ref := &pb.ScaledObjectRef{Namespace: fmt.Sprintf("ns-%d", i%namespaces), Name: fmt.Sprintf("so-%d", i),
					ScalerMetadata: map[string]string{"key": fmt.Sprintf("sessions:ns-%d:so-%d", i%namespaces, i)}}
				if _, err := s.GetMetrics(context.Background(), &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: "m"}); err != nil {
					b.Error(err)
				}
			})
		}
		for s.cache.Held() < namespaces*each {
			time.Sleep(10 * time.Millisecond)
		}
		b.ReportMetric(float64(memory()-before)/(namespaces*each), "B/waiter")
		close(be.release)
		wg.Wait()
		s.Close()
	}
}

func memory() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}
