package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kedascalers/kedascalers/libs/testkit/proc"
	"github.com/kedascalers/kedascalers/libs/testkit/scalerproc"
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
	logf, err := os.CreateTemp("", "pollbench-"+name+"-*.log")
	if err != nil {
		return nil, err
	}
	logf.Close()
	sp, err := scalerproc.Start(ctx, scalerproc.Options{
		Bin: argv[0], Args: argv[1:], Log: logf.Name(),
		BaseEnv: []string{"PATH=" + os.Getenv("PATH")}, Env: env, ReadyTimeout: readyTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &server{name: name, grpcAddr: sp.GRPCAddr, httpAddr: sp.HTTPAddr, logPath: sp.Log, p: sp.Proc}, nil
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
	u, err := proc.UsageOf(s.p.Pid())
	return u.CPU, err
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
