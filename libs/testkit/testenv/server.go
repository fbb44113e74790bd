package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kedascalers/kedascalers/libs/testkit/proc"
)

// server is the life cycle the throwaway servers share: one process at a
// time, listening on a fixed port on 127.0.0.1 and working in a temporary
// directory, that can be stopped, started again on the same port, and
// closed. Redis and Postgres fill in how to run and ping their own server.
type server struct {
	name    string // the program, for messages: "redis-server", "postgres"
	dir     string // temporary directory, removed by close
	logPath string // stdout and stderr of every run

	readyTimeout time.Duration    // how long a start waits for ping
	pollEvery    time.Duration    // how often it pings meanwhile
	grace        time.Duration    // how long each stop signal is given
	stopSignals  []syscall.Signal // the first asks; the rest escalate
	command      func() *exec.Cmd // one run of the server on port
	ping         func() error     // nil once the server answers
	hint         func() string    // appended to "exited" errors; may be nil

	mu     sync.Mutex
	port   int
	p      *proc.Proc // current run; nil when stopped
	closed bool
}

// addr returns the server's address as "127.0.0.1:port".
func (s *server) addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// launch makes the first start on a free port, retrying with another port
// when the one picked was taken in the meantime.
func (s *server) launch() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if s.port, err = FreePort(); err != nil {
			return fmt.Errorf("testenv: %w", err)
		}
		err = s.run()
		var inUse *portInUseError
		if !errors.As(err, &inUse) {
			return err
		}
	}
	return err
}

// stop stops the current run, if any, and waits for it to exit.
func (s *server) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.halt()
}

// start starts a stopped server again on the same port and directory and
// waits until it answers. Starting a running server does nothing; starting
// a closed one is an error.
func (s *server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("testenv: %s: Start after Close", s.name)
	}
	if s.p != nil {
		if done, _ := s.p.Exited(); !done {
			return nil
		}
	}
	return s.run()
}

// close stops the server and removes its temporary directory. It is safe
// to call more than once.
func (s *server) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	stopErr := s.halt()
	rmErr := os.RemoveAll(s.dir)
	if rmErr != nil {
		rmErr = fmt.Errorf("testenv: remove %s directory: %w", s.name, rmErr)
	}
	return errors.Join(stopErr, rmErr)
}

// halt stops the current run, if any: the first stop signal, then each
// escalation and finally SIGKILL, each given the grace period. s.mu must be
// held.
func (s *server) halt() error {
	if s.p == nil {
		return nil
	}
	if err := s.p.Stop(s.stopSignals[0], s.grace, s.stopSignals[1:]...); err != nil {
		return fmt.Errorf("testenv: stop %s on %s: %w", s.name, s.addr(), err)
	}
	s.p = nil
	return nil
}

// run starts the server and waits until it answers ping. s.mu must be held.
func (s *server) run() error {
	logf, err := openLog(s.logPath)
	if err != nil {
		return fmt.Errorf("testenv: open %s log: %w", s.name, err)
	}
	cmd := s.command()
	cmd.Stdout = logf
	cmd.Stderr = logf
	p, err := proc.Start(cmd)
	logf.Close() // the child has its own copy
	if err != nil {
		return fmt.Errorf("testenv: run %s: %w", s.name, err)
	}
	s.p = p

	hint := ""
	if s.hint != nil {
		hint = s.hint()
	}
	deadline := time.Now().Add(s.readyTimeout)
	var pingErr error
	for {
		if done, waitErr := p.Exited(); done {
			s.p = nil
			tail := logTail(s.logPath, 20)
			err := fmt.Errorf("testenv: %s on %s exited before answering (%v)%s; server log:\n%s",
				s.name, s.addr(), waitErr, hint, tail)
			if addrInUse(tail) {
				return &portInUseError{err}
			}
			return err
		}
		if pingErr = s.ping(); pingErr == nil {
			return nil
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(s.pollEvery)
	}
	stopErr := s.halt()
	return errors.Join(fmt.Errorf("testenv: %s on %s did not answer within %v (last error: %v); server log:\n%s",
		s.name, s.addr(), s.readyTimeout, pingErr, logTail(s.logPath, 20)), stopErr)
}

// closeAtEnd fails the test on err, else closes s when the test and its
// subtests finish; what names s in the test's errors.
func closeAtEnd[S interface{ Close() error }](t testing.TB, s S, err error, what string) S {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("testenv: close %s: %v", what, err)
		}
	})
	return s
}

// portInUseError marks a start that failed because another process took the
// port between FreePort and the server's bind; launch retries with another
// port.
type portInUseError struct{ err error }

func (e *portInUseError) Error() string { return e.err.Error() }
func (e *portInUseError) Unwrap() error { return e.err }
