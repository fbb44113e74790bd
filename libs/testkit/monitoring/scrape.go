package monitoring

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/kedascalers/kedascalers/libs/testkit/testpki"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// RunFunc is a service's main as its tests call it: the arguments without
// the program name, and the exit code returned (scalerkit.Run).
type RunFunc func(args []string, stdout, stderr io.Writer) int

// Scaler is a service's main running in the test's process.
type Scaler struct {
	// Client talks to the scaler as KEDA does, over mTLS.
	Client pb.ExternalScalerClient
	// HTTPAddr is the address of /metrics.
	HTTPAddr string
	// Stderr is what the scaler has logged so far.
	Stderr *wait.Buffer

	code    chan int
	stopped bool
}

// serving is the scaler's log line once it listens (LOG_FORMAT=text).
var serving = regexp.MustCompile(`msg=serving .*grpc=(\S+) http=(\S+)`)

// Start runs run in a goroutine with env set (the backend's variables),
// serving gRPC with mTLS from a throwaway PKI (so that the certificate's
// expiry is exported) on free loopback ports, and returns once it serves.
// It stops when the test ends (Stop): the process sends itself SIGTERM,
// so that run shuts down as in a pod; run must exit 0. The test must not
// be parallel (it sets the environment).
func Start(t testing.TB, run RunFunc, env map[string]string) *Scaler {
	t.Helper()
	p := testpki.New(t)
	for k, v := range map[string]string{
		"GRPC_ADDR": "127.0.0.1:0", "HTTP_ADDR": "127.0.0.1:0", "LOG_FORMAT": "text",
		"TLS_CERT_FILE": p.ServerCertFile, "TLS_KEY_FILE": p.ServerKeyFile, "TLS_CLIENT_CA_FILE": p.CAFile,
		"SHUTDOWN_TIMEOUT": "2s",
	} {
		t.Setenv(k, v)
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	s := &Scaler{Stderr: &wait.Buffer{}, code: make(chan int, 1)}
	go func() { s.code <- run(nil, io.Discard, s.Stderr) }()
	t.Cleanup(func() { s.Stop(t) })
	var m []string
	for deadline := time.Now().Add(20 * time.Second); m == nil; time.Sleep(10 * time.Millisecond) {
		select {
		case c := <-s.code:
			s.stopped = true
			t.Fatalf("the scaler exited %d before serving:\n%s", c, s.Stderr.String())
		default:
		}
		if m = serving.FindStringSubmatch(s.Stderr.String()); m == nil && time.Now().After(deadline) {
			t.Fatalf("no serving line:\n%s", s.Stderr.String())
		}
	}
	s.HTTPAddr = m[2]
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{p.Client}, RootCAs: p.CAPool,
		ServerName: testpki.ServerName, MinVersion: tls.VersionTLS12})
	conn, err := grpc.NewClient(m[1], grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() }) // before Stop: cleanups run last first
	s.Client = pb.NewExternalScalerClient(conn)
	return s
}

// Stop sends the process SIGTERM and waits up to 20 s for run to return
// 0. It does nothing the second time, or when run has returned already.
func (s *Scaler) Stop(t testing.TB) {
	t.Helper()
	if s.stopped {
		return
	}
	s.stopped = true
	select {
	case c := <-s.code: // it returned on its own: no signal, it would end the test
		t.Errorf("the scaler exited %d before it was stopped:\n%s", c, s.Stderr.String())
		return
	default:
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-s.code:
		if c != 0 {
			t.Errorf("the scaler exited %d after SIGTERM, want 0:\n%s", c, s.Stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the scaler did not stop after SIGTERM:\n%s", s.Stderr.String())
	}
}

// Scrape reads the scaler's /metrics and returns the names of its series
// (a histogram's _bucket, _sum and _count each).
func (s *Scaler) Scrape(t testing.TB) map[string]bool {
	t.Helper()
	names, err := scrape("http://" + s.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// scrape returns the names of the series of the text exposition at url.
func scrape(url string) (map[string]bool, error) {
	res, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, res.Status)
	}
	names, err := seriesNames(res.Body)
	_, _ = io.Copy(io.Discard, res.Body)
	return names, err
}

// seriesNames returns the names of the series of a text exposition.
func seriesNames(r io.Reader) (map[string]bool, error) {
	names := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		name, _, _ = strings.Cut(name, "{")
		names[name] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading /metrics: %w", err)
	}
	return names, nil
}
