package kedaclient

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// freeAddr returns a loopback address whose port was free a moment ago,
// never Redis's 6379.
func freeAddr(t *testing.T) string {
	t.Helper()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		if !strings.HasSuffix(addr, ":6379") {
			return addr
		}
	}
}

// startProc starts cmd logging to log, in a process group of its own that
// dies with the test binary, and stops it (SIGTERM) at the test's end,
// showing its log's end if the test failed.
func startProc(t *testing.T, cmd *exec.Cmd, log string) {
	t.Helper()
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			data, _ := os.ReadFile(log)
			lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
			t.Logf("%s, last lines:\n%s", filepath.Base(log), strings.Join(lines[max(0, len(lines)-20):], "\n"))
		}
	})
}

// startRedis starts a throwaway redis-server with keyspace notifications
// on a free loopback port and returns a client of it.
func startRedis(t *testing.T) *redis.Client {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server not found on PATH: make deps installs it")
	}
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	startProc(t, exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--notify-keyspace-events", "KEA"), filepath.Join(dir, "redis.log"))
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	deadline := time.Now().Add(15 * time.Second)
	for rdb.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s: no PING answer within 15 s", addr)
		}
		time.Sleep(25 * time.Millisecond)
	}
	return rdb
}

// scalerProc is a running redis-session.
type scalerProc struct {
	grpcAddr, httpAddr string
}

// startScaler runs bin/redis-session (make build) with env on free
// loopback ports and waits until it is ready.
func startScaler(t *testing.T, env ...string) *scalerProc {
	t.Helper()
	bin, err := filepath.Abs(filepath.Join(binDir, "redis-session"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%v: run make build first (make e2e-lifecycle does)", err)
	}
	s := &scalerProc{grpcAddr: freeAddr(t), httpAddr: freeAddr(t)}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), append([]string{"GRPC_ADDR=" + s.grpcAddr, "HTTP_ADDR=" + s.httpAddr, "LOG_FORMAT=text"}, env...)...)
	startProc(t, cmd, filepath.Join(t.TempDir(), "redis-session.log"))
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + s.httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-session not ready within 30 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// aged returns kedascalers_grpc_streams_aged_total{rpc="StreamIsActive"}:
// the push streams the scaler ended (OK) for their connection's age.
func (s *scalerProc) aged(t *testing.T) float64 {
	t.Helper()
	v, err := s.metric("kedascalers_grpc_streams_aged_total", `rpc="StreamIsActive"`)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// metric sums the series of name whose labels contain match, from
// /metrics: 0 while it has none (a vector shows no series before its
// first count).
func (s *scalerProc) metric(name, match string) (float64, error) {
	resp, err := http.Get("http://" + s.httpAddr + "/metrics")
	if err != nil {
		return 0, fmt.Errorf("scrape redis-session: %w", err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') || !strings.Contains(rest, match) {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", line, err)
		}
		sum += v
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read /metrics: %w", err)
	}
	return sum, nil
}
