package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

// outcome is what a scalerctl command of the demo must show: its exit
// status and, in its output, a match of every pattern of says; shows says
// it in words.
type outcome struct {
	exit  int
	shows string
	says  []string
}

// String is the expectation as the demo prints it.
func (o outcome) String() string {
	return fmt.Sprintf("%s (exit status %d)", o.shows, o.exit)
}

// check returns an error when a command's exit status and output are not
// the expected ones.
func (o outcome) check(exit int, out string) error {
	var missing []string
	for _, p := range o.says {
		if !regexp.MustCompile(p).MatchString(out) {
			missing = append(missing, p)
		}
	}
	if exit != o.exit || len(missing) > 0 {
		return fmt.Errorf("scalerctl exited %d, its output not matching %q: expected %s", exit, missing, o)
	}
	return nil
}

// scalerctl runs scalerctl with args, printing the command, what it is
// expected to show and its output. A failing command may be part of the
// story (an outage); an outcome other than want fails the demo.
func (d *demo) scalerctl(ctx context.Context, want outcome, args ...string) error {
	fmt.Fprintf(d.out, "$ scalerctl %s\n", quoteArgs(args))
	fmt.Fprintf(d.out, "(expected: %s)\n", want)
	exit, out, err := d.runScalerctl(ctx, args...)
	if err != nil {
		return err
	}
	fmt.Fprint(d.out, out)
	if exit != 0 {
		fmt.Fprintf(d.out, "(scalerctl exited with status %d)\n", exit)
	}
	if err := want.check(exit, out); err != nil {
		return fmt.Errorf("scalerctl %s: %w", quoteArgs(args), err)
	}
	return nil
}

// runScalerctl runs scalerctl with args and returns its exit status and
// output (stdout and stderr); only a missing binary is an error.
func (d *demo) runScalerctl(ctx context.Context, args ...string) (int, string, error) {
	var out strings.Builder
	cmd := exec.CommandContext(ctx, filepath.Join(d.bin, "scalerctl"), args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), out.String(), nil
	}
	return 0, out.String(), err
}

// readsAgain waits, at most backendWait, until a scaler answers
// scalerctl check with args again after its backend came back, and says
// how long that took: the backend is listening, but the scaler's client
// may still be waiting to redial (go-redis spaces its dials after
// failures).
func (d *demo) readsAgain(ctx context.Context, args ...string) error {
	start := time.Now()
	for {
		exit, out, err := d.runScalerctl(ctx, append([]string{"check"}, args...)...)
		switch {
		case err != nil:
			return err
		case exit == 0:
			fmt.Fprintf(d.out, "the scaler reads its backend again %v after it came back\n", time.Since(start).Round(10*time.Millisecond))
			return nil
		case time.Since(start) > backendWait:
			return fmt.Errorf("the scaler did not read its backend again within %v of its return:\n%s", backendWait, out)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// backendWait bounds the wait for a scaler to read its backend again.
const backendWait = 15 * time.Second

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
