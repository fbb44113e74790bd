package cluster

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
	pair, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
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

func TestDecode(t *testing.T) {
	objs, err := Decode([]byte("---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n# only a comment\n---\n{\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"b\"}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0].GetName() != "a" || objs[1].GetName() != "b" {
		t.Fatalf("decoded %d objects (%v), want namespaces a and b", len(objs), objs)
	}
	if _, err := Decode([]byte("kind: [unclosed")); err == nil {
		t.Error("bad YAML decoded without error")
	}
}
