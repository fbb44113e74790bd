package main

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// firstWithin bounds the wait for a held stream's first message.
const firstWithin = 20 * time.Second

// recvFunc receives the next message of a push stream.
type recvFunc func() error

// held is a set of push streams held open until stop.
type held struct {
	opened atomic.Int64
	// failed counts the streams that ended with an error after their first
	// message while they were held (a refusal or a cut, not our own stop).
	failed  atomic.Int64
	mu      sync.Mutex
	firsts  []time.Duration // from the call to the first message
	sample  string          // the first failure's message
	stopped atomic.Bool
	close   func()
	readers sync.WaitGroup
}

// stop closes every stream and waits for their readers.
func (h *held) stop() {
	h.stopped.Store(true)
	h.close()
	h.readers.Wait()
}

// firstP returns the p-th percentile of the first messages' delays.
func (h *held) firstP(p float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return percentile(h.firsts, p)
}

// holdStreams opens n push streams with open(ctx, i), workers at a time for at
// most openFor, and waits up to firstWithin for each one's first message;
// each stream's code (OK once its first message came) is recorded. The
// streams stay open, read to their end, until ctx ends or stop is called.
func (a *attack) holdStreams(ctx context.Context, n, workers int, openFor time.Duration,
	open func(ctx context.Context, i int) (recvFunc, error)) *held {
	holdCtx, closeAll := context.WithCancel(ctx)
	h := &held{close: closeAll}
	start := func(ctx context.Context, i int) error {
		// The stream is opened in the reader too: past a server's cap on
		// concurrent streams, opening itself waits.
		sctx, cancel := context.WithCancel(holdCtx)
		first := make(chan error, 1)
		t0 := time.Now()
		h.readers.Add(1)
		go func() {
			defer h.readers.Done()
			defer cancel()
			recv, err := open(sctx, i)
			if err == nil {
				err = recv()
			}
			first <- err
			if err != nil {
				return
			}
			for err == nil {
				err = recv()
			}
			if status.Code(err) == codes.Unimplemented {
				return // a static target's StreamMetricSpec after its spec: KEDA stops watching it
			}
			if !h.stopped.Load() && holdCtx.Err() == nil {
				h.failed.Add(1)
				h.mu.Lock()
				if h.sample == "" {
					h.sample = clip(err.Error(), 160)
				}
				h.mu.Unlock()
			}
		}()
		select {
		case err := <-first:
			if err == nil {
				h.opened.Add(1)
				h.mu.Lock()
				h.firsts = append(h.firsts, time.Since(t0))
				h.mu.Unlock()
			}
			return err
		case <-time.After(firstWithin):
			cancel()
			return status.Errorf(codes.DeadlineExceeded, "no first message within %v", firstWithin)
		case <-ctx.Done():
			cancel()
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	openCtx, stopOpening := context.WithTimeout(ctx, openFor)
	defer stopOpening()
	a.sent(a.fanout(openCtx, n, workers, start))
	return h
}

// isActiveStreams opens StreamIsActive for ScaledObject i of namespace ns
// with metadata md(i).
func (a *attack) isActiveStreams(ns string, md func(i int) map[string]string) func(ctx context.Context, i int) (recvFunc, error) {
	return func(ctx context.Context, i int) (recvFunc, error) {
		st, err := a.client.StreamIsActive(ctx, refIn(ns, i, md(i)))
		if err != nil {
			return nil, err
		}
		return func() error { _, err := st.Recv(); return err }, nil
	}
}

// specStreams opens StreamMetricSpec for ScaledObject i of namespace ns
// with metadata md(i).
func (a *attack) specStreams(ns string, md func(i int) map[string]string) func(ctx context.Context, i int) (recvFunc, error) {
	return func(ctx context.Context, i int) (recvFunc, error) {
		st, err := a.client.StreamMetricSpec(ctx, refIn(ns, i, md(i)))
		if err != nil {
			return nil, err
		}
		return func() error { _, err := st.Recv(); return err }, nil
	}
}

// refIn is the ScaledObjectRef of ScaledObject i of namespace ns: the
// namespace is the tenant.
func refIn(ns string, i int, md map[string]string) *pb.ScaledObjectRef {
	return &pb.ScaledObjectRef{Name: ns + "-" + strconv.Itoa(i), Namespace: ns, ScalerMetadata: md}
}
