package cli

import (
	"context"
	"errors"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/kedascalers/kedascalers/libs/testkit/wait"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// streamPlan says what a fake stream sends: msgs, then either hold the
// stream open until the client leaves, or end with end (nil: cleanly).
type streamPlan[T any] struct {
	msgs []T
	hold bool
	end  error
}

// fakeScaler is an ExternalScaler whose answers the test sets, and which
// records the calls it gets.
type fakeScaler struct {
	pb.UnimplementedExternalScalerServer

	specs        []*pb.MetricSpec
	specErr      error
	values       []*pb.MetricValue
	metricsErr   error
	metricsBlock bool // GetMetrics waits for the client to give up
	active       bool
	activeErr    error

	// warnings are sent as kedascalers-warning values: in the header of
	// GetMetricSpec, GetMetrics and both streams, in the trailer of
	// IsActive.
	warnings []string

	activeStream *streamPlan[bool]             // nil: Unimplemented
	specStream   *streamPlan[[]*pb.MetricSpec] // nil: Unimplemented

	mu           sync.Mutex
	streamWithDL bool // a stream arrived with a deadline
	calls        []string
	refs         []*pb.ScaledObjectRef
	metricNames  []string
}

func (f *fakeScaler) record(call string, ref *pb.ScaledObjectRef) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	f.refs = append(f.refs, ref)
}

// Calls returns the RPCs received so far, in order.
func (f *fakeScaler) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeScaler) count(call string) int {
	n := 0
	for _, c := range f.Calls() {
		if c == call {
			n++
		}
	}
	return n
}

// warn sends f.warnings in the header, or in the trailer.
func (f *fakeScaler) warn(ctx context.Context, trailer bool) {
	if len(f.warnings) == 0 {
		return
	}
	md := metadata.MD{WarningKey: f.warnings}
	if trailer {
		grpc.SetTrailer(ctx, md)
		return
	}
	grpc.SetHeader(ctx, md)
}

func (f *fakeScaler) GetMetricSpec(ctx context.Context, ref *pb.ScaledObjectRef) (*pb.GetMetricSpecResponse, error) {
	f.record("GetMetricSpec", ref)
	f.warn(ctx, false)
	if f.specErr != nil {
		return nil, f.specErr
	}
	return &pb.GetMetricSpecResponse{MetricSpecs: f.specs}, nil
}

func (f *fakeScaler) GetMetrics(ctx context.Context, req *pb.GetMetricsRequest) (*pb.GetMetricsResponse, error) {
	f.record("GetMetrics", req.GetScaledObjectRef())
	f.warn(ctx, false)
	f.mu.Lock()
	f.metricNames = append(f.metricNames, req.GetMetricName())
	f.mu.Unlock()
	if f.metricsBlock {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if f.metricsErr != nil {
		return nil, f.metricsErr
	}
	return &pb.GetMetricsResponse{MetricValues: f.values}, nil
}

func (f *fakeScaler) IsActive(ctx context.Context, ref *pb.ScaledObjectRef) (*pb.IsActiveResponse, error) {
	f.record("IsActive", ref)
	f.warn(ctx, true)
	if f.activeErr != nil {
		return nil, f.activeErr
	}
	return &pb.IsActiveResponse{Result: f.active}, nil
}

func (f *fakeScaler) StreamIsActive(ref *pb.ScaledObjectRef, s grpc.ServerStreamingServer[pb.IsActiveResponse]) error {
	f.record("StreamIsActive", ref)
	f.noteDeadline(s.Context())
	f.warn(s.Context(), false)
	if f.activeStream == nil {
		return f.UnimplementedExternalScalerServer.StreamIsActive(ref, s)
	}
	return play(s.Context(), f.activeStream, func(b bool) error { return s.Send(&pb.IsActiveResponse{Result: b}) })
}

func (f *fakeScaler) StreamMetricSpec(ref *pb.ScaledObjectRef, s grpc.ServerStreamingServer[pb.GetMetricSpecResponse]) error {
	f.record("StreamMetricSpec", ref)
	f.noteDeadline(s.Context())
	f.warn(s.Context(), false)
	if f.specStream == nil {
		return f.UnimplementedExternalScalerServer.StreamMetricSpec(ref, s)
	}
	return play(s.Context(), f.specStream, func(m []*pb.MetricSpec) error {
		return s.Send(&pb.GetMetricSpecResponse{MetricSpecs: m})
	})
}

func (f *fakeScaler) noteDeadline(ctx context.Context) {
	if _, ok := ctx.Deadline(); ok {
		f.mu.Lock()
		f.streamWithDL = true
		f.mu.Unlock()
	}
}

func play[T any](ctx context.Context, p *streamPlan[T], send func(T) error) error {
	for _, m := range p.msgs {
		if err := send(m); err != nil {
			return err
		}
	}
	if p.hold {
		<-ctx.Done()
		return nil
	}
	return p.end
}

// startFake serves f on a loopback port until the test ends and returns
// its address.
func startFake(t *testing.T, f *fakeScaler, opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := grpc.NewServer(opts...)
	pb.RegisterExternalScalerServer(srv, f)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("Serve: %v", err)
		}
	})
	return lis.Addr().String()
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := lis.Addr().String()
	if err := lis.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// runCLI runs scalerctl with args and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut wait.Buffer
	code = Run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

var tookRE = regexp.MustCompile(`took \S+`)

// normalize replaces what changes from run to run: durations and the address.
func normalize(s, addr string) string {
	return strings.ReplaceAll(tookRE.ReplaceAllString(s, "took X"), addr, "ADDR")
}
