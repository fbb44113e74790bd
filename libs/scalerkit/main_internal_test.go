package scalerkit

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/kedascalers/kedascalers/libs/scalerkit/config"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metrics"
	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
	"github.com/kedascalers/kedascalers/libs/testkit/testpki"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every wait: a safety net, not a performance expectation.
const waitTimeout = 10 * time.Second

// sharedVars are the shared variables, read from their tags.
var sharedVars = config.Names(&config.Config{})

// testSvcConfig is a service's own configuration.
type testSvcConfig struct {
	Endpoint string `envconfig:"TESTSVC_ENDPOINT" default:"localhost:1234" desc:"where the test backend lives"`
	Workers  int    `envconfig:"TESTSVC_WORKERS" default:"4" desc:"number of test workers"`
}

func (c *testSvcConfig) Validate() error {
	if c.Workers > 100 {
		return errors.New("TESTSVC_WORKERS: want <= 100")
	}
	return nil
}

// cleanEnv unsets the shared and the test service's variables, then sets env.
func cleanEnv(t *testing.T, env map[string]string) {
	t.Helper()
	for _, k := range append(append([]string{}, sharedVars...), config.Names(&testSvcConfig{})...) {
		t.Setenv(k, "") // restored after the test
		if err := os.Unsetenv(k); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
}

// fakeProbe reads a fixed value.
type fakeProbe struct {
	scaler.NoChanges
	value float64
}

func (p fakeProbe) Key() string { return "fake" }
func (p fakeProbe) Read(context.Context) (scaler.Reading, error) {
	return scaler.Reading{Value: p.value}, nil
}

// fakeBackend is a scaler.Backend; closableBackend counts its Close calls.
type fakeBackend struct{}

var (
	_ scaler.Backend = fakeBackend{}
	_ scaler.Backend = (*closableBackend)(nil)
)

func (fakeBackend) Close() error { return nil }

func (fakeBackend) Parse(*metadata.Parser) (*scaler.Trigger, error) {
	return &scaler.Trigger{MetricName: "fake", Target: 2, Probe: fakeProbe{value: 5}}, nil
}

type closableBackend struct {
	fakeBackend
	closed   atomic.Int32
	closeErr error
}

func (b *closableBackend) Close() error {
	b.closed.Add(1)
	return b.closeErr
}

// builder records how build was called.
type builder struct {
	backend scaler.Backend
	err     error
	calls   atomic.Int32
	mu      sync.Mutex
	ctx     context.Context
}

func (b *builder) build(ctx context.Context, env Env) (scaler.Backend, error) {
	b.calls.Add(1)
	b.mu.Lock()
	b.ctx = ctx
	b.mu.Unlock()
	if env.Log == nil || env.Registerer == nil {
		return nil, errors.New("build got no logger or no registerer")
	}
	return b.backend, b.err
}

func TestRunHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-help", "-h"} {
		t.Run(arg, func(t *testing.T) {
			cleanEnv(t, map[string]string{"CACHE_TTL": "abc"}) // not loaded for --help
			var stdout, stderr bytes.Buffer
			b := &builder{backend: fakeBackend{}}
			code := run("my-scaler", []string{arg}, &stdout, &stderr, &testSvcConfig{}, nil, b.build)
			if code != 0 {
				t.Fatalf("run %s = %d, want 0; stderr:\n%s", arg, code, stderr.String())
			}
			out := stdout.String()
			for _, want := range append(append([]string{"my-scaler", "--version", "VARIABLE"}, sharedVars...),
				"TESTSVC_ENDPOINT", "TESTSVC_WORKERS", "where the test backend lives", "localhost:1234") {
				if !strings.Contains(out, want) {
					t.Errorf("--help output lacks %q:\n%s", want, out)
				}
			}
			if b.calls.Load() != 0 {
				t.Error("--help built the backend")
			}
		})
	}
}

