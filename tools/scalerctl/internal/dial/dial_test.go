package dial

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/kedascalers/kedascalers/libs/testkit/testpki"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestTLSConfig(t *testing.T) {
	pki := testpki.New(t)
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	const addr = "127.0.0.1:1"
	tests := []struct {
		name       string
		opts       Options
		wantNil    bool
		wantRoots  bool
		wantClient bool
		wantSkip   bool
		wantName   string
		wantErr    string
	}{
		{name: "plaintext", opts: Options{Addr: addr}, wantNil: true},
		{name: "system roots", opts: Options{Addr: addr, TLS: true}},
		{name: "CA implies TLS", opts: Options{Addr: addr, CAFile: pki.CAFile}, wantRoots: true},
		{name: "mTLS", opts: Options{Addr: addr, CAFile: pki.CAFile, CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile}, wantRoots: true, wantClient: true},
		{name: "server name", opts: Options{Addr: addr, ServerName: "x.test"}, wantName: "x.test"},
		{name: "skip verify", opts: Options{Addr: addr, InsecureSkipVerify: true}, wantSkip: true},
		{name: "no address", opts: Options{}, wantErr: "--addr is required"},
		{name: "cert without key", opts: Options{Addr: addr, CertFile: pki.ClientCertFile}, wantErr: ErrCertKeyPair.Error()},
		{name: "key without cert", opts: Options{Addr: addr, KeyFile: pki.ClientKeyFile}, wantErr: ErrCertKeyPair.Error()},
		{name: "CA file missing", opts: Options{Addr: addr, CAFile: filepath.Join(t.TempDir(), "missing.pem")}, wantErr: "--ca-file"},
		{name: "CA file not PEM", opts: Options{Addr: addr, CAFile: notPEM}, wantErr: "no PEM certificate"},
		{name: "key does not match", opts: Options{Addr: addr, CertFile: pki.ClientCertFile, KeyFile: pki.ServerKeyFile}, wantErr: "--cert-file/--key-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tt.opts.TLSConfig()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("TLSConfig error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("TLSConfig: %v", err)
			}
			if tt.wantNil != (cfg == nil) {
				t.Fatalf("TLSConfig = %v, want nil: %v", cfg, tt.wantNil)
			}
			if cfg == nil {
				return
			}
			if (cfg.RootCAs != nil) != tt.wantRoots || (len(cfg.Certificates) == 1) != tt.wantClient ||
				cfg.InsecureSkipVerify != tt.wantSkip || cfg.ServerName != tt.wantName {
				t.Errorf("TLSConfig: roots %v client %d skip %v name %q", cfg.RootCAs != nil, len(cfg.Certificates), cfg.InsecureSkipVerify, cfg.ServerName)
			}
		})
	}
}

func TestDial(t *testing.T) {
	conn, err := Dial(Options{Addr: "127.0.0.1:1"})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if err := conn.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := Dial(Options{Addr: "127.0.0.1:1", CertFile: "x"}); !errors.Is(err, ErrCertKeyPair) {
		t.Errorf("Dial with a lone --cert-file: %v, want ErrCertKeyPair", err)
	}
}

// An address without a port is an error naming the default port: gRPC
// would silently dial 443.
func TestCheckAddr(t *testing.T) {
	tests := []struct {
		addr, want string // want: "" for no error, else in the message
	}{
		{"127.0.0.1:9090", ""},
		{"scaler.kedascalers.svc.cluster.local:9090", ""},
		{"[::1]:9090", ""},
		{"dns:///scaler:9090", ""},
		{"unix:///run/scaler.sock", ""},
		{"127.0.0.1", "use --addr 127.0.0.1:9090"},
		{"127.0.0.1:", "use --addr 127.0.0.1:9090"},
		{"scaler.example", "use --addr scaler.example:9090"},
		{"::1", "use --addr [::1]:9090"},
		{"[::1]", "use --addr [::1]:9090"},
		{"dns:///scaler", "use --addr dns:///scaler:9090"},
	}
	for _, tt := range tests {
		err := Options{Addr: tt.addr}.Check()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("--addr %s: %v, want no error", tt.addr, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "no port")):
			t.Errorf("--addr %s: %v, want an error saying %q", tt.addr, err, tt.want)
		}
	}
}
