package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kedascalers/kedascalers/libs/testkit/proc"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
)

const readyTimeout = 20 * time.Second

// server is one measured process: a scaler binary or the bare server.
type server struct {
	name     string
	grpcAddr string
	httpAddr string
	logPath  string
	p        *proc.Proc
}

// start runs argv with GRPC_ADDR and HTTP_ADDR on free loopback ports plus
// env, and waits until /readyz answers 200.
func start(ctx context.Context, name string, argv, env []string) (*server, error) {
	var ports [2]int
	for i := range ports {
		p, err := testenv.FreePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	s := &server{name: name, grpcAddr: fmt.Sprintf("127.0.0.1:%d", ports[0]), httpAddr: fmt.Sprintf("127.0.0.1:%d", ports[1])}
	logf, err := os.CreateTemp("", "pollbench-"+name+"-*.log")
	if err != nil {
		return nil, err
	}
	s.logPath = logf.Name()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "GRPC_ADDR=" + s.grpcAddr, "HTTP_ADDR=" + s.httpAddr}, env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.p, err = proc.Start(cmd)
	logf.Close()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w (run make build first)", name, err)
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		if code, _, _ := s.get(ctx, "/readyz"); code == http.StatusOK {
			return s, nil
		}
		select {
		case <-s.p.Done():
			_, werr := s.p.Exited()
			return nil, fmt.Errorf("%s exited before it was ready (%v); log: %s", name, werr, s.logPath)
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s not ready within %v; log: %s", name, readyTimeout, s.logPath)
		}
	}
}

// stop ends the process (SIGTERM, then SIGKILL) and removes its log.
func (s *server) stop() {
	_ = s.p.Stop(syscall.SIGTERM, 10*time.Second)
	os.Remove(s.logPath)
}

func (s *server) get(ctx context.Context, path string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.httpAddr+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, string(b), err
}

// mallocs reads go_memstats_mallocs_total from /metrics.
func (s *server) mallocs(ctx context.Context) (float64, error) {
	code, body, err := s.get(ctx, "/metrics")
	if err != nil || code != http.StatusOK {
		return 0, fmt.Errorf("GET %s/metrics: %d %v", s.name, code, err)
	}
	return metricValue(body, "go_memstats_mallocs_total")
}

// cpu returns the process's CPU time so far (utime+stime).
func (s *server) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.p.Pid()))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// parseStatCPU returns utime+stime of a /proc/<pid>/stat line. The fields
// are counted after the command name, which is in parentheses and may
// hold spaces.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc stat %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc stat %q", stat)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed /proc stat %q: %w", stat, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// metricValue returns the value of an unlabelled sample in a Prometheus
// text exposition.
func metricValue(body, name string) (float64, error) {
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("no %s in /metrics", name)
}
