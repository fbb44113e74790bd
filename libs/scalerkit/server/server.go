// Package server serves a scaler: the ExternalScaler gRPC service with the
// standard health service and server reflection, and an HTTP listener for
// /metrics, /healthz and /readyz. It shuts down the way KEDA copes with
// best: health turns NOT_SERVING, push streams end cleanly (KEDA reopens
// them on another pod), in-flight calls get the drain time to finish, and
// whatever is left is stopped hard.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/config"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metrics"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// Service is the ExternalScaler implementation a Server serves.
type Service interface {
	pb.ExternalScalerServer
	// Close ends the push streams cleanly and stops background work.
	Close()
}

// Server is one scaler process's listeners.
type Server struct {
	cfg     config.Config
	svc     Service
	metrics *metrics.Metrics
	log     *slog.Logger
	grpc    *grpc.Server
	health  *health.Server
	http    *http.Server
	limits  *connLimits
	ready   atomic.Bool
}

// Keepalive settings: the server pings a connection idle for keepaliveTime,
// so that long-lived push streams survive idle timeouts of proxies and load
// balancers, and drops it when the ping is not answered. KEDA's client
// sends no pings of its own; clients that do may ping every
// GRPC_KEEPALIVE_MIN_PING at most, with or without open calls.
const (
	keepaliveTime    = 30 * time.Second
	keepaliveTimeout = 10 * time.Second
)

// New builds a Server for svc. creds may be nil for plaintext.
func New(cfg config.Config, svc Service, m *metrics.Metrics, log *slog.Logger, creds credentials.TransportCredentials) *Server {
	s := &Server{cfg: cfg, svc: svc, metrics: m, log: log, health: health.NewServer(),
		limits: newConnLimits(cfg.GRPCMaxConnections, cfg.GRPCMaxConcurrentStreams, m, log)}
	onPanic := recovery.WithRecoveryHandlerContext(func(_ context.Context, p any) error { return s.panicked(p) })
	opts := append(limitOptions(cfg),
		grpc.UnaryInterceptor(s.unary),
		grpc.ChainStreamInterceptor(s.limits.countStream, m.GRPC.StreamServerInterceptor(),
			s.limits.endBeforeCut(cfg.PushStreamEnd()), recovery.StreamServerInterceptor(onPanic)),
	)
	if creds != nil {
		s.limits.tls = true
		opts = append(opts, grpc.Creds(setupCreds{creds}))
	}
	s.grpc = grpc.NewServer(opts...)
	reg := sizeWatch{Server: s.grpc, limits: s.limits}
	pb.RegisterExternalScalerServer(reg, svc)
	healthpb.RegisterHealthServer(reg, s.health)
	reflection.Register(reg)
	// The methods' label children are resolved once; no series is made
	// before the first call that carries its labels.
	m.GRPC.Prepare(s.grpc)

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	// Ready means serving, not "the backend is up": a backend outage must
	// reach KEDA as Unavailable from a live pod, not as a missing endpoint.
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not serving", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return s
}

// unary is the server's one unary interceptor: it counts the call on its
// connection (GRPC_MAX_CONCURRENT_STREAMS), counts and times it
// (grpc_server_*) and turns a panic into Internal, in one function: a
// chain of interceptors allocates closures on every call, and this is the
// path of every poll.
func (s *Server) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	if tc := s.limits.begin(ctx); tc != nil {
		defer tc.streams.Add(-1)
	}
	call := s.metrics.GRPC.StartUnary(info.FullMethod)
	defer func() {
		if p := recover(); p != nil {
			resp, err = nil, s.panicked(p)
		}
		call.End(err)
	}()
	return handler(ctx, req)
}

// panicked logs a call's panic and returns the status that ends the call.
func (s *Server) panicked(p any) error {
	s.log.Error("rpc panicked", slog.Any("panic", p))
	return status.Errorf(codes.Internal, "internal error: %v", p)
}

// streamWorkers is the number of gRPC stream workers: 16 per core.
func streamWorkers() uint32 { return uint32(16 * runtime.GOMAXPROCS(0)) }

