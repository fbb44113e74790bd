package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/kedascalers/kedascalers/libs/testkit/scalerproc"
)

// ScalersDirEnv names the environment variable that holds the directory of
// our scalers' binaries (make build's bin/).
const ScalersDirEnv = "KEDASCALERS_E2E_SCALERS"

// Scaler is one of our scalers running as a process.
type Scaler struct {
	*Proc
	// Addr is its gRPC address, host:port: the scalerAddress.
	Addr string
	// HTTPAddr serves /metrics, /healthz and /readyz.
	HTTPAddr string
}

// StartScaler starts the scaler binary dir/service with env (GRPC_ADDR and
// HTTP_ADDR are set here, on free loopback ports), logging to
// logDir/<name>.log, and waits until /readyz answers, at most 30 s.
func StartScaler(ctx context.Context, dir, service, logDir, name string, env ...string) (*Scaler, error) {
	return StartScalerAt(ctx, "", "", dir, service, logDir, name, env...)
}

// StartScalerAt is StartScaler listening on grpcAddr and httpAddr (empty:
// a free port on 127.0.0.1): a replica on an address of its own, or a
// scaler restarted where it was.
func StartScalerAt(ctx context.Context, grpcAddr, httpAddr, dir, service, logDir, name string, env ...string) (*Scaler, error) {
	sp, err := scalerproc.Start(ctx, scalerproc.Options{
		Bin: filepath.Join(dir, service), Log: filepath.Join(logDir, name+".log"),
		Env:      append([]string{"LOG_FORMAT=text"}, env...),
		GRPCAddr: grpcAddr, HTTPAddr: httpAddr, ReadyTimeout: 30 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &Scaler{Proc: &Proc{Name: name, Log: sp.Log, p: sp.Proc}, Addr: sp.GRPCAddr, HTTPAddr: sp.HTTPAddr}, nil
}
