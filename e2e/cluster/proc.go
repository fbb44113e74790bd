package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kedascalers/kedascalers/libs/testkit/proc"
)

// Proc is a process the cluster started, logging to a file.
type Proc struct {
	// Name names the process in messages and its log file (<Name>.log).
	Name string
	// Log is the path of its log file (stdout and stderr).
	Log string

	p *proc.Proc
}

// StartProc starts bin with args and env (added to the current
// environment), logging to dir/<name>.log, in a process group of its own.
// The process gets SIGKILL if the test binary dies (testkit/proc).
func StartProc(dir, name, bin string, args, env []string) (*Proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: open log: %w", name, err)
	}
	defer f.Close() // the child has its own copy
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	p, err := proc.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", name, bin, err)
	}
	return &Proc{Name: name, Log: logPath, p: p}, nil
}

// Exited reports whether the process has exited, and how.
func (p *Proc) Exited() (bool, error) { return p.p.Exited() }

// Stop sends SIGTERM and waits up to grace, then SIGKILL to the process
// group; it always reaps the process. An exit caused by the signal is not
// an error.
func (p *Proc) Stop(grace time.Duration) error { return p.Signal(syscall.SIGTERM, grace) }

// Signal sends sig (SIGKILL for a crash) and waits up to grace, then
// SIGKILL to the process group; it always reaps the process.
func (p *Proc) Signal(sig syscall.Signal, grace time.Duration) error {
	if err := p.p.Stop(sig, grace); err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	return nil
}

// Usage returns what the process has cost so far (peak RSS, CPU time).
func (p *Proc) Usage() (proc.Usage, error) { return p.p.Usage() }

// Tail returns the last n lines of the process's log.
func (p *Proc) Tail(n int) string {
	data, err := os.ReadFile(p.Log)
	if err != nil {
		return fmt.Sprintf("(%s: %v)", p.Log, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
