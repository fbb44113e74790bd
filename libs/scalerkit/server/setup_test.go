package server_test

import (
	"context"
	"crypto/tls"
	"testing"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kedascalers/kedascalers/libs/testkit/testpki"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
)

// tlsCreds returns server and client TLS credentials of a throwaway CA.
func tlsCreds(t *testing.T) (server, client credentials.TransportCredentials) {
	t.Helper()
	ca, err := testpki.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue("scaler", nil, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}),
		credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
}

// TestConnectionsTrackedOverTLS: with and without TLS, a call finds its
// connection (its open calls are counted against the limit), and a
// connection that finished its setup is no handshake failure when it
// closes.
func TestConnectionsTrackedOverTLS(t *testing.T) {
	serverTLS, clientTLS := tlsCreds(t)
	tests := []struct {
		name           string
		server, client credentials.TransportCredentials
	}{
		{"plaintext", nil, insecure.NewCredentials()},
		{"TLS", serverTLS, clientTLS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.GRPCMaxConcurrentStreams = 1
			h := startWith(t, cfg, tt.server, tt.client)
			conn := h.newConn(t)
			ctx, cancel := context.WithCancel(callCtx(t))
			openStream(t, ctx, conn)
			if got := value(t, h.metrics.StreamLimitReached); got != 1 {
				t.Errorf("kedascalers_grpc_stream_limit_reached_total = %v, want 1", got)
			}
			cancel()
			conn.Close()
			wait.For(t, waitTimeout, "the connection is released", func() bool {
				return histogramCount(t, h.metrics.ConnectionDuration) == 1
			})
			if got := value(t, h.metrics.HandshakeFailures); got != 0 {
				t.Errorf("kedascalers_grpc_handshake_failures_total = %v, want 0", got)
			}
		})
	}
}
