package redissession

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// TestBurstOfOneNamespace: 500 ScaledObjects of one namespace polled at
// once (a KEDA restart), each with its own question, at the defaults:
// every GetMetrics is answered with the key's size, none refused; the
// namespace's calls wait their turn (MAX_WAITING_PER_NAMESPACE).
func TestBurstOfOneNamespace(t *testing.T) {
	const objects = 500
	e := newEnv(t, scalertest.Options{})
	ctx := scalertest.Context(t, time.Minute)
	for i := range objects {
		must(t, e.rdb.SAdd(ctx, fmt.Sprintf("sessions:%d", i), "a", "b", "c").Err())
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs = map[codes.Code]int{}
	)
	for i := range objects {
		wg.Go(func() {
			r, err := e.s.Client.GetMetrics(ctx, &pb.GetMetricsRequest{MetricName: "session_size",
				ScaledObjectRef: &pb.ScaledObjectRef{Namespace: "shop", Name: fmt.Sprintf("so-%d", i),
					ScalerMetadata: map[string]string{"mode": "set", "key": fmt.Sprintf("sessions:%d", i)}}})
			if err == nil && r.MetricValues[0].MetricValueFloat != 3 {
				err = fmt.Errorf("value %v, want 3", r.MetricValues[0].MetricValueFloat)
			}
			mu.Lock()
			errs[status.Code(err)]++
			mu.Unlock()
			if err != nil {
				t.Errorf("so-%d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if errs[codes.OK] != objects {
		t.Errorf("%d of %d answered; by code: %v", errs[codes.OK], objects, errs)
	}
}