func TestRunVersion(t *testing.T) {
	old := Version
	Version = "v1.2.3"
	t.Cleanup(func() { Version = old })
	cleanEnv(t, map[string]string{"CACHE_TTL": "abc"}) // not loaded for --version
	var stdout, stderr bytes.Buffer
	b := &builder{backend: fakeBackend{}}
	if code := run("my-scaler", []string{"--version"}, &stdout, &stderr, &testSvcConfig{}, nil, b.build); code != 0 {
		t.Fatalf("run --version = %d, want 0; stderr:\n%s", code, stderr.String())
	}
	if got := stdout.String(); got != "my-scaler v1.2.3\n" {
		t.Errorf("--version printed %q, want %q", got, "my-scaler v1.2.3\n")
	}
	if b.calls.Load() != 0 {
		t.Error("--version built the backend")
	}
}

func TestRunBadUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown flag", []string{"--foo"}, []string{"flag provided but not defined: -foo", "Usage: my-scaler [--version] [--help]"}},
		{"extra argument", []string{"serve"}, []string{`my-scaler: unexpected argument "serve"`, "Usage: my-scaler"}},
		{"argument after a flag", []string{"--version", "now"}, []string{`unexpected argument "now"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t, nil)
			var stdout, stderr bytes.Buffer
			b := &builder{backend: fakeBackend{}}
			if code := run("my-scaler", tt.args, &stdout, &stderr, &testSvcConfig{}, nil, b.build); code != 2 {
				t.Fatalf("run %q = %d, want 2", tt.args, code)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			// A short usage, not the whole help, and nothing on stdout.
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
			if strings.Contains(stderr.String(), "VARIABLE") || strings.Count(stderr.String(), "\n") > 4 {
				t.Errorf("stderr is more than a short usage:\n%s", stderr.String())
			}
			if b.calls.Load() != 0 {
				t.Error("bad usage built the backend")
			}
		})
	}
}

func TestRunConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"CACHE_TTL", map[string]string{"CACHE_TTL": "abc"}, "CACHE_TTL"},
		{"CACHE_TTL without unit", map[string]string{"CACHE_TTL": "2"}, `CACHE_TTL "2": want a duration such as 2s`},
		{"GRPC_ADDR port out of range", map[string]string{"GRPC_ADDR": "127.0.0.1:99999"}, `GRPC_ADDR "127.0.0.1:99999": port 99999 is out of range`},
		{"HTTP_ADDR bad host", map[string]string{"HTTP_ADDR": "bad host:8080"}, `HTTP_ADDR "bad host:8080"`},
		{"GRPC_MAX_CONNECTIONS zero", map[string]string{"GRPC_MAX_CONNECTIONS": "0"}, "GRPC_MAX_CONNECTIONS"},
		{"LOG_LEVEL", map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		{"PUSH_INTERVAL", map[string]string{"PUSH_INTERVAL": "0"}, "PUSH_INTERVAL"},
		{"MAX_QUESTIONS", map[string]string{"MAX_QUESTIONS": "0"}, "MAX_QUESTIONS"},
		{"TLS_CERT_FILE alone", map[string]string{"TLS_CERT_FILE": "x.pem"}, "TLS_CERT_FILE"},
		{"service variable unparsable", map[string]string{"TESTSVC_WORKERS": "many"}, "TESTSVC_WORKERS"},
		{"service Validate", map[string]string{"TESTSVC_WORKERS": "1000"}, "TESTSVC_WORKERS"},
		{"TLS file missing", map[string]string{"TLS_CERT_FILE": "/nonexistent/c.pem", "TLS_KEY_FILE": "/nonexistent/k.pem"},
			"configuration: TLS_CERT_FILE: open /nonexistent/c.pem: no such file or directory"},
		{"TLS file not PEM", map[string]string{"TLS_CERT_FILE": "main.go", "TLS_KEY_FILE": "main.go"}, "configuration: "},
		{"a near miss is named with the error", map[string]string{"TESTSVC_WROKERS": "3", "TESTSVC_WORKERS": "1000"},
			"TESTSVC_WROKERS is set but is not a variable of this scaler: did you mean TESTSVC_WORKERS?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t, tt.env)
			var stdout, stderr bytes.Buffer
			b := &builder{backend: fakeBackend{}}
			code := run("my-scaler", nil, &stdout, &stderr, &testSvcConfig{}, nil, b.build)
			if code != 2 {
				t.Fatalf("run = %d, want 2; stderr:\n%s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr does not name %s:\n%s", tt.want, stderr.String())
			}
			if !strings.HasPrefix(stderr.String(), "my-scaler: ") {
				t.Errorf("stderr does not start with the program name:\n%s", stderr.String())
			}
			if b.calls.Load() != 0 {
				t.Error("a configuration error built the backend")
			}
		})
	}
}

// TestRunNearMissBeforeTheError: the "did you mean" of a misspelt
// variable is printed before the error it likely causes, so that the
// reader meets the cause first.
func TestRunNearMissBeforeTheError(t *testing.T) {
	cleanEnv(t, map[string]string{"TESTSVC_WROKERS": "3", "TESTSVC_WORKERS": "1000"})
	var stdout, stderr bytes.Buffer
	b := &builder{backend: fakeBackend{}}
	if code := run("my-scaler", nil, &stdout, &stderr, &testSvcConfig{}, nil, b.build); code != 2 {
		t.Fatalf("run = %d, want 2; stderr:\n%s", code, stderr.String())
	}
	want := []string{
		"my-scaler: TESTSVC_WROKERS is set but is not a variable of this scaler: did you mean TESTSVC_WORKERS?",
		"my-scaler: configuration: TESTSVC_WORKERS: want <= 100",
	}
	if got := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n"); !slices.Equal(got, want) {
		t.Errorf("stderr lines = %q, want %q", got, want)
	}
}

func TestRunServeErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name       string
		env        map[string]string
		build      *builder
		want       []string
		wantBuilt  bool
		wantClosed bool
	}{
		{"build fails", nil,
			&builder{err: errors.New("redis unreachable")},
			[]string{"building the backend", "redis unreachable"}, true, false},
		{"gRPC address in use", map[string]string{"GRPC_ADDR": busy.Addr().String(), "HTTP_ADDR": "127.0.0.1:0"},
			&builder{backend: &closableBackend{}},
			[]string{"GRPC_ADDR"}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t, tt.env)
			var stdout, stderr bytes.Buffer
			code := run("my-scaler", nil, &stdout, &stderr, &testSvcConfig{}, nil, tt.build.build)
			if code != 1 {
				t.Fatalf("run = %d, want 1; stderr:\n%s", code, stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			// The default LOG_FORMAT is json, with the service name.
			if !strings.Contains(stderr.String(), `"service":"my-scaler"`) || !strings.Contains(stderr.String(), `"level":"ERROR"`) {
				t.Errorf("stderr is not the JSON log of my-scaler:\n%s", stderr.String())
			}
			if built := tt.build.calls.Load() == 1; built != tt.wantBuilt {
				t.Errorf("built = %v, want %v", built, tt.wantBuilt)
			}
			if cb, ok := tt.build.backend.(*closableBackend); ok {
				if closed := cb.closed.Load() == 1; closed != tt.wantClosed {
					t.Errorf("backend closed = %v, want %v", closed, tt.wantClosed)
				}
			}
		})
	}
}

// testConfig is the default configuration (scaler.New trusts what it is
// given) on free loopback ports, with short durations.
func testConfig() config.Config {
	c := config.Defaults()
	c.GRPCAddr, c.HTTPAddr, c.LogLevel, c.LogFormat = "127.0.0.1:0", "127.0.0.1:0", "info", "text"
	c.CacheTTL, c.PushInterval, c.BackendTimeout, c.ShutdownTimeout = time.Second, time.Second, time.Second, 5*time.Second
	return c
}

// served runs serve in the background and returns the gRPC address from the
// "serving" log line, and a function that stops it and returns serve's result.
func served(t *testing.T, cfg config.Config, b *builder) (addr string, logs *wait.Buffer, stop func() error) {
	t.Helper()
	logs = &wait.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, "test", cfg, log, b.build) }()
	var result error
	stopped := false
	stop = func() error {
		t.Helper()
		if stopped {
			return result
		}
		stopped = true
		cancel()
		select {
		case result = <-done:
		case <-time.After(waitTimeout):
			t.Fatal("serve did not return after cancel")
		}
		return result
	}
	t.Cleanup(func() { stop() })

	re := regexp.MustCompile(`msg=serving grpc=(\S+)`)
	var m []string
	wait.For(t, waitTimeout, "the serving log line", func() bool {
		select {
		case err := <-done:
			t.Fatalf("serve returned %v before serving:\n%s", err, logs)
		default:
		}
		m = re.FindStringSubmatch(logs.String())
		return m != nil
	})
	return m[1], logs, stop
}

func dial(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func callCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

func TestServe(t *testing.T) {
	tests := []struct {
		name     string
		closeErr error
		wantWarn bool
	}{
		{"backend closes cleanly", nil, false},
		{"backend close fails", errors.New("pool already closed"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			backend := &closableBackend{closeErr: tt.closeErr}
			b := &builder{backend: backend}
			addr, logs, stop := served(t, testConfig(), b)
			conn := dial(t, addr, nil)

			hr, err := healthpb.NewHealthClient(conn).Check(callCtx(t), &healthpb.HealthCheckRequest{Service: "externalscaler.ExternalScaler"})
			if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("health = %v, %v", hr, err)
			}
			// The backend is wired to the ExternalScaler service.
			client := pb.NewExternalScalerClient(conn)
			ref := &pb.ScaledObjectRef{Name: "so", Namespace: "ns"}
			active, err := client.IsActive(callCtx(t), ref)
			if err != nil || !active.GetResult() {
				t.Fatalf("IsActive = %v, %v; want true", active, err)
			}
			mv, err := client.GetMetrics(callCtx(t), &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: "fake"})
			if err != nil || len(mv.GetMetricValues()) != 1 || mv.GetMetricValues()[0].GetMetricValueFloat() != 5 {
				t.Fatalf("GetMetrics = %v, %v; want one value 5", mv, err)
			}
			if backend.closed.Load() != 0 {
				t.Fatal("backend closed while serving")
			}

			if err := stop(); err != nil {
				t.Fatalf("serve = %v after cancel, want nil", err)
			}
			if n := backend.closed.Load(); n != 1 {
				t.Errorf("backend closed %d times, want 1", n)
			}
			b.mu.Lock()
			bctx := b.ctx
			b.mu.Unlock()
			if bctx == nil || bctx.Err() == nil {
				t.Error("build's ctx did not end with serve's")
			}
			out := logs.String()
			if got := strings.Contains(out, "closing the backend") && strings.Contains(out, "pool already closed"); got != tt.wantWarn {
				t.Errorf("close warning logged = %v, want %v:\n%s", got, tt.wantWarn, out)
			}
			if !strings.Contains(out, "msg=starting version=") {
				t.Errorf("no starting line with the version:\n%s", out)
			}
		})
	}
}

func TestServeBackendWithoutCloser(t *testing.T) {
	addr, _, stop := served(t, testConfig(), &builder{backend: fakeBackend{}})
	conn := dial(t, addr, nil)
	if _, err := healthpb.NewHealthClient(conn).Check(callCtx(t), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve = %v, want nil", err)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestServerCredentials(t *testing.T) {
	p := testpki.New(t)
	dir := t.TempDir()
	garbage := writeFile(t, dir, "garbage.pem", "not a certificate\n")
	tests := []struct {
		name              string
		cert, key, ca     string
		wantNil, wantErr  bool
		wantName, wantMsg string
	}{
		{name: "plaintext", wantNil: true},
		{name: "TLS", cert: p.ServerCertFile, key: p.ServerKeyFile},
		{name: "mTLS", cert: p.ServerCertFile, key: p.ServerKeyFile, ca: p.CAFile},
		{name: "cert file missing", cert: filepath.Join(dir, "nope.pem"), key: p.ServerKeyFile, wantErr: true, wantName: "TLS_CERT_FILE"},
		{name: "key file missing", cert: p.ServerCertFile, key: filepath.Join(dir, "nope.pem"), wantErr: true, wantName: "TLS_KEY_FILE"},
		{name: "cert file garbage", cert: garbage, key: p.ServerKeyFile, wantErr: true, wantName: "TLS_CERT_FILE"},
		{name: "key does not match", cert: p.ServerCertFile, key: p.ClientKeyFile, wantErr: true, wantName: "TLS_CERT_FILE"},
		{name: "CA file missing", cert: p.ServerCertFile, key: p.ServerKeyFile, ca: filepath.Join(dir, "nope.pem"), wantErr: true, wantName: "TLS_CLIENT_CA_FILE"},
		{name: "CA file without PEM", cert: p.ServerCertFile, key: p.ServerKeyFile, ca: garbage, wantErr: true, wantName: "TLS_CLIENT_CA_FILE", wantMsg: "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := metrics.New()
			creds, err := serverCredentials(config.Config{TLSCertFile: tt.cert, TLSKeyFile: tt.key, TLSClientCAFile: tt.ca}, slog.New(slog.NewTextHandler(io.Discard, nil)), m)
			if tt.wantErr {
				if err == nil {
					t.Fatal("serverCredentials = nil error")
				}
				if !strings.Contains(err.Error(), tt.wantName) || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("error %q does not name %s (%q)", err, tt.wantName, tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("serverCredentials: %v", err)
			}
			if (creds == nil) != tt.wantNil {
				t.Fatalf("creds = %v, want nil: %v", creds, tt.wantNil)
			}
			if creds != nil && creds.Info().SecurityProtocol != "tls" {
				t.Errorf("SecurityProtocol = %q, want tls", creds.Info().SecurityProtocol)
			}
			checkCertificateExpiry(t, m, tt.cert)
		})
	}
}

// checkCertificateExpiry: with TLS, m exports the expiry of the served
// certificate (certFile), to the second; without, nothing.
func checkCertificateExpiry(t *testing.T, m *metrics.Metrics, certFile string) {
	t.Helper()
	const name = "kedascalers_tls_certificate_expiry_timestamp_seconds"
	n, err := testutil.GatherAndCount(m.Registry, name)
	if err != nil {
		t.Fatal(err)
	}
	if certFile == "" {
		if n != 0 {
			t.Errorf("%s exported without TLS", name)
		}
		return
	}
	data, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM", certFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			if got, want := mf.GetMetric()[0].GetGauge().GetValue(), float64(cert.NotAfter.Unix()); got != want {
				t.Errorf("%s = %v, want %v (the certificate's notAfter)", name, got, want)
			}
			return
		}
	}
	t.Errorf("%s not exported with TLS", name)
}

func TestServeTLS(t *testing.T) {
	p := testpki.New(t)
	clientCert, err := tls.LoadX509KeyPair(p.ClientCertFile, p.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	type client struct {
		name    string
		tls     *tls.Config // nil: plaintext
		wantErr bool
	}
	tests := []struct {
		name    string
		ca      string
		clients []client
		wantLog string
	}{
		{"TLS", "", []client{
			{"TLS client", &tls.Config{RootCAs: p.CAPool}, false},
			{"TLS client with a certificate", &tls.Config{RootCAs: p.CAPool, Certificates: []tls.Certificate{clientCert}}, false},
			{"plaintext client", nil, true},
			{"client not trusting the CA", &tls.Config{}, true},
		}, "tls=true mtls=false"},
		{"mTLS", p.CAFile, []client{
			{"client with a certificate", &tls.Config{RootCAs: p.CAPool, Certificates: []tls.Certificate{clientCert}}, false},
			{"client without a certificate", &tls.Config{RootCAs: p.CAPool}, true},
			{"plaintext client", nil, true},
		}, "tls=true mtls=true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.TLSCertFile, cfg.TLSKeyFile, cfg.TLSClientCAFile = p.ServerCertFile, p.ServerKeyFile, tt.ca
			addr, logs, stop := served(t, cfg, &builder{backend: fakeBackend{}})
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("serving line lacks %q:\n%s", tt.wantLog, logs)
			}
			for _, c := range tt.clients {
				t.Run(c.name, func(t *testing.T) {
					var creds credentials.TransportCredentials
					if c.tls != nil {
						creds = credentials.NewTLS(c.tls)
					}
					conn := dial(t, addr, creds)
					_, err := healthpb.NewHealthClient(conn).Check(callCtx(t), &healthpb.HealthCheckRequest{})
					if (err != nil) != c.wantErr {
						t.Errorf("health check error = %v, want error: %v", err, c.wantErr)
					}
					conn.Close()
				})
			}
			if err := stop(); err != nil {
				t.Fatalf("serve = %v, want nil", err)
			}
		})
	}
}

func TestServeTLSHandshakeTimeout(t *testing.T) {
	p := testpki.New(t)
	cfg := testConfig()
	cfg.TLSCertFile, cfg.TLSKeyFile = p.ServerCertFile, p.ServerKeyFile
	cfg.GRPCHandshakeTimeout = 300 * time.Millisecond
	addr, _, stop := served(t, cfg, &builder{backend: fakeBackend{}})

	// A TCP connection that never sends its TLS ClientHello is closed.
	raw, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetReadDeadline(time.Now().Add(waitTimeout))
	begin := time.Now()
	_, err = io.Copy(io.Discard, raw)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("a connection without a TLS handshake was still open after %v", waitTimeout)
	}
	if took := time.Since(begin); took > 3*time.Second {
		t.Errorf("closed after %v, want about %v", took, cfg.GRPCHandshakeTimeout)
	}
	// A TLS client that completes its handshake is served.
	conn := dial(t, addr, credentials.NewTLS(&tls.Config{RootCAs: p.CAPool}))
	if _, err := healthpb.NewHealthClient(conn).Check(callCtx(t), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("a TLS client within the handshake timeout: %v", err)
	}
	conn.Close()
	if err := stop(); err != nil {
		t.Fatalf("serve = %v, want nil", err)
	}
}

// pingingBackend fails its start-up check.
type pingingBackend struct{ fakeBackend }

func (pingingBackend) Ping(context.Context) error {
	return errors.New("TESTSVC_ENDPOINT (localhost:1234): connection refused")
}

// TestRunWarnsAtStart: a near miss of a variable and an unreachable
// backend are logged as warnings at start, naming the variables; the
// scaler still starts (here it fails later, on a busy port).
func TestRunWarnsAtStart(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cleanEnv(t, map[string]string{"GRPC_ADDR": busy.Addr().String(), "HTTP_ADDR": "127.0.0.1:0", "LOG_FORMAT": "text",
		"TESTSVC_WROKERS": "3", "REDIS_SESSION_SERVICE_HOST": "10.0.0.1"})
	var stdout, stderr bytes.Buffer
	b := &builder{backend: pingingBackend{}}
	if code := run("my-scaler", nil, &stdout, &stderr, &testSvcConfig{}, nil, b.build); code != 1 {
		t.Fatalf("run = %d, want 1 (busy port); stderr:\n%s", code, stderr.String())
	}
	out := stderr.String()
	for _, want := range []string{
		`level=WARN msg="unknown variable ignored" service=my-scaler variable=TESTSVC_WROKERS didYouMean=TESTSVC_WORKERS`,
		`level=WARN msg="the backend is not reachable at start; the scaler serves, and reads report the outage until it is over" service=my-scaler error="TESTSVC_ENDPOINT (localhost:1234): connection refused"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "REDIS_SESSION_SERVICE_HOST") {
		t.Errorf("a variable Kubernetes sets is reported:\n%s", out)
	}
}
