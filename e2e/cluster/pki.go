package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kedascalers/kedascalers/libs/testkit/testpki"
)

// pki is what the control plane's processes are given: files in the
// cluster's directory, and the CA and admin identity its clients use.
type pki struct {
	caPEM []byte
	admin *testpki.Leaf
	// caFile signs the API server, its clients and KEDA.
	caFile                  string
	servingCert, servingKey string
	// proxyCAFile signs the aggregation layer's front proxy client.
	proxyCAFile         string
	proxyCert, proxyKey string
	saKey, saPub        string
	// kedaCerts holds tls.crt, tls.key and ca.crt: the operator serves
	// its metrics gRPC service with them and the adapter dials it with them.
	kedaCerts string
}

// newPKI generates the cluster's PKI into dir: one CA for the API server,
// its clients and KEDA; one for the aggregation layer's front proxy; the
// service account key pair.
func newPKI(dir string) (*pki, error) {
	p := &pki{caFile: filepath.Join(dir, "ca.crt"), proxyCAFile: filepath.Join(dir, "front-proxy-ca.crt"), kedaCerts: filepath.Join(dir, "keda-certs")}
	ca, err := testpki.NewCA("kedascalers e2e CA")
	if err != nil {
		return nil, err
	}
	p.caPEM = ca.CertPEM
	if err := os.WriteFile(p.caFile, ca.CertPEM, 0o600); err != nil {
		return nil, fmt.Errorf("write CA: %w", err)
	}
	serving, err := ca.Issue("kube-apiserver", nil, "127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "10.0.0.1")
	if err != nil {
		return nil, err
	}
	if p.servingCert, p.servingKey, err = serving.Write(dir, "apiserver.crt", "apiserver.key"); err != nil {
		return nil, err
	}
	if p.admin, err = ca.Issue("kedascalers-e2e-admin", []string{"system:masters"}); err != nil {
		return nil, err
	}
	proxyCA, err := testpki.NewCA("kedascalers e2e front-proxy CA")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(p.proxyCAFile, proxyCA.CertPEM, 0o600); err != nil {
		return nil, fmt.Errorf("write front-proxy CA: %w", err)
	}
	proxyClient, err := proxyCA.Issue("front-proxy-client", nil)
	if err != nil {
		return nil, err
	}
	if p.proxyCert, p.proxyKey, err = proxyClient.Write(dir, "front-proxy-client.crt", "front-proxy-client.key"); err != nil {
		return nil, err
	}
	if p.saKey, p.saPub, err = newServiceAccountKey(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(p.kedaCerts, 0o700); err != nil {
		return nil, fmt.Errorf("keda cert dir: %w", err)
	}
	kedaLeaf, err := ca.Issue("keda", nil, "127.0.0.1", "localhost", "keda-operator.keda.svc.cluster.local", "keda-operator.keda.svc", "keda-metrics-apiserver.keda.svc")
	if err != nil {
		return nil, err
	}
	if _, _, err := kedaLeaf.Write(p.kedaCerts, "tls.crt", "tls.key"); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(p.kedaCerts, "ca.crt"), ca.CertPEM, 0o600); err != nil {
		return nil, fmt.Errorf("write KEDA CA: %w", err)
	}
	return p, nil
}

// newServiceAccountKey writes the key pair the API server signs service
// account tokens with (dir/sa.key, dir/sa.pub).
func newServiceAccountKey(dir string) (keyPath, pubPath string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("service account key: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("service account key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", "", fmt.Errorf("service account key: %w", err)
	}
	keyPath, pubPath = filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", fmt.Errorf("write %s: %w", keyPath, err)
	}
	if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600); err != nil {
		return "", "", fmt.Errorf("write %s: %w", pubPath, err)
	}
	return keyPath, pubPath, nil
}

// kubeconfig is a kubeconfig file that reaches server as user.
func kubeconfig(server string, caPEM []byte, user *testpki.Leaf) []byte {
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: %q, certificate-authority-data: %s}
users:
- name: admin
  user: {client-certificate-data: %s, client-key-data: %s}
contexts:
- name: e2e
  context: {cluster: e2e, user: admin}
current-context: e2e
`, server, b64(caPEM), b64(user.CertPEM), b64(user.KeyPEM))
}

// tlsConfig trusts caPEM and presents client's certificate.
func tlsConfig(caPEM []byte, client *testpki.Leaf) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("CA: no certificate")
	}
	cert, err := tls.X509KeyPair(client.CertPEM, client.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
