package cli

import (
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/kedascalers/kedascalers/libs/testkit/testpki"
)

func TestCheckTLS(t *testing.T) {
	pki := testpki.New(t)
	mtlsAddr := startFake(t, queueScaler(), grpc.Creds(credentials.NewTLS(pki.ServerTLS(true))))
	tlsAddr := startFake(t, queueScaler(), grpc.Creds(credentials.NewTLS(pki.ServerTLS(false))))
	mtls := []string{"--ca-file", pki.CAFile, "--cert-file", pki.ClientCertFile, "--key-file", pki.ClientKeyFile}
	tests := []struct {
		name      string
		addr      string
		args      []string
		wantCode  int
		wantOut   string
		wantErrIn string
	}{
		{name: "mTLS", addr: mtlsAddr, args: mtls, wantCode: ExitOK,
			wantOut: "(TLS, CA " + pki.CAFile + ", client certificate " + pki.ClientCertFile + ")"},
		{name: "mTLS with server name", addr: mtlsAddr, args: append([]string{"--server-name", testpki.ServerName}, mtls...), wantCode: ExitOK,
			wantOut: "server name " + testpki.ServerName},
		{name: "mTLS without client certificate", addr: mtlsAddr, args: []string{"--ca-file", pki.CAFile}, wantCode: ExitFailure,
			wantErrIn: "scalerctl: GetMetricSpec: code = Unavailable desc = "},
		{name: "wrong server name", addr: mtlsAddr, args: append([]string{"--server-name", "other.test"}, mtls...), wantCode: ExitFailure,
			wantErrIn: "scalerctl: GetMetricSpec: code = Unavailable desc = "},
		{name: "TLS with CA", addr: tlsAddr, args: []string{"--ca-file", pki.CAFile}, wantCode: ExitOK, wantOut: "decision         3 replicas"},
		{name: "system roots do not know the test CA", addr: tlsAddr, args: []string{"--tls"}, wantCode: ExitFailure,
			wantErrIn: "scalerctl: GetMetricSpec: code = Unavailable desc = "},
		{name: "insecure skip verify", addr: tlsAddr, args: []string{"--insecure-skip-verify"}, wantCode: ExitOK,
			wantOut: "certificate NOT verified"},
		{name: "plaintext against TLS", addr: tlsAddr, wantCode: ExitFailure,
			wantErrIn: "scalerctl: GetMetricSpec: code = Unavailable desc = "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"check", "--addr", tt.addr, "--current-replicas", "2", "--timeout", "5s"}, tt.args...)
			code, out, errOut := runCLI(t, args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, errOut)
			}
			if tt.wantOut != "" && !strings.Contains(out, tt.wantOut) {
				t.Errorf("stdout lacks %q:\n%s", tt.wantOut, out)
			}
			if tt.wantErrIn != "" && !strings.Contains(errOut, tt.wantErrIn) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantErrIn, errOut)
			}
		})
	}
}

func TestWatchMTLS(t *testing.T) {
	pki := testpki.New(t)
	addr := startFake(t, pushScaler(), grpc.Creds(credentials.NewTLS(pki.ServerTLS(true))))
	code, out, errOut := runCLI(t, "watch", "--addr", addr, "--duration", "500ms",
		"--ca-file", pki.CAFile, "--cert-file", pki.ClientCertFile, "--key-file", pki.ClientKeyFile)
	if code != ExitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	for _, want := range []string{"StreamIsActive result=true", "StreamMetricSpec metricName="} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
