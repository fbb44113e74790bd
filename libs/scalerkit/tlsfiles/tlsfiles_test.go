package tlsfiles_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"math/big"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
	"github.com/kedascalers/kedascalers/libs/scalerkit/tlsfiles"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/testpki"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// gauge is a backend whose value the test sets.
type gauge struct {
	scaler.NoChanges
	v atomic.Int64
}

var _ scaler.Backend = (*gauge)(nil)

func (g *gauge) Close() error { return nil }

func (g *gauge) Parse(*metadata.Parser) (*scaler.Trigger, error) {
	return &scaler.Trigger{MetricName: "gauge", Target: 1, Probe: g}, nil
}
func (g *gauge) Key() string { return "gauge" }
func (g *gauge) Read(context.Context) (scaler.Reading, error) {
	return scaler.Reading{Value: float64(g.v.Load())}, nil
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// kedaTLS is what KEDA dials with from a TriggerAuthentication's caCert,
// tlsClientCert and tlsClientKey.
func kedaTLS(pki *testpki.PKI, client *tls.Certificate) *tls.Config {
	c := &tls.Config{RootCAs: pki.CAPool, ServerName: testpki.ServerName}
	if client != nil {
		c.Certificates = []tls.Certificate{*client}
	}
	return c
}

func getMetrics(ctx context.Context, c pb.ExternalScalerClient) error {
	_, err := c.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: scalertest.Ref(nil), MetricName: "gauge"})
	return err
}

func TestTLS(t *testing.T) {
	pki := testpki.New(t)
	other := testpki.New(t) // another CA
	tests := []struct {
		name    string
		mutual  bool
		client  *tls.Config
		wantErr bool
	}{
		{"plain TLS", false, kedaTLS(pki, nil), false},
		{"mTLS with KEDA's client certificate", true, kedaTLS(pki, &pki.Client), false},
		{"mTLS without a client certificate", true, kedaTLS(pki, nil), true},
		{"mTLS with a certificate from another CA", true, kedaTLS(pki, &other.Client), true},
		{"server from another CA", false, kedaTLS(other, nil), true},
		{"TLS 1.1 client", false, &tls.Config{RootCAs: pki.CAPool, ServerName: testpki.ServerName, MaxVersion: tls.VersionTLS11}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := tlsfiles.Files{Cert: pki.ServerCertFile, Key: pki.ServerKeyFile}
			if tt.mutual {
				files.ClientCA = pki.CAFile
			}
			r, err := tlsfiles.New(files, quiet())
			if err != nil {
				t.Fatal(err)
			}
			s := scalertest.Serve(t, &gauge{}, scalertest.Options{ServerTLS: r.Config(), ClientTLS: kedaTLS(pki, &pki.Client)})
			conn, err := s.Dial(credentials.NewTLS(tt.client))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err = getMetrics(ctx, pb.NewExternalScalerClient(conn))
			if (err != nil) != tt.wantErr {
				t.Errorf("GetMetrics error = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	pki := testpki.New(t)
	empty := t.TempDir() + "/empty.pem"
	if err := os.WriteFile(empty, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		files tlsfiles.Files
	}{
		{"missing certificate", tlsfiles.Files{Cert: t.TempDir() + "/nope.pem", Key: pki.ServerKeyFile}},
		{"key of another certificate", tlsfiles.Files{Cert: pki.ServerCertFile, Key: pki.ClientKeyFile}},
		{"client CA without PEM", tlsfiles.Files{Cert: pki.ServerCertFile, Key: pki.ServerKeyFile, ClientCA: empty}},
	}
	for _, tt := range tests {
		if _, err := tlsfiles.New(tt.files, quiet()); err == nil {
			t.Errorf("%s: New succeeded, want an error", tt.name)
		}
	}
}

// TestRotation: a certificate replaced on disk is served to new
// connections without a restart, and a stream opened before goes on.
func TestRotation(t *testing.T) {
	pki := testpki.New(t)
	r, err := tlsfiles.New(tlsfiles.Files{Cert: pki.ServerCertFile, Key: pki.ServerKeyFile, ClientCA: pki.CAFile}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	g := &gauge{}
	s := scalertest.Serve(t, g, scalertest.Options{
		ServerTLS: r.Config(), ClientTLS: kedaTLS(pki, &pki.Client), PushInterval: 50 * time.Millisecond, CacheTTL: -1,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	serial := func(c pb.ExternalScalerClient) *big.Int {
		t.Helper()
		var p peer.Peer
		if _, err := c.GetMetricSpec(ctx, scalertest.Ref(nil), grpc.Peer(&p)); err != nil {
			t.Fatal(err)
		}
		return p.AuthInfo.(credentials.TLSInfo).State.PeerCertificates[0].SerialNumber
	}
	before := serial(s.Client)
	stream, err := s.Client.StreamIsActive(ctx, scalertest.Ref(nil))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := stream.Recv(); err != nil || m.Result {
		t.Fatalf("first stream message = %v, %v; want false", m, err)
	}

	rotated := pki.RotateServer(t)
	time.Sleep(tlsfiles.CheckInterval + 100*time.Millisecond)

	conn, err := s.Dial(credentials.NewTLS(kedaTLS(pki, &pki.Client)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	after := serial(pb.NewExternalScalerClient(conn))
	want := rotated.Leaf.SerialNumber
	if after.Cmp(want) != 0 || after.Cmp(before) == 0 {
		t.Errorf("new connection got serial %v, want the rotated %v (old was %v)", after, want, before)
	}
	// The stream opened before the rotation still delivers.
	g.v.Store(5)
	if m, err := stream.Recv(); err != nil || !m.Result {
		t.Errorf("stream after rotation: %v, %v; want true", m, err)
	}
	// The old connection still works, with its old certificate.
	if got := serial(s.Client); got.Cmp(before) != 0 {
		t.Errorf("old connection serial = %v, want %v", got, before)
	}
}
