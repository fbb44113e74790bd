// Package proc starts and stops the processes that tests and tools run
// beside them (throwaway backends, the scaler binaries, a control plane):
// a process started here is killed when the program that started it dies,
// and is always reaped.
package proc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// Proc is one run of a process. A single goroutine, locked to its OS
// thread, starts the process and waits for it; Done is closed once the
// process has been reaped.
type Proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // result of cmd.Wait, valid once done is closed
}

// Start starts cmd and reaps it in the background. Unless cmd sets one,
// the process gets SIGKILL when the program that started it dies.
//
// The goroutine that starts the process stays locked to its OS thread
// until the process has been reaped. This matters because the parent-death
// signal (Pdeathsig) is delivered when the thread that forked the child
// exits, not when the process does: a locked thread is never retired by
// the Go runtime, so the signal fires only when the whole program goes
// away.
func Start(cmd *exec.Cmd) (*Proc, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if cmd.SysProcAttr.Pdeathsig == 0 {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	p := &Proc{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(p.done)
		if err := cmd.Start(); err != nil {
			p.err = err
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
	}()
	if err := <-started; err != nil {
		<-p.done
		return nil, err
	}
	return p, nil
}

// Pid returns the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited and been reaped, and how
// (the error of exec.Cmd.Wait).
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends sig and waits up to grace for the process to exit; if it does
// not, it sends each of the escalation signals in turn, with the same grace
// period, and finally SIGKILL. It always reaps the process before returning
// nil. When the process leads a process group of its own (Setpgid), what
// is left of the group once it is reaped gets SIGKILL too, so that nothing
// it started outlives it. An exit caused by the signals is not an error.
func (p *Proc) Stop(sig syscall.Signal, grace time.Duration, escalate ...syscall.Signal) error {
	if err := p.stopLeader(sig, grace, escalate); err != nil {
		return err
	}
	if p.cmd.SysProcAttr.Setpgid {
		if err := syscall.Kill(-p.Pid(), syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill process group %d: %w", p.Pid(), err)
		}
	}
	return nil
}

// stopLeader stops and reaps the process itself (see Stop).
func (p *Proc) stopLeader(sig syscall.Signal, grace time.Duration, escalate []syscall.Signal) error {
	for _, s := range append([]syscall.Signal{sig}, escalate...) {
		if done, _ := p.Exited(); done {
			return nil
		}
		if err := p.cmd.Process.Signal(s); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("signal %v to pid %d: %w", s, p.Pid(), err)
		}
		timer := time.NewTimer(grace)
		select {
		case <-p.done:
			timer.Stop()
			return nil
		case <-timer.C:
		}
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill pid %d: %w", p.Pid(), err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(max(grace, 10*time.Second)):
		return fmt.Errorf("pid %d did not exit after SIGKILL", p.Pid())
	}
}
