// Package dial opens a gRPC connection to an external scaler the way KEDA
// does: grpc.NewClient with client-side round_robin balancing and no
// keepalive, plaintext unless TLS is asked for, with the TLS settings of a
// trigger (enableTLS, unsafeSsl) and of a TriggerAuthentication (caCert,
// tlsClientCert, tlsClientKey) given as files.
package dial

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kedascalers/kedascalers/libs/scalerkit/tlsfiles"
)

// ServiceConfig is the default service config KEDA dials external scalers with.
const ServiceConfig = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// Options are the connection settings of one scaler.
type Options struct {
	// Addr is the scaler's address, HOST:PORT (any gRPC target).
	Addr string
	// TLS turns on TLS with the system roots, like enableTLS=true.
	TLS bool
	// CAFile is a PEM file of CA certificates to verify the scaler with,
	// instead of the system roots (a TriggerAuthentication's caCert).
	CAFile string
	// CertFile is the PEM client certificate for mTLS (tlsClientCert).
	CertFile string
	// KeyFile is the PEM client key for mTLS (tlsClientKey).
	KeyFile string
	// ServerName overrides the name the scaler's certificate is checked against.
	ServerName string
	// InsecureSkipVerify skips verifying the scaler's certificate, like unsafeSsl=true.
	InsecureSkipVerify bool
}

// UsesTLS reports whether the options ask for TLS: --tls or any of the other
// TLS settings.
func (o Options) UsesTLS() bool {
	return o.TLS || o.CAFile != "" || o.CertFile != "" || o.KeyFile != "" || o.ServerName != "" || o.InsecureSkipVerify
}

// ErrCertKeyPair means only one of the client certificate and key was given.
var ErrCertKeyPair = errors.New("--cert-file and --key-file must be given together")

// Check validates the options without reading any file.
func (o Options) Check() error {
	if o.Addr == "" {
		return errors.New("--addr is required")
	}
	if err := checkAddr(o.Addr); err != nil {
		return err
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return ErrCertKeyPair
	}
	return nil
}

// DefaultPort is the port the scalers serve gRPC on by default (GRPC_ADDR=:9090).
const DefaultPort = "9090"

// checkAddr refuses a HOST without a port: gRPC would dial port 443, which
// no scaler listens on. A target with a scheme (dns:///, unix:,
// passthrough:///...) is gRPC's to check, but for dns:/// without a port.
func checkAddr(addr string) error {
	hostPort := addr
	if rest, ok := strings.CutPrefix(addr, "dns:///"); ok {
		hostPort = rest
	} else if strings.Contains(addr, ":/") || strings.HasPrefix(addr, "unix:") {
		return nil
	}
	if _, port, err := net.SplitHostPort(hostPort); err == nil && port != "" {
		return nil
	}
	host := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSuffix(hostPort, ":"), "["), "]")
	return fmt.Errorf("--addr %q has no port (gRPC would dial port 443): the scalers serve on %s by default (GRPC_ADDR): use --addr %s",
		addr, DefaultPort, strings.TrimSuffix(addr, hostPort)+net.JoinHostPort(host, DefaultPort))
}

// TLSConfig builds the client TLS configuration, or returns nil when the
// options ask for plaintext.
func (o Options) TLSConfig() (*tls.Config, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	if !o.UsesTLS() {
		return nil, nil
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         o.ServerName,
		InsecureSkipVerify: o.InsecureSkipVerify, //nolint:gosec // opt-in, mirrors KEDA's unsafeSsl
	}
	if o.CAFile != "" {
		pool, err := tlsfiles.CAPool("--ca-file", o.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert-file/--key-file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Dial creates the client connection (grpc.NewClient connects lazily, on
// the first RPC). The caller closes it.
func Dial(o Options) (*grpc.ClientConn, error) {
	cfg, err := o.TLSConfig()
	if err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if cfg != nil {
		creds = credentials.NewTLS(cfg)
	}
	return grpc.NewClient(o.Addr,
		grpc.WithDefaultServiceConfig(ServiceConfig),
		grpc.WithTransportCredentials(creds),
	)
}
