package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kedascalers/kedascalers/libs/testkit/proc"
	"github.com/kedascalers/kedascalers/libs/testkit/scalerproc"
)

const (
	readyTimeout = 20 * time.Second
	// killAfter bounds the wait for an exit after SIGTERM, beyond the
	// scaler's own SHUTDOWN_TIMEOUT; then the process is killed.
	killAfter = 40 * time.Second
)

// scaler is one run of a service binary, as a child process with its own
// log file. It dies with this program (parent-death signal).
type scaler struct {
	name     string
	grpcAddr string
	httpAddr string
	logPath  string
	p        *proc.Proc
}

// startScaler runs bin/name with GRPC_ADDR and HTTP_ADDR on free loopback
// ports, PATH, and env, nothing else from this program's environment, so that
// every other setting is the binary's default. With wantReady it waits until
// /readyz answers 200; without, it returns at once.
func startScaler(ctx context.Context, bin, dir, name string, env []string, wantReady bool) (*scaler, error) {
	logf, err := os.CreateTemp(dir, name+"-*.log")
	if err != nil {
		return nil, fmt.Errorf("create the log of %s: %w", name, err)
	}
	logf.Close()
	timeout := readyTimeout
	if !wantReady {
		timeout = -1
	}
	sp, err := scalerproc.Start(ctx, scalerproc.Options{
		Bin: filepath.Join(bin, name), Log: logf.Name(),
		BaseEnv: []string{"PATH=" + os.Getenv("PATH")}, Env: env, ReadyTimeout: timeout,
	})
	if err != nil {
		return nil, err
	}
	return &scaler{name: name, grpcAddr: sp.GRPCAddr, httpAddr: sp.HTTPAddr, logPath: sp.Log, p: sp.Proc}, nil
}

// pid returns the process id.
func (s *scaler) pid() int { return s.p.Pid() }

// exited reports whether the process has exited and been reaped.
func (s *scaler) exited() bool {
	done, _ := s.p.Exited()
	return done
}

// waitErr is how the process exited, once it has.
func (s *scaler) waitErr() error {
	_, err := s.p.Exited()
	return err
}

// get fetches path from the HTTP listener, with a bound of 5 s.
func (s *scaler) get(ctx context.Context, path string) (int, string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.httpAddr+path, nil)
	if err != nil {
		return 0, ""
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return resp.StatusCode, string(b)
}

// goroutines reads go_goroutines from /metrics.
func (s *scaler) goroutines(ctx context.Context) (int, error) {
	code, body := s.get(ctx, "/metrics")
	if code != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: status %d", code)
	}
	v, err := metricValue(body, "go_goroutines")
	return int(v), err
}

// logBytes returns the log so far.
func (s *scaler) logBytes() []byte {
	b, _ := os.ReadFile(s.logPath)
	return b
}

// logSize returns the size of the log so far.
func (s *scaler) logSize() int64 {
	fi, err := os.Stat(s.logPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logTail returns the last n lines of the log, each cut to 300 bytes.
func (s *scaler) logTail(n int) string {
	lines := strings.Split(strings.TrimSpace(string(s.logBytes())), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		lines[i] = "    " + clip(l, 300)
	}
	return strings.Join(lines, "\n")
}

// terminate sends SIGTERM, as Kubernetes does, and returns how long the
// process took to exit. After killAfter it is killed and killed is true.
func (s *scaler) terminate() (took time.Duration, killed bool) {
	start := time.Now()
	if err := s.p.Stop(syscall.SIGTERM, killAfter); err != nil {
		s.kill()
		return time.Since(start), true
	}
	took = time.Since(start)
	return took, took >= killAfter
}

// kill kills the process if it still runs and waits until it is reaped.
func (s *scaler) kill() { _ = s.p.Stop(syscall.SIGKILL, 10*time.Second) }

// clip cuts s to n bytes, saying how long it was.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s...(%d bytes)", s[:n], len(s))
}
