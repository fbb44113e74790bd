package proc_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kedascalers/kedascalers/libs/testkit/proc"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStartStop(t *testing.T) {
	tests := []struct {
		name     string
		cmd      func() *exec.Cmd
		escalate []syscall.Signal
	}{
		{"exits on SIGTERM", func() *exec.Cmd { return exec.Command("sleep", "60") }, nil},
		{"ignores SIGTERM: SIGKILL after the grace", func() *exec.Cmd {
			return exec.Command("sh", "-c", "trap '' TERM; exec sleep 60") // sleep inherits the ignored TERM
		}, nil},
		{"ignores SIGTERM and SIGINT, in a process group of its own", func() *exec.Cmd {
			c := exec.Command("sh", "-c", "trap '' TERM INT; sleep 60 & wait")
			c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			return c
		}, []syscall.Signal{syscall.SIGINT}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := proc.Start(tt.cmd())
			if err != nil {
				t.Fatal(err)
			}
			if done, _ := p.Exited(); done {
				t.Fatal("exited at once")
			}
			if err := p.Stop(syscall.SIGTERM, 200*time.Millisecond, tt.escalate...); err != nil {
				t.Fatal(err)
			}
			select {
			case <-p.Done():
			default:
				t.Fatal("Stop returned before the process was reaped")
			}
			if done, _ := p.Exited(); !done {
				t.Error("Exited = false after Stop")
			}
			if err := p.Stop(syscall.SIGTERM, time.Second); err != nil {
				t.Errorf("a second Stop = %v, want nil", err)
			}
		})
	}
}

// TestStopKillsTheGroup: what a group leader started does not outlive
// it, even when the leader itself exits on the first signal.
func TestStopKillsTheGroup(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 60 & echo $!; wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := proc.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	var child int
	if _, err := fmt.Fscan(out, &child); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, fmt.Sprintf("the leader's child %d to end after Stop", child), func() bool { return !running(child) })
}

// running reports whether pid runs: it exists and is not a zombie waiting
// for whoever adopted it to reap it.
func running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	rest := stat[bytes.LastIndexByte(stat, ')')+1:]
	return !bytes.HasPrefix(bytes.TrimSpace(rest), []byte("Z"))
}

func TestExitStatus(t *testing.T) {
	p, err := proc.Start(exec.Command("sh", "-c", "exit 3"))
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	done, err := p.Exited()
	var ee *exec.ExitError
	if !done || err == nil || !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("Exited = %v, %v; want true and exit status 3", done, err)
	}
}

func TestStartFails(t *testing.T) {
	if _, err := proc.Start(exec.Command("/nonexistent/binary")); err == nil {
		t.Error("Start of a missing binary: no error")
	}
}

func TestPdeathsigSet(t *testing.T) {
	cmd := exec.Command("true")
	p, err := proc.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if cmd.SysProcAttr.Pdeathsig != syscall.SIGKILL {
		t.Errorf("Pdeathsig = %v, want SIGKILL", cmd.SysProcAttr.Pdeathsig)
	}
}

func TestUsage(t *testing.T) {
	p, err := proc.Start(exec.Command("sleep", "60"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := p.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if u.PeakRSS <= 0 || u.RSS <= 0 || u.PeakRSS < u.RSS || u.CPU < 0 {
		t.Errorf("usage of a running sleep: %+v, want a positive RSS no larger than its peak", u)
	}
	if err := p.Stop(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Usage(); err == nil {
		t.Error("usage of a reaped process: no error")
	}
}
