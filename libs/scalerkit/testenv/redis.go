package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	redisReadyTimeout = 15 * time.Second
	redisStopGrace    = 5 * time.Second
	redisInstallHint  = `install it with "apt-get install -y redis-server"`
)

// Redis is a throwaway redis-server listening on 127.0.0.1. It is safe for
// concurrent use.
type Redis struct {
	bin     string   // path of redis-server
	args    []string // extra command-line arguments
	port    int
	dir     string // temporary directory, removed by Close
	logPath string // stdout and stderr of every run

	mu     sync.Mutex
	p      *proc // current run; nil before the first start
	closed bool
}

// StartRedis starts a redis-server on a free port on 127.0.0.1, in a new
// temporary directory, with persistence turned off, and waits until it
// answers PING. args are appended to the redis-server command line, for
// example "--notify-keyspace-events", "KEA". The caller must call Close.
func StartRedis(args ...string) (*Redis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("testenv: redis-server not found on PATH: %s", redisInstallHint)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		r, err := startRedisOnce(bin, args)
		if err == nil {
			return r, nil
		}
		lastErr = err
		var inUse *portInUseError
		if !errors.As(err, &inUse) {
			break
		}
	}
	return nil, lastErr
}

func startRedisOnce(bin string, args []string) (*Redis, error) {
	port, err := FreePort()
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	dir, err := os.MkdirTemp("", "testenv-redis-*")
	if err != nil {
		return nil, fmt.Errorf("testenv: create redis directory: %w", err)
	}
	r := &Redis{
		bin:     bin,
		args:    append([]string(nil), args...),
		port:    port,
		dir:     dir,
		logPath: filepath.Join(dir, "redis.log"),
	}
	r.mu.Lock()
	err = r.start()
	r.mu.Unlock()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return r, nil
}

// NewRedis starts a redis-server like StartRedis and closes it when the test
// and its subtests finish. It fails the test if the server cannot be started,
// for example when redis-server is not installed.
func NewRedis(t testing.TB, args ...string) *Redis {
	t.Helper()
	r, err := StartRedis(args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("testenv: close redis: %v", err)
		}
	})
	return r
}

// Addr returns the server's address as "127.0.0.1:port".
func (r *Redis) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port))
}

// URL returns a URL for database 0 of the server, as
// "redis://127.0.0.1:port/0".
func (r *Redis) URL() string {
	return "redis://" + r.Addr() + "/0"
}

// Stop kills the server and waits for it to exit. The data it held is lost.
// Start brings it back on the same port. Stopping a stopped server does
// nothing.
func (r *Redis) Stop() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stop()
}

// Start starts a stopped server again on the same port and directory and
// waits until it answers PING. Starting a running server does nothing;
// starting a closed one is an error.
func (r *Redis) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("testenv: redis: Start after Close")
	}
	if r.p != nil && !r.p.exited() {
		return nil
	}
	return r.start()
}

// Close stops the server and removes its temporary directory. It is safe to
// call more than once.
func (r *Redis) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	stopErr := r.stop()
	rmErr := os.RemoveAll(r.dir)
	if rmErr != nil {
		rmErr = fmt.Errorf("testenv: remove redis directory: %w", rmErr)
	}
	return errors.Join(stopErr, rmErr)
}

// stop kills the current run, if any. r.mu must be held.
func (r *Redis) stop() error {
	if r.p == nil {
		return nil
	}
	if err := r.p.stop(syscall.SIGTERM, redisStopGrace); err != nil {
		return fmt.Errorf("testenv: stop redis-server on %s: %w", r.Addr(), err)
	}
	r.p = nil
	return nil
}

// start runs redis-server and waits until it answers PING. r.mu must be held.
func (r *Redis) start() error {
	logf, err := openLog(r.logPath)
	if err != nil {
		return fmt.Errorf("testenv: open redis log: %w", err)
	}
	args := append([]string{
		"--port", strconv.Itoa(r.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", r.dir,
		"--daemonize", "no",
	}, r.args...)
	cmd := exec.Command(r.bin, args...)
	cmd.Dir = r.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p, err := startProc(cmd)
	logf.Close() // the child has its own copy
	if err != nil {
		return fmt.Errorf("testenv: run %s: %w", r.bin, err)
	}
	r.p = p

	deadline := time.Now().Add(redisReadyTimeout)
	var pingErr error
	for {
		if p.exited() {
			r.p = nil
			tail := logTail(r.logPath, 20)
			err := fmt.Errorf("testenv: redis-server on %s exited before answering PING (%v); server log:\n%s",
				r.Addr(), p.err, tail)
			if addrInUse(tail) {
				return &portInUseError{err}
			}
			return err
		}
		if pingErr = redisPing(r.Addr()); pingErr == nil {
			return nil
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	stopErr := r.stop()
	return errors.Join(fmt.Errorf("testenv: redis-server on %s did not answer PING within %v (last error: %v); server log:\n%s",
		r.Addr(), redisReadyTimeout, pingErr, logTail(r.logPath, 20)), stopErr)
}

// redisPing sends an inline PING command and checks the reply. A server that
// demands authentication (because of a --requirepass argument) counts as
// answering.
func redisPing(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "+PONG" || strings.HasPrefix(line, "-NOAUTH") {
		return nil
	}
	return fmt.Errorf("unexpected reply to PING: %q", line)
}

// portInUseError marks a start that failed because another process took the
// port between freePort and the server's bind; the first start retries with
// another port.
type portInUseError struct{ err error }

func (e *portInUseError) Error() string { return e.err.Error() }
func (e *portInUseError) Unwrap() error { return e.err }
