package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// proc is one run of a server process. A single goroutine, locked to its OS
// thread, starts the process and waits for it; done is closed once the
// process has been reaped, and that goroutine has then nothing left to do.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // result of cmd.Wait, valid once done is closed
}

// startProc starts cmd and reaps it in the background.
//
// The goroutine that starts the process stays locked to its OS thread until
// the process has been reaped. This matters because the parent-death signal
// set in cmd.SysProcAttr.Pdeathsig is delivered when the thread that forked
// the child exits, not when the process does: a locked thread is never
// retired by the Go runtime, so the signal fires only when the whole program
// goes away.
func startProc(cmd *exec.Cmd) (*proc, error) {
	p := &proc{cmd: cmd, done: make(chan struct{})}
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

// exited reports whether the process has exited and been reaped.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig and waits up to grace for the process to exit; if it does
// not, it sends each of the escalation signals in turn, with the same grace
// period, and finally SIGKILL. It always reaps the process before returning
// nil. An exit status caused by the signals is not an error.
func (p *proc) stop(sig syscall.Signal, grace time.Duration, escalate ...syscall.Signal) error {
	sigs := append([]syscall.Signal{sig}, escalate...)
	for _, s := range sigs {
		if p.exited() {
			return nil
		}
		if err := p.cmd.Process.Signal(s); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("signal %v to pid %d: %w", s, p.cmd.Process.Pid, err)
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
		return fmt.Errorf("kill pid %d: %w", p.cmd.Process.Pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		return fmt.Errorf("pid %d did not exit after SIGKILL", p.cmd.Process.Pid)
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// a server a test or the demo starts.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port on 127.0.0.1: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find a free port on 127.0.0.1: %w", err)
	}
	return port, nil
}

// logTail returns about the last n lines of the file at path, for error
// messages; it never fails.
func logTail(path string, n int) string {
	const maxBytes = 8 << 10
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > maxBytes {
		if _, err := f.Seek(fi.Size()-maxBytes, io.SeekStart); err != nil {
			return fmt.Sprintf("(read log: %v)", err)
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	b = bytes.TrimRight(b, "\n")
	if len(b) == 0 {
		return "(log is empty)"
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// openLog opens the log file at path for appending, so that the output of
// every run of a server is kept.
func openLog(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
}

// addrInUse reports whether a server log says that its port was taken.
func addrInUse(log string) bool {
	return strings.Contains(log, "Address already in use")
}
