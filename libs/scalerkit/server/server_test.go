package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/config"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metrics"
	"github.com/kedascalers/kedascalers/libs/scalerkit/server"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every wait: a safety net, not a performance expectation.
const waitTimeout = 10 * time.Second

const serviceName = "externalscaler.ExternalScaler"

// fakeService answers by the "mode" key of the scaler metadata:
// "panic" panics, "hang" blocks until the call's ctx ends, anything else
// answers true. Its streams send true and end cleanly when it is closed or
// their ctx ends ("error-at-end": with the ctx's error then).
type fakeService struct {
	pb.UnimplementedExternalScalerServer
	closed    chan struct{}
	closeOnce sync.Once
	hanging   chan struct{} // receives when a "hang" call has started
}

func newFakeService() *fakeService {
	return &fakeService{closed: make(chan struct{}), hanging: make(chan struct{}, 10)}
}

func (f *fakeService) Close() { f.closeOnce.Do(func() { close(f.closed) }) }

func (f *fakeService) isClosed() bool {
	select {
	case <-f.closed:
		return true
	default:
		return false
	}
}

func (f *fakeService) IsActive(ctx context.Context, ref *pb.ScaledObjectRef) (*pb.IsActiveResponse, error) {
	switch ref.GetScalerMetadata()["mode"] {
	case "panic":
		panic("backend exploded")
	case "hang":
		f.hanging <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return &pb.IsActiveResponse{Result: true}, nil
}

func (f *fakeService) StreamIsActive(ref *pb.ScaledObjectRef, srv pb.ExternalScaler_StreamIsActiveServer) error {
	if ref.GetScalerMetadata()["mode"] == "panic" {
		panic("stream exploded")
	}
	if err := srv.Send(&pb.IsActiveResponse{Result: true}); err != nil {
		return err
	}
	select {
	case <-srv.Context().Done():
		if ref.GetScalerMetadata()["mode"] == "error-at-end" {
			return srv.Context().Err()
		}
	case <-f.closed:
	}
	return nil
}

// harness is a Server serving on loopback listeners.
type harness struct {
	svc      *fakeService
	metrics  *metrics.Metrics
	logs     *wait.Buffer
	grpcAddr string
	httpURL  string
	cancel   context.CancelFunc
	done     chan error
	conn     *grpc.ClientConn
	client   credentials.TransportCredentials
	http     *http.Client
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func start(t *testing.T, cfg config.Config) *harness {
	t.Helper()
	return startWith(t, cfg, nil, insecure.NewCredentials())
}

// startWith starts a server with the given credentials (nil: plaintext);
// h.conn and newConn dial with client's.
func startWith(t *testing.T, cfg config.Config, creds, client credentials.TransportCredentials) *harness {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
	h := &harness{svc: newFakeService(), metrics: metrics.New(), logs: &wait.Buffer{}, done: make(chan error, 1), client: client}
	log := slog.New(slog.NewTextHandler(h.logs, nil))
	grpcLis, httpLis := listen(t), listen(t)
	h.grpcAddr = grpcLis.Addr().String()
	h.httpURL = "http://" + httpLis.Addr().String()
	srv := server.New(cfg, h.svc, h.metrics, log, creds)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- srv.Serve(ctx, grpcLis, httpLis) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(waitTimeout):
			t.Error("Serve did not return after its ctx ended")
		}
	})

	h.conn = h.newConn(t)
	tr := &http.Transport{}
	h.http = &http.Client{Transport: tr, Timeout: waitTimeout}
	t.Cleanup(tr.CloseIdleConnections)

	// Ready once /readyz says so: health is set before.
	err := wait.Until(waitTimeout, func() error {
		if code, _ := h.get(t, "/readyz"); code != http.StatusOK {
			return fmt.Errorf("server not ready: /readyz = %d", code)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func defaultConfig() config.Config {
	return config.Config{ShutdownTimeout: 5 * time.Second}
}

// get returns the status and body of GET path; status 0 when the request
// failed.
func (h *harness) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := h.http.Get(h.httpURL + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// stop ends the server and returns Serve's result.
func (h *harness) stop(t *testing.T) error {
	t.Helper()
	h.cancel()
	select {
	case err := <-h.done:
		h.done <- err // for the cleanup
		return err
	case <-time.After(waitTimeout):
		t.Fatal("Serve did not return after its ctx ended")
		return nil
	}
}

func callCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

func TestHealthServing(t *testing.T) {
	h := start(t, defaultConfig())
	client := healthpb.NewHealthClient(h.conn)
	tests := []struct {
		service string
		want    healthpb.HealthCheckResponse_ServingStatus
		code    codes.Code
	}{
		{"", healthpb.HealthCheckResponse_SERVING, codes.OK},
		{serviceName, healthpb.HealthCheckResponse_SERVING, codes.OK},
		{"no.such.Service", 0, codes.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			resp, err := client.Check(callCtx(t), &healthpb.HealthCheckRequest{Service: tt.service})
			if status.Code(err) != tt.code {
				t.Fatalf("Check(%q) error = %v, want code %v", tt.service, err, tt.code)
			}
			if err == nil && resp.GetStatus() != tt.want {
				t.Errorf("Check(%q) = %v, want %v", tt.service, resp.GetStatus(), tt.want)
			}
		})
	}
}

func TestReflection(t *testing.T) {
	h := start(t, defaultConfig())
	ctx, cancel := context.WithCancel(callCtx(t))
	defer cancel()
	stream, err := reflectionpb.NewServerReflectionClient(h.conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, s := range resp.GetListServicesResponse().GetService() {
		got[s.GetName()] = true
	}
	for _, want := range []string{serviceName, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !got[want] {
			t.Errorf("reflection lists %v, want %s among them", got, want)
		}
	}

	// The service's descriptor is there too, as grpcurl needs it.
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: serviceName},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err = stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if e := resp.GetErrorResponse(); e != nil {
		t.Fatalf("FileContainingSymbol(%s): %v", serviceName, e.GetErrorMessage())
	}
	if len(resp.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Errorf("no file descriptor for %s", serviceName)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Errorf("Recv after CloseSend = %v, want io.EOF", err)
	}
}

func TestHTTPEndpoints(t *testing.T) {
	h := start(t, defaultConfig())
	h.metrics.CacheRequests.WithLabelValues("hit").Inc()
	// One RPC so that the per-call metrics have a sample.
	if _, err := pb.NewExternalScalerClient(h.conn).IsActive(callCtx(t), &pb.ScaledObjectRef{Name: "so"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path     string
		wantCode int
		want     []string
	}{
		{"/healthz", http.StatusOK, []string{"ok"}},
		{"/readyz", http.StatusOK, []string{"ok"}},
		{"/metrics", http.StatusOK, []string{
			"# TYPE grpc_server_handled_total counter",
			`grpc_server_handled_total{grpc_code="OK",grpc_method="IsActive",grpc_service="externalscaler.ExternalScaler",grpc_type="unary"} 1`,
			"grpc_server_handling_seconds_bucket",
			"kedascalers_grpc_connections 1",
			`kedascalers_cache_requests_total{outcome="hit"} 1`,
			"go_goroutines",
			"process_start_time_seconds",
		}},
		{"/nope", http.StatusNotFound, nil},
	}
	// Series that carry no information are not pre-made: no zero series
	// for methods never called or codes never returned.
	noise := []string{
		`grpc_method="GetMetrics"`,
		`grpc_service="grpc.health.v1.Health"`,
		`grpc_service="grpc.reflection.v1.ServerReflection"`,
		`grpc_code="Unknown"`,
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			code, body := h.get(t, tt.path)
			if code != tt.wantCode {
				t.Fatalf("GET %s = %d, want %d:\n%s", tt.path, code, tt.wantCode, body)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("GET %s lacks %q", tt.path, w)
				}
			}
			if tt.path != "/metrics" {
				return
			}
			for _, n := range noise {
				if strings.Contains(body, n) {
					t.Errorf("GET /metrics has a series with %s, never called", n)
				}
			}
			if n := strings.Count(body, "grpc_server_handled_total{"); n != 1 {
				t.Errorf("GET /metrics has %d grpc_server_handled_total series after one call, want 1", n)
			}
		})
	}

	// Only GET is served.
	resp, err := h.http.Post(h.httpURL+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz = %d, want 405", resp.StatusCode)
	}
}

func TestPanicReturnsInternal(t *testing.T) {
	h := start(t, defaultConfig())
	client := pb.NewExternalScalerClient(h.conn)
	panicRef := &pb.ScaledObjectRef{Name: "so", ScalerMetadata: map[string]string{"mode": "panic"}}

	_, err := client.IsActive(callCtx(t), panicRef)
	if status.Code(err) != codes.Internal {
		t.Fatalf("IsActive with a panicking handler: %v, want Internal", err)
	}
	if !strings.Contains(status.Convert(err).Message(), "backend exploded") {
		t.Errorf("message %q does not carry the panic", status.Convert(err).Message())
	}

	stream, err := client.StreamIsActive(callCtx(t), panicRef)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Internal {
		t.Fatalf("StreamIsActive with a panicking handler: %v, want Internal", err)
	}

	// The server is still up.
	resp, err := client.IsActive(callCtx(t), &pb.ScaledObjectRef{Name: "so"})
	if err != nil || !resp.GetResult() {
		t.Fatalf("IsActive after a panic = %v, %v", resp, err)
	}
	if code, _ := h.get(t, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d after a panic", code)
	}
	if logs := h.logs.String(); strings.Count(logs, "rpc panicked") != 2 {
		t.Errorf("want two 'rpc panicked' log lines:\n%s", logs)
	}
	_, body := h.get(t, "/metrics")
	want := `grpc_server_handled_total{grpc_code="Internal",grpc_method="IsActive",grpc_service="externalscaler.ExternalScaler",grpc_type="unary"} 1`
	if !strings.Contains(body, want) {
		t.Errorf("/metrics lacks %q", want)
	}
	if err := h.stop(t); err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
}

func TestShutdown(t *testing.T) {
	cfg := defaultConfig()
	cfg.ShutdownTimeout = time.Minute // the drain never runs out here
	h := start(t, cfg)

	// A health watcher sees the change to NOT_SERVING.
	watchCtx, stopWatch := context.WithCancel(callCtx(t))
	defer stopWatch()
	watch, err := healthpb.NewHealthClient(h.conn).Watch(watchCtx, &healthpb.HealthCheckRequest{Service: serviceName})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := watch.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first health update = %v, %v; want SERVING", r, err)
	}
	// An open push stream.
	push, err := pb.NewExternalScalerClient(h.conn).StreamIsActive(callCtx(t), &pb.ScaledObjectRef{Name: "so"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := push.Recv(); err != nil {
		t.Fatal(err)
	}

	h.cancel()

	if r, err := watch.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health update after cancel = %v, %v; want NOT_SERVING", r, err)
	}
	// The push stream ends cleanly: Close of the service was called.
	if _, err := push.Recv(); err != io.EOF {
		t.Errorf("push stream after cancel: %v, want a clean end (io.EOF)", err)
	}
	if !h.svc.isClosed() {
		t.Error("the service was not closed")
	}
	// While the watch keeps the gRPC server draining, HTTP still answers:
	// alive, but not ready.
	if code, _ := h.get(t, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while shutting down = %d, want 503", code)
	}
	if code, _ := h.get(t, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while shutting down = %d, want 200", code)
	}
	select {
	case err := <-h.done:
		t.Fatalf("Serve returned %v while a call was still running", err)
	default:
	}

	stopWatch()
	if err := h.stop(t); err != nil {
		t.Fatalf("Serve = %v, want nil after a clean shutdown", err)
	}
	logs := h.logs.String()
	for _, want := range []string{"msg=serving", `msg="shutting down"`, "msg=stopped"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "drain time over") {
		t.Errorf("a clean shutdown stopped hard:\n%s", logs)
	}
	// Both listeners are closed.
	if _, err := net.DialTimeout("tcp", h.grpcAddr, time.Second); err == nil {
		t.Error("the gRPC listener still accepts connections")
	}
	if code, _ := h.get(t, "/healthz"); code != 0 {
		t.Errorf("/healthz after shutdown = %d, want no answer", code)
	}
}

func TestShutdownStopsHangingCalls(t *testing.T) {
	cfg := defaultConfig()
	cfg.ShutdownTimeout = 200 * time.Millisecond
	h := start(t, cfg)
	callErr := make(chan error, 1)
	go func() {
		_, err := pb.NewExternalScalerClient(h.conn).IsActive(callCtx(t),
			&pb.ScaledObjectRef{Name: "so", ScalerMetadata: map[string]string{"mode": "hang"}})
		callErr <- err
	}()
	select {
	case <-h.svc.hanging:
	case <-time.After(waitTimeout):
		t.Fatal("the hanging call never started")
	}
	if err := h.stop(t); err != nil {
		t.Fatalf("Serve = %v, want nil after a forced stop", err)
	}
	select {
	case err := <-callErr:
		if err == nil {
			t.Error("the hanging call succeeded")
		}
	case <-time.After(waitTimeout):
		t.Fatal("the hanging call was not cut off")
	}
	if !h.svc.isClosed() {
		t.Error("the service was not closed")
	}
	if logs := h.logs.String(); !strings.Contains(logs, "drain time over") {
		t.Errorf("logs lack the forced stop:\n%s", logs)
	}
}

func TestShutdownWithZeroDrain(t *testing.T) {
	cfg := defaultConfig()
	cfg.ShutdownTimeout = 0
	h := start(t, cfg)
	if err := h.stop(t); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
}

func TestServeCancelledAtOnce(t *testing.T) {
	// A SIGTERM right at start-up is still a clean shutdown.
	for i := range 100 {
		svc := newFakeService()
		srv := server.New(defaultConfig(), svc, metrics.New(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx, listen(t), listen(t)) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("attempt %d: Serve with an ended ctx = %v, want nil", i, err)
			}
		case <-time.After(waitTimeout):
			t.Fatal("Serve did not return")
		}
		if !svc.isClosed() {
			t.Fatal("the service was not closed")
		}
	}
}

