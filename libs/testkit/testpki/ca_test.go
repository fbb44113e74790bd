package testpki

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
)

func TestIssue(t *testing.T) {
	ca, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue("server", []string{"system:masters"}, "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	cert := parse(t, leaf)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM)
	for _, tc := range []struct {
		name  string
		usage x509.ExtKeyUsage
	}{
		{"127.0.0.1", x509.ExtKeyUsageServerAuth},
		{"localhost", x509.ExtKeyUsageServerAuth},
		{"", x509.ExtKeyUsageClientAuth},
	} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: tc.name, KeyUsages: []x509.ExtKeyUsage{tc.usage}}); err != nil {
			t.Errorf("verify %q for %v: %v", tc.name, tc.usage, err)
		}
	}
	if len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("IP SANs %v, want 127.0.0.1", cert.IPAddresses)
	}
	if got := cert.Subject.Organization; len(got) != 1 || got[0] != "system:masters" {
		t.Errorf("organization %v, want system:masters (the API server's group)", got)
	}
	other, err := NewCA("other CA")
	if err != nil {
		t.Fatal(err)
	}
	strangers := x509.NewCertPool()
	strangers.AppendCertsFromPEM(other.CertPEM)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: strangers, DNSName: "localhost"}); err == nil {
		t.Error("a certificate verified against another CA")
	}
}

func TestIssueFor(t *testing.T) {
	ca, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueFor([]x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, "client", nil)
	if err != nil {
		t.Fatal(err)
	}
	cert := parse(t, leaf)
	opts := func(u x509.ExtKeyUsage) x509.VerifyOptions {
		return x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{u}}
	}
	if _, err := cert.Verify(opts(x509.ExtKeyUsageClientAuth)); err != nil {
		t.Errorf("a client certificate does not verify for client auth: %v", err)
	}
	if _, err := cert.Verify(opts(x509.ExtKeyUsageServerAuth)); err == nil {
		t.Error("a client-only certificate verifies for serving")
	}
}

func TestPKIFiles(t *testing.T) {
	p := New(t)
	for _, f := range [][2]string{{p.ServerCertFile, p.ServerKeyFile}, {p.ClientCertFile, p.ClientKeyFile}} {
		if _, err := tls.LoadX509KeyPair(f[0], f[1]); err != nil {
			t.Errorf("load %s: %v", f[0], err)
		}
	}
	old := p.Server.Certificate[0]
	rotated := p.RotateServer(t)
	if string(rotated.Certificate[0]) == string(old) {
		t.Error("RotateServer kept the old certificate")
	}
	onDisk, err := tls.LoadX509KeyPair(p.ServerCertFile, p.ServerKeyFile)
	if err != nil || string(onDisk.Certificate[0]) != string(rotated.Certificate[0]) {
		t.Errorf("the server's files do not hold the rotated certificate (%v)", err)
	}
}

// parse loads leaf as a key pair and returns its certificate.
func parse(t *testing.T, leaf *Leaf) *x509.Certificate {
	t.Helper()
	pair, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
