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

// eachTransport runs test in plaintext and over TLS, with the server's
// and the client's credentials (nil server credentials: plaintext).
func eachTransport(t *testing.T, test func(t *testing.T, server, client credentials.TransportCredentials)) {
	t.Helper()
	serverTLS, clientTLS := tlsCreds(t)
	t.Run("plaintext", func(t *testing.T) { test(t, nil, insecure.NewCredentials()) })
	t.Run("TLS", func(t *testing.T) { test(t, serverTLS, clientTLS) })
}

// TestConnectionsTrackedOverTLS: with and without TLS, a call finds its
// connection (its open calls are counted against the limit), and a
// connection that finished its setup is no handshake failure when it
// closes.
func TestConnectionsTrackedOverTLS(t *testing.T) {
	eachTransport(t, func(t *testing.T, server, client credentials.TransportCredentials) {
		cfg := defaultConfig()
		cfg.GRPCMaxConcurrentStreams = 1
		h := startWith(t, cfg, server, client)
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
