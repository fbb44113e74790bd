package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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
	srv  server
	bin  string   // path of redis-server
	conf string   // configuration file, first on the command line; or ""
	args []string // extra command-line arguments
}

// StartRedis starts a redis-server on a free port on 127.0.0.1, in a new
// temporary directory, with persistence turned off, and waits until it
// answers PING. args are appended to the redis-server command line, for
// example "--notify-keyspace-events", "KEA". The caller must call Close.
func StartRedis(args ...string) (*Redis, error) {
	return startRedis(nil, args)
}

// StartSentinel starts a Redis Sentinel like StartRedis, monitoring master
// as masterName with a quorum of one, and waits until it answers PING. The
// caller must call Close.
func StartSentinel(master *Redis, masterName string) (*Redis, error) {
	conf := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1\n", masterName, master.srv.port)
	return startRedis(func(dir string) (string, error) {
		// Sentinel rewrites its configuration file, so it must be its own.
		path := filepath.Join(dir, "sentinel.conf")
		return path, os.WriteFile(path, []byte(conf), 0o600)
	}, []string{"--sentinel"})
}

// startRedis starts a redis-server with args, with the configuration file
// writeConf writes in the server's directory when writeConf is not nil.
func startRedis(writeConf func(dir string) (string, error), args []string) (*Redis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("testenv: redis-server not found on PATH: %s", redisInstallHint)
	}
	dir, err := os.MkdirTemp("", "testenv-redis-*")
	if err != nil {
		return nil, fmt.Errorf("testenv: create redis directory: %w", err)
	}
	r := &Redis{bin: bin, args: append([]string(nil), args...)}
	if writeConf != nil {
		if r.conf, err = writeConf(dir); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("testenv: write redis configuration: %w", err)
		}
	}
	r.srv = server{
		name:         "redis-server",
		dir:          dir,
		logPath:      filepath.Join(dir, "redis.log"),
		readyTimeout: redisReadyTimeout,
		pollEvery:    25 * time.Millisecond,
		grace:        redisStopGrace,
		stopSignals:  []syscall.Signal{syscall.SIGTERM},
		command:      r.command,
		ping:         func() error { return redisPing(r.Addr()) },
	}
	if err := r.srv.launch(); err != nil {
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
	return closeAtEnd(t, r, err, "redis")
}

// NewSentinel starts a Redis Sentinel like StartSentinel and closes it
// when the test and its subtests finish.
func NewSentinel(t testing.TB, master *Redis, masterName string) *Redis {
	t.Helper()
	r, err := StartSentinel(master, masterName)
	return closeAtEnd(t, r, err, "sentinel")
}

// Addr returns the server's address as "127.0.0.1:port".
func (r *Redis) Addr() string { return r.srv.addr() }

// URL returns a URL for database 0 of the server, as
// "redis://127.0.0.1:port/0".
func (r *Redis) URL() string {
	return "redis://" + r.Addr() + "/0"
}

// Stop stops the server (SIGTERM, then SIGKILL) and waits for it to exit.
// The data it held is lost. Start brings it back on the same port. Stopping
// a stopped server does nothing.
func (r *Redis) Stop() error { return r.srv.stop() }

// Start starts a stopped server again on the same port and directory and
// waits until it answers PING. Starting a running server does nothing;
// starting a closed one is an error.
func (r *Redis) Start() error { return r.srv.start() }

// Close stops the server and removes its temporary directory. It is safe to
// call more than once.
func (r *Redis) Close() error { return r.srv.close() }

// command returns the command for one run of redis-server on the current
// port.
func (r *Redis) command() *exec.Cmd {
	args := append([]string{
		"--port", strconv.Itoa(r.srv.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", r.srv.dir,
		"--daemonize", "no",
	}, r.args...)
	if r.conf != "" {
		args = append([]string{r.conf}, args...)
	}
	cmd := exec.Command(r.bin, args...)
	cmd.Dir = r.srv.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
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
