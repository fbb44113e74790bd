// Package scalerproc runs a scaler binary as a child process for tests and
// tools (the e2e cluster, the demo, the abuse suite, pollbench): on free loopback
// ports or the addresses asked for, logging to a file, started and reaped
// by testkit/proc, and waited for until /readyz answers.
package scalerproc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kedascalers/kedascalers/libs/testkit/proc"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
)

// Options says how to run a scaler binary.
type Options struct {
	// Bin is the path of the binary, Args its arguments.
	Bin  string
	Args []string
	// Log is the file its stdout and stderr are appended to.
	Log string
	// BaseEnv is the environment it inherits; nil means this program's.
	// GRPC_ADDR, HTTP_ADDR and then Env follow it.
	BaseEnv []string
	// Env is added last: it overrides the rest.
	Env []string
	// GRPCAddr and HTTPAddr are where it listens; empty means a free port
	// on 127.0.0.1.
	GRPCAddr, HTTPAddr string
	// ReadyTimeout bounds the wait for /readyz: 30 s when zero; negative
	// means Start does not wait.
	ReadyTimeout time.Duration
}

// Scaler is one run of a scaler binary. It dies with the program that
// started it (parent-death signal) and leads a process group of its own.
type Scaler struct {
	// Proc is the process.
	*proc.Proc
	// GRPCAddr is its gRPC address, host:port.
	GRPCAddr string
	// HTTPAddr serves /metrics, /healthz and /readyz.
	HTTPAddr string
	// Log is the path of its log file.
	Log string
}

// Start runs the binary and, unless opts.ReadyTimeout is negative, waits
// until /readyz answers 200; a scaler that exits first or is not ready in
// time is killed, and the error holds the end of its log.
func Start(ctx context.Context, opts Options) (*Scaler, error) {
	s := &Scaler{GRPCAddr: opts.GRPCAddr, HTTPAddr: opts.HTTPAddr, Log: opts.Log}
	for _, addr := range []*string{&s.GRPCAddr, &s.HTTPAddr} {
		if *addr == "" {
			port, err := testenv.FreePort()
			if err != nil {
				return nil, err
			}
			*addr = "127.0.0.1:" + strconv.Itoa(port)
		}
	}
	logf, err := os.OpenFile(opts.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open the log of %s: %w", opts.Bin, err)
	}
	defer logf.Close() // the child has its own copy
	base := opts.BaseEnv
	if base == nil {
		base = os.Environ()
	}
	cmd := exec.Command(opts.Bin, opts.Args...)
	cmd.Env = append(append(append([]string{}, base...), "GRPC_ADDR="+s.GRPCAddr, "HTTP_ADDR="+s.HTTPAddr), opts.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if s.Proc, err = proc.Start(cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w (run make build first)", opts.Bin, err)
	}
	if opts.ReadyTimeout < 0 {
		return s, nil
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	if err := s.WaitReady(ctx, opts.ReadyTimeout); err != nil {
		_ = s.Stop(syscall.SIGKILL, 10*time.Second)
		return nil, err
	}
	return s, nil
}

// WaitReady waits until /readyz answers 200, at most timeout.
func (s *Scaler) WaitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := "http://" + s.HTTPAddr + "/readyz"
	for {
		if s.ready(ctx, url) {
			return nil
		}
		select {
		case <-s.Done():
			_, err := s.Exited()
			return fmt.Errorf("%s exited before it was ready (%v):\n%s", s.Log, err, s.Tail(20))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %v: %w:\n%s", s.Log, timeout, ctx.Err(), s.Tail(20))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Scaler) ready(ctx context.Context, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Tail returns the last n lines of the log.
func (s *Scaler) Tail(n int) string {
	data, err := os.ReadFile(s.Log)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Sprintf("(%s: %v)", s.Log, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
