// Package testpki generates a throw-away certificate authority with a server
// and a client certificate (ECDSA P-256) for TLS and mTLS tests, and can
// rotate the server certificate in place the way cert-manager does. It is
// meant for tests only.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
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
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	serial int64
}

// New generates a PKI and writes it to t.TempDir().
func New(t testing.TB) *PKI {
	t.Helper()
	dir := t.TempDir()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kedascalers test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("create CA: %v", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("parse CA: %v", err)
	}
	p := &PKI{CAPool: x509.NewCertPool(), dir: dir, ca: ca, caKey: caKey, serial: 3}
	p.CAPool.AddCert(ca)
	p.CAFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)

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

// leaf issues a certificate for name signed by the CA and writes it, with
// its key, to new files named after its serial number.
func (p *PKI) leaf(t testing.TB, name string, usage x509.ExtKeyUsage) (certFile, keyFile string, cert tls.Certificate) {
	t.Helper()
	p.serial++
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     []string{name},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatalf("create %s certificate: %v", name, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatalf("marshal %s key: %v", name, err)
	}
	base := fmt.Sprintf("%s-%d", name, p.serial)
	certFile = writePEM(t, p.dir, base+".pem", "CERTIFICATE", der)
	keyFile = writePEM(t, p.dir, base+"-key.pem", "EC PRIVATE KEY", keyDER)
	cert, err = tls.LoadX509KeyPair(certFile, keyFile)
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

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	return k
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return path
}