// limitOptions turns the configured gRPC limits into server options. A zero
// setting (a Config built in code) leaves grpc-go's default.
func limitOptions(cfg config.Config) []grpc.ServerOption {
	params := keepalive.ServerParameters{
		Time:                  keepaliveTime,
		Timeout:               keepaliveTimeout,
		MaxConnectionAge:      cfg.MaxConnectionAge,
		MaxConnectionAgeGrace: cfg.MaxConnectionAgeGrace,
	}
	opts := []grpc.ServerOption{
		// Calls run on long-lived workers, whose stacks have grown already,
		// instead of a new goroutine per call whose stack grows (and is
		// copied) on every poll. A busy worker sends the call to a goroutine
		// of its own, as does a worker parked in a push stream for the
		// stream's life: 16 per core keep polls on workers beside a few
		// streams (BENCHMARKS.md, "The hot path").
		grpc.NumStreamWorkers(streamWorkers()),
		grpc.KeepaliveParams(params),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: cfg.GRPCKeepaliveMinPing, PermitWithoutStream: true}),
	}
	if cfg.GRPCMaxConcurrentStreams > 0 {
		opts = append(opts, grpc.MaxConcurrentStreams(cfg.GRPCMaxConcurrentStreams))
	}
	if cfg.GRPCHandshakeTimeout > 0 {
		opts = append(opts, grpc.ConnectionTimeout(cfg.GRPCHandshakeTimeout))
	}
	if cfg.GRPCMaxRecvMsgBytes > 0 {
		opts = append(opts, grpc.MaxRecvMsgSize(cfg.GRPCMaxRecvMsgBytes))
	}
	return opts
}

// Run listens on the configured addresses and serves until ctx ends, then
// shuts down. It returns nil after a clean shutdown.
func (s *Server) Run(ctx context.Context) error {
	var lc net.ListenConfig
	grpcLis, err := lc.Listen(ctx, "tcp", s.cfg.GRPCAddr)
	if err != nil {
		s.grpc.Stop() // its stream workers
		return fmt.Errorf("listening on GRPC_ADDR %s: %w", s.cfg.GRPCAddr, err)
	}
	httpLis, err := lc.Listen(ctx, "tcp", s.cfg.HTTPAddr)
	if err != nil {
		grpcLis.Close()
		s.grpc.Stop()
		return fmt.Errorf("listening on HTTP_ADDR %s: %w", s.cfg.HTTPAddr, err)
	}
	return s.Serve(ctx, grpcLis, httpLis)
}

// Serve serves on the given listeners until ctx ends, then shuts down.
func (s *Server) Serve(ctx context.Context, grpcLis, httpLis net.Listener) error {
	grpcLis = s.limits.listener(grpcLis)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		// ErrServerStopped: shutdown came before Serve started (a signal
		// during start-up), which is still a clean stop.
		if err := s.grpc.Serve(grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("serving gRPC: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := s.http.Serve(httpLis); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving HTTP: %w", err)
		}
		return nil
	})
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(pb.ExternalScaler_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	s.ready.Store(true)
	s.log.Info("serving", slog.String("grpc", grpcLis.Addr().String()), slog.String("http", httpLis.Addr().String()),
		slog.Bool("tls", s.cfg.TLSCertFile != ""), slog.Bool("mtls", s.cfg.TLSClientCAFile != ""))
	g.Go(func() error {
		<-gctx.Done()
		s.shutdown()
		return nil
	})
	return g.Wait()
}

// shutdown stops serving: NOT_SERVING first, then streams end, then
// in-flight calls drain for ShutdownTimeout, then a hard stop.
func (s *Server) shutdown() {
	s.log.Info("shutting down", slog.Duration("drain", s.cfg.ShutdownTimeout))
	s.ready.Store(false)
	s.health.Shutdown()
	s.svc.Close() // push streams return, so GracefulStop does not wait on them

	stopped := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(stopped)
	}()
	timer := time.NewTimer(s.cfg.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-stopped:
	case <-timer.C:
		s.log.Warn("drain time over; stopping the calls still running")
		s.grpc.Stop()
		<-stopped
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.http.Shutdown(ctx); err != nil {
		s.http.Close()
	}
	s.log.Info("stopped")
}
