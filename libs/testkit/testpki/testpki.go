// Package testpki generates throw-away certificate authorities (ECDSA
// P-256, valid for a day) for TLS and mTLS tests: a CA that issues
// certificates (NewCA), as the e2e cluster needs for its API server and
// clients, and a ready PKI of a CA with a server and a client certificate
// written to files (New), whose server certificate can be rotated in place
// the way cert-manager does. It is meant for tests only.
package testpki

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// ServerName is the DNS name in the server certificate, besides 127.0.0.1 and ::1.
const ServerName = "scaler.test"

// PKI is a generated CA, server and client certificate, also written as PEM
// files to a test's temporary directory.
type PKI struct {
	// CAFile, ServerCertFile, ServerKeyFile, ClientCertFile and ClientKeyFile
	// are the PEM files.
	CAFile, ServerCertFile, ServerKeyFile, ClientCertFile, ClientKeyFile string
	// CAPool holds the CA certificate.
	CAPool *x509.CertPool
	// Server is the server's certificate and key.
	Server tls.Certificate
	// Client is the client's certificate and key.
	Client tls.Certificate

	dir    string
	ca     *CA
	issued int // certificates issued: their files are numbered
}

// New generates a PKI and writes it to t.TempDir().
func New(t testing.TB) *PKI {
	t.Helper()
	dir := t.TempDir()
	ca, err := NewCA("kedascalers test CA")
	if err != nil {
		t.Fatal(err)
	}
	p := &PKI{CAPool: ca.Pool(), dir: dir, ca: ca}
	p.CAFile = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(p.CAFile, ca.CertPEM, 0o600); err != nil {
		t.Fatalf("write %s: %v", p.CAFile, err)
	}
	p.ServerCertFile, p.ServerKeyFile, p.Server = p.leaf(t, ServerName, x509.ExtKeyUsageServerAuth)
	p.ClientCertFile, p.ClientKeyFile, p.Client = p.leaf(t, "keda.test", x509.ExtKeyUsageClientAuth)
	return p
}

// RotateServer issues a new server certificate from the same CA and
// replaces the server's PEM files in place (each written to a temporary
// file and renamed over the old one), as a certificate rotation does. It
// returns the new certificate.
func (p *PKI) RotateServer(t testing.TB) tls.Certificate {
	t.Helper()
	certFile, keyFile, cert := p.leaf(t, ServerName, x509.ExtKeyUsageServerAuth)
	for from, to := range map[string]string{certFile: p.ServerCertFile, keyFile: p.ServerKeyFile} {
		if err := os.Rename(from, to); err != nil {
			t.Fatalf("rotate %s: %v", to, err)
		}
	}
	p.Server = cert
	return cert
}

// leaf issues a certificate for name (and 127.0.0.1, ::1) signed by the
// CA and writes it, with its key, to new numbered files.
func (p *PKI) leaf(t testing.TB, name string, usage x509.ExtKeyUsage) (certFile, keyFile string, cert tls.Certificate) {
	t.Helper()
	l, err := p.ca.IssueFor([]x509.ExtKeyUsage{usage}, name, nil, name, "127.0.0.1", "::1")
	if err != nil {
		t.Fatal(err)
	}
	p.issued++
	base := fmt.Sprintf("%s-%d", name, p.issued)
	certFile, keyFile, err = l.Write(p.dir, base+".pem", base+"-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	cert, err = tls.X509KeyPair(l.CertPEM, l.KeyPEM)
	if err != nil {
		t.Fatalf("load %s key pair: %v", name, err)
	}
	return certFile, keyFile, cert
}

// ServerTLS returns a server configuration presenting the server certificate
// and, when requireClientCert is set, requiring a client certificate signed
// by the CA.
func (p *PKI) ServerTLS(requireClientCert bool) *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{p.Server}, MinVersion: tls.VersionTLS12}
	if requireClientCert {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = p.CAPool
	}
	return cfg
}
