package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"
)

// ScalersDirEnv names the environment variable that holds the directory of
// our scalers' binaries (make build's bin/).
const ScalersDirEnv = "KEDASCALERS_E2E_SCALERS"

// Scaler is one of our scalers running as a process.
type Scaler struct {
	*Proc
	// Addr is its gRPC address, 127.0.0.1:port: the scalerAddress.
	Addr string
	// HTTPAddr serves /metrics, /healthz and /readyz.
	HTTPAddr string
}

// StartScaler starts the scaler binary dir/service with env (GRPC_ADDR and
// HTTP_ADDR are set here, on free loopback ports), logging to
// logDir/<name>.log, and waits until /readyz answers, at most 30 s.
func StartScaler(ctx context.Context, dir, service, logDir, name string, env ...string) (*Scaler, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	s := &Scaler{Addr: "127.0.0.1:" + strconv.Itoa(ports[0]), HTTPAddr: "127.0.0.1:" + strconv.Itoa(ports[1])}
	env = append([]string{"GRPC_ADDR=" + s.Addr, "HTTP_ADDR=" + s.HTTPAddr, "LOG_FORMAT=text"}, env...)
	s.Proc, err = StartProc(logDir, name, filepath.Join(dir, service), nil, env)
	if err != nil {
		return nil, err
	}
	ready := httpReady("http://"+s.HTTPAddr+"/readyz", nil)
	err = Eventually(ctx, 30*time.Second, 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		if done, werr := s.Exited(); done {
			return false, Final(fmt.Errorf("exited: %v", werr))
		}
		if err := ready(ctx); err != nil {
			return false, err
		}
		return true, nil
	})
	if err != nil {
		_ = s.Stop(5 * time.Second)
		return nil, fmt.Errorf("%s: %w\n%s", name, err, s.Tail(20))
	}
	return s, nil
}
