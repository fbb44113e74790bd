package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// floorArg is the first argument that makes this binary the bare server.
const floorArg = "floor"

// floor implements the ExternalScaler service with constants: the least
// a server of the proto can do per call, against which the scalers are
// measured.
type floor struct {
	pb.UnimplementedExternalScalerServer
}

func (floor) IsActive(context.Context, *pb.ScaledObjectRef) (*pb.IsActiveResponse, error) {
	return &pb.IsActiveResponse{Result: true}, nil
}

func (floor) GetMetricSpec(context.Context, *pb.ScaledObjectRef) (*pb.GetMetricSpecResponse, error) {
	return &pb.GetMetricSpecResponse{MetricSpecs: []*pb.MetricSpec{{MetricName: "floor", TargetSize: 1, TargetSizeFloat: 1}}}, nil
}

func (floor) GetMetrics(_ context.Context, req *pb.GetMetricsRequest) (*pb.GetMetricsResponse, error) {
	return &pb.GetMetricsResponse{MetricValues: []*pb.MetricValue{{MetricName: req.GetMetricName(), MetricValue: 42, MetricValueFloat: 42}}}, nil
}

// serveFloor serves the bare server on grpcAddr (GRPC_ADDR), and the Go runtime's
// metrics (go_memstats_mallocs_total) on httpAddr/metrics (HTTP_ADDR), until SIGTERM.
func serveFloor(grpcAddr, httpAddr string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var lc net.ListenConfig
	gl, err := lc.Listen(ctx, "tcp", grpcAddr)
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	hl, err := lc.Listen(ctx, "tcp", httpAddr)
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	gs := grpc.NewServer()
	pb.RegisterExternalScalerServer(gs, floor{})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.Handler())
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	hs := &http.Server{Handler: mux}
	go func() {
		<-ctx.Done()
		gs.Stop()
		hs.Close()
	}()
	go hs.Serve(hl)
	if err := gs.Serve(gl); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("floor: %w", err)
	}
	return nil
}