func TestServeListenerFails(t *testing.T) {
	svc := newFakeService()
	srv := server.New(defaultConfig(), svc, metrics.New(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	grpcLis := listen(t)
	grpcLis.Close()
	httpLis := listen(t)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), grpcLis, httpLis) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "serving gRPC") {
			t.Fatalf("Serve with a closed listener = %v, want a gRPC serving error", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Serve did not return after its listener failed")
	}
	if !svc.isClosed() {
		t.Error("the service was not closed after a serving error")
	}
}

func TestRunAddressInUse(t *testing.T) {
	busy := listen(t)
	defer busy.Close()
	tests := []struct {
		name     string
		grpc     string
		http     string
		wantName string
	}{
		{"gRPC address in use", busy.Addr().String(), "127.0.0.1:0", "GRPC_ADDR"},
		{"HTTP address in use", "127.0.0.1:0", busy.Addr().String(), "HTTP_ADDR"},
		{"bad gRPC address", "127.0.0.1:notaport", "127.0.0.1:0", "GRPC_ADDR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.GRPCAddr, cfg.HTTPAddr = tt.grpc, tt.http
			srv := server.New(cfg, newFakeService(), metrics.New(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			err := srv.Run(callCtx(t))
			if err == nil {
				t.Fatal("Run = nil, want an error")
			}
			if !strings.Contains(err.Error(), tt.wantName) {
				t.Errorf("Run error %q does not name %s", err, tt.wantName)
			}
		})
	}
}

func TestRun(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	logs := &wait.Buffer{}
	cfg := defaultConfig()
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	svc := newFakeService()
	srv := server.New(cfg, svc, metrics.New(), slog.New(slog.NewTextHandler(logs, nil)), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()

	// The addresses chosen are in the "serving" log line.
	re := regexp.MustCompile(`msg=serving grpc=(\S+) http=(\S+)`)
	var m []string
	wait.For(t, waitTimeout, "the serving log line", func() bool { m = re.FindStringSubmatch(logs.String()); return m != nil })
	conn, err := grpc.NewClient("passthrough:///"+m[1], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(callCtx(t), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", resp, err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hr, err := (&http.Client{Transport: tr, Timeout: waitTimeout}).Get("http://" + m[2] + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != http.StatusOK {
		t.Errorf("/readyz = %d", hr.StatusCode)
	}
	if !strings.Contains(logs.String(), "tls=false mtls=false") {
		t.Errorf("serving line does not report TLS off:\n%s", logs)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return after cancel")
	}
	if !svc.isClosed() {
		t.Error("service not closed")
	}
	conn.Close()
}
