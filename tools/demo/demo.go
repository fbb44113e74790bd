package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kedascalers/kedascalers/libs/testkit/scalerproc"
)

// demo runs the binaries in bin and narrates to out.
type demo struct {
	bin string
	out io.Writer
	// logs are the scalers' log files: removed after a successful demo,
	// kept (and named) after a failed one.
	logs []string
}

// cleanLogs removes the scalers' logs after a success; after a failure it
// keeps them and says where they are.
func (d *demo) cleanLogs(failed bool, w io.Writer) {
	if failed && len(d.logs) > 0 {
		fmt.Fprintf(w, "demo: the scalers' logs are kept for you:\n")
		for _, l := range d.logs {
			fmt.Fprintf(w, "  %s\n", l)
		}
		return
	}
	for _, l := range d.logs {
		os.Remove(l)
	}
}

// step prints a heading.
func (d *demo) step(format string, args ...any) {
	fmt.Fprintf(d.out, "\n==> %s\n", fmt.Sprintf(format, args...))
}

// service is a scaler process started by the demo.
type service struct {
	name string
	addr string
	sp   *scalerproc.Scaler
}

// startService runs the named scaler binary with env on free loopback
// ports and waits until /readyz answers.
func (d *demo) startService(ctx context.Context, name string, env ...string) (*service, error) {
	logFile, err := os.CreateTemp("", "demo-"+name+"-*.log")
	if err != nil {
		return nil, err
	}
	logFile.Close()
	d.logs = append(d.logs, logFile.Name())
	sp, err := scalerproc.Start(ctx, scalerproc.Options{
		Bin: filepath.Join(d.bin, name), Log: logFile.Name(),
		Env:          append([]string{"LOG_FORMAT=text", "PUSH_INTERVAL=1s"}, env...),
		ReadyTimeout: 15 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	s := &service{name: name, addr: sp.GRPCAddr, sp: sp}
	fmt.Fprintf(d.out, "%s is serving gRPC on %s\n", name, s.addr)
	return s, nil
}

// stop sends SIGTERM, as Kubernetes does, and reports the exit status.
// The log stays until the demo ends (see cleanLogs).
func (s *service) stop() error {
	start := time.Now()
	if err := s.sp.Stop(syscall.SIGTERM, 20*time.Second); err != nil {
		return err
	}
	if took := time.Since(start); took >= 20*time.Second {
		return fmt.Errorf("%s did not stop within 20s of SIGTERM", s.name)
	}
	if _, err := s.sp.Exited(); err != nil {
		return fmt.Errorf("%s stopped with %v", s.name, err)
	}
	return nil
}

// scalerctl runs scalerctl with args, printing the command and its output.
// A failing command is part of the story (an outage), so its exit status
// is printed, not returned; only a missing binary is an error.
func (d *demo) scalerctl(ctx context.Context, args ...string) error {
	fmt.Fprintf(d.out, "$ scalerctl %s\n", quoteArgs(args))
	cmd := exec.CommandContext(ctx, filepath.Join(d.bin, "scalerctl"), args...)
	cmd.Stdout, cmd.Stderr = d.out, d.out
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		fmt.Fprintf(d.out, "(scalerctl exited with status %d)\n", exit.ExitCode())
		return nil
	}
	return err
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " *$&;|'\"") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
