// Package scalertest serves a scaler backend for tests, through the real
// server (health, interceptors, shutdown) on an in-memory gRPC listener,
// and offers the calls KEDA makes.
package scalertest

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/kedascalers/kedascalers/libs/scalerkit/config"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metrics"
	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
	"github.com/kedascalers/kedascalers/libs/scalerkit/server"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// Scaler is a backend being served for a test.
type Scaler struct {
	// Client talks to the service as KEDA does.
	Client pb.ExternalScalerClient
	// Conn is the client's connection, for other services (health).
	Conn *grpc.ClientConn
	// Metrics is the served process's metrics.
	Metrics *metrics.Metrics
	// HTTPAddr is the loopback address of /metrics, /healthz and /readyz.
	HTTPAddr string

	lis  *bufconn.Listener
	stop context.CancelFunc
	done chan error
}

// Options tunes the served scaler; zero values take the production
// defaults of config.Config.
type Options struct {
	CacheTTL        time.Duration
	PushInterval    time.Duration
	BackendTimeout  time.Duration
	ShutdownTimeout time.Duration
	// Logger defaults to one that discards everything.
	Logger *slog.Logger
	// ServerTLS, when set, makes the server speak TLS with it, and
	// ClientTLS is what Client dials with.
	ServerTLS, ClientTLS *tls.Config
}

// Serve serves b until the test ends.
func Serve(t testing.TB, b scaler.Backend, opts Options) *Scaler {
	t.Helper()
	var cfg config.Config
	if err := config.Load(&cfg); err != nil {
		t.Fatalf("loading default configuration: %v", err)
	}
	if opts.CacheTTL != 0 {
		cfg.CacheTTL = opts.CacheTTL
	}
	if opts.PushInterval != 0 {
		cfg.PushInterval = opts.PushInterval
	}
	if opts.BackendTimeout != 0 {
		cfg.BackendTimeout = opts.BackendTimeout
	}
	if opts.ShutdownTimeout != 0 {
		cfg.ShutdownTimeout = opts.ShutdownTimeout
	}
	if opts.CacheTTL < 0 {
		cfg.CacheTTL = 0
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m := metrics.New()
	sopts := scaler.ConfigOptions(cfg) // the limits come from the environment, as in production
	sopts.Logger, sopts.Metrics = log, m
	svc := scaler.New(b, sopts)
	var serverCreds credentials.TransportCredentials
	clientCreds := insecure.NewCredentials()
	if opts.ServerTLS != nil {
		serverCreds = credentials.NewTLS(opts.ServerTLS)
		clientCreds = credentials.NewTLS(opts.ClientTLS)
	}
	srv := server.New(cfg, svc, m, log, serverCreds)

	grpcLis := bufconn.Listen(1 << 20)
	httpLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening on loopback: %v", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Scaler{Metrics: m, HTTPAddr: httpLis.Addr().String(), lis: grpcLis, stop: stop, done: make(chan error, 1)}
	go func() {
		err := srv.Serve(ctx, grpcLis, httpLis)
		// The hard stop, as in production: backend calls still running are
		// cancelled.
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if serr := svc.Shutdown(sctx); serr != nil && err == nil {
			err = serr
		}
		s.done <- err
	}()

	conn, err := s.Dial(clientCreds)
	if err != nil {
		t.Fatalf("dialing the in-memory listener: %v", err)
	}
	s.Conn = conn
	s.Client = pb.NewExternalScalerClient(conn)
	t.Cleanup(func() {
		conn.Close()
		if err := s.Shutdown(); err != nil {
			t.Errorf("server stopped with an error: %v", err)
		}
	})
	return s
}

// Dial opens another connection to the server with creds; the caller
// closes it. Connections are made lazily: a refused handshake shows on the
// first call.
func (s *Scaler) Dial(creds credentials.TransportCredentials) (*grpc.ClientConn, error) {
	return grpc.NewClient("passthrough:///scaler.test",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return s.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(creds),
	)
}

// Shutdown stops the server the way SIGTERM does and returns what Serve
// returned. Calling it again returns nil.
func (s *Scaler) Shutdown() error {
	s.stop()
	err, ok := <-s.done
	if ok {
		close(s.done)
	}
	return err
}

// Ref returns a ScaledObjectRef named test/so with md as metadata.
func Ref(md map[string]string) *pb.ScaledObjectRef {
	return &pb.ScaledObjectRef{Name: "so", Namespace: "test", ScalerMetadata: md}
}

// Poll is what KEDA learns from one poll.
type Poll struct {
	// MetricName and Target come from GetMetricSpec.
	MetricName string
	Target     float64
	// Value comes from GetMetrics.
	Value float64
	// Active comes from IsActive.
	Active bool
}

// Poll makes the calls KEDA makes for one poll: GetMetricSpec, then
// GetMetrics for the spec's metric, then IsActive.
func (s *Scaler) Poll(ctx context.Context, md map[string]string) (Poll, error) {
	ref := Ref(md)
	spec, err := s.Client.GetMetricSpec(ctx, ref)
	if err != nil {
		return Poll{}, err
	}
	var p Poll
	if len(spec.GetMetricSpecs()) > 0 {
		p.MetricName = spec.GetMetricSpecs()[0].GetMetricName()
		p.Target = spec.GetMetricSpecs()[0].GetTargetSizeFloat()
	}
	vals, err := s.Client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: p.MetricName})
	if err != nil {
		return p, err
	}
	if len(vals.GetMetricValues()) > 0 {
		p.Value = vals.GetMetricValues()[0].GetMetricValueFloat()
	}
	act, err := s.Client.IsActive(ctx, ref)
	if err != nil {
		return p, err
	}
	p.Active = act.GetResult()
	return p, nil
}
