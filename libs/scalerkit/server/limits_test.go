package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kedascalers/kedascalers/libs/testkit/wait"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// newConn opens a gRPC client connection of its own to h.
func (h *harness) newConn(t *testing.T) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+h.grpcAddr, grpc.WithTransportCredentials(h.client))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func healthCheck(ctx context.Context, conn *grpc.ClientConn) error {
	_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// openStream opens a push stream on conn and reads its first message.
func openStream(t *testing.T, ctx context.Context, conn *grpc.ClientConn) grpc.ServerStreamingClient[pb.IsActiveResponse] {
	t.Helper()
	s, err := pb.NewExternalScalerClient(conn).StreamIsActive(ctx, &pb.ScaledObjectRef{Name: "so"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatalf("first message of a push stream: %v", err)
	}
	return s
}

func TestMaxConcurrentStreams(t *testing.T) {
	const limit = 3
	cfg := defaultConfig()
	cfg.GRPCMaxConcurrentStreams = limit
	h := start(t, cfg)

	// At the limit: every call of the connection is open.
	ctx, cancel := context.WithCancel(callCtx(t))
	defer cancel()
	streams := make([]context.CancelFunc, limit)
	for i := range limit {
		sctx, scancel := context.WithCancel(ctx)
		streams[i] = scancel
		openStream(t, sctx, h.conn)
	}
	if got := value(t, h.metrics.StreamLimitReached); got != 1 {
		t.Errorf("kedascalers_grpc_stream_limit_reached_total = %v, want 1", got)
	}
	if logs := h.logs.String(); !strings.Contains(logs, "GRPC_MAX_CONCURRENT_STREAMS") {
		t.Errorf("no log line names GRPC_MAX_CONCURRENT_STREAMS:\n%s", logs)
	}

	// Past it: one call more on the same connection waits.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	_, err := pb.NewExternalScalerClient(h.conn).IsActive(short, &pb.ScaledObjectRef{Name: "so"})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("call %d on a connection at the limit = %v, want it to wait (DeadlineExceeded)", limit+1, err)
	}
	// Another connection is not affected.
	if err := healthCheck(callCtx(t), h.newConn(t)); err != nil {
		t.Errorf("a call on another connection: %v", err)
	}

	// A stream ends: the waiting call goes through.
	streams[0]()
	resp, err := pb.NewExternalScalerClient(h.conn).IsActive(callCtx(t), &pb.ScaledObjectRef{Name: "so"})
	if err != nil || !resp.GetResult() {
		t.Fatalf("call after a stream ended = %v, %v", resp, err)
	}
}

func TestMaxConnections(t *testing.T) {
	const limit = 2
	cfg := defaultConfig()
	cfg.GRPCMaxConnections = limit
	h := start(t, cfg)

	// At the limit: each connection is served.
	conns := make([]*grpc.ClientConn, limit)
	for i := range conns {
		conns[i] = h.newConn(t)
		if err := healthCheck(callCtx(t), conns[i]); err != nil {
			t.Fatalf("connection %d of %d: %v", i+1, limit, err)
		}
	}
	if got := value(t, h.metrics.Connections); got != limit {
		t.Errorf("kedascalers_grpc_connections = %v, want %d", got, limit)
	}

	// Past it: the next connections are closed at once.
	for i := range 3 {
		raw, err := net.DialTimeout("tcp", h.grpcAddr, waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		raw.SetReadDeadline(time.Now().Add(waitTimeout))
		start := time.Now()
		_, err = raw.Read(make([]byte, 1))
		raw.Close()
		if err == nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			t.Fatalf("connection %d past the limit: read = %v, want it closed", i+1, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("connection past the limit closed after %v, want at once", d)
		}
	}
	short, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := healthCheck(short, h.newConn(t)); status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC call on a connection past the limit = %v, want Unavailable", err)
	}
	if got := value(t, h.metrics.ConnectionsRefused); got < 3 {
		t.Errorf("kedascalers_grpc_connections_refused_total = %v, want >= 3", got)
	}
	if got := value(t, h.metrics.LimitRefusals.WithLabelValues("GRPC_MAX_CONNECTIONS")); got < 3 {
		t.Errorf(`kedascalers_limit_refusals_total{limit="GRPC_MAX_CONNECTIONS"} = %v, want >= 3`, got)
	}
	// One warning, however many were refused (rate-limited).
	if n := strings.Count(h.logs.String(), "too many open connections"); n != 1 {
		t.Errorf("%d warnings for refused connections, want 1:\n%s", n, h.logs.String())
	}
	// The connections within the limit still work.
	if err := healthCheck(callCtx(t), conns[0]); err != nil {
		t.Errorf("a connection within the limit: %v", err)
	}

	// A place freed is taken again.
	conns[1].Close()
	wait.For(t, waitTimeout, "the closed connection's place is released", func() bool {
		return value(t, h.metrics.Connections) == limit-1
	})
	if err := healthCheck(callCtx(t), h.newConn(t)); err != nil {
		t.Errorf("a new connection after one closed: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestHandshakeTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	cfg := defaultConfig()
	cfg.GRPCHandshakeTimeout = timeout
	h := start(t, cfg)

	// Within the timeout: a client that finishes its setup keeps its
	// connection past the timeout.
	conn := h.newConn(t)
	if err := healthCheck(callCtx(t), conn); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * timeout)
	if err := healthCheck(callCtx(t), conn); err != nil {
		t.Fatalf("a set-up connection after the handshake timeout: %v", err)
	}

	// Past it: a raw TCP connection that never sends the HTTP/2 preface
	// (or a TLS ClientHello) is closed.
	raw, err := net.DialTimeout("tcp", h.grpcAddr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetReadDeadline(time.Now().Add(waitTimeout))
	begin := time.Now()
	// The server writes its HTTP/2 settings first; read until it closes.
	_, err = io.Copy(io.Discard, raw)
	took := time.Since(begin)
	if isTimeout(err) {
		t.Fatalf("an idle connection was still open after %v", waitTimeout)
	}
	if took < timeout*8/10 || took > timeout+2*time.Second {
		t.Errorf("idle connection closed after %v, want about %v", took, timeout)
	}
	wait.For(t, waitTimeout, "the handshake failure is counted", func() bool {
		return value(t, h.metrics.HandshakeFailures) == 1
	})
	if got := value(t, h.metrics.Connections); got != 1 {
		t.Errorf("kedascalers_grpc_connections = %v, want 1 (the set-up one)", got)
	}
}

func TestMaxRecvMsgSize(t *testing.T) {
	const limit = 64 << 10
	cfg := defaultConfig()
	cfg.GRPCMaxRecvMsgBytes = limit
	h := start(t, cfg)
	client := pb.NewExternalScalerClient(h.conn)

	// ref returns a request of exactly size bytes on the wire.
	ref := func(size int) *pb.ScaledObjectRef {
		r := &pb.ScaledObjectRef{Name: "so", ScalerMetadata: map[string]string{"pad": ""}}
		base := proto.Size(r)
		r.ScalerMetadata["pad"] = strings.Repeat("x", size-base)
		for proto.Size(r) > size { // the length prefixes grow with the value
			v := r.ScalerMetadata["pad"]
			r.ScalerMetadata["pad"] = v[:len(v)-1]
		}
		if proto.Size(r) != size {
			t.Fatalf("cannot build a %d-byte request (got %d)", size, proto.Size(r))
		}
		return r
	}
	tests := []struct {
		name string
		size int
		code codes.Code
	}{
		{"at the limit", limit, codes.OK},
		{"one byte past it", limit + 1, codes.ResourceExhausted},
		{"1 MB", 1 << 20, codes.ResourceExhausted},
	}
	refused := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.IsActive(callCtx(t), ref(tt.size))
			if status.Code(err) != tt.code {
				t.Fatalf("IsActive with a %d-byte request = %v, want %v", tt.size, err, tt.code)
			}
			if tt.code == codes.OK {
				return
			}
			refused++
			// The server counts the refusal as the call ends, after the
			// client got its status.
			wait.For(t, waitTimeout, fmt.Sprintf("kedascalers_grpc_messages_too_large_total and kedascalers_limit_refusals_total{limit=\"GRPC_MAX_RECV_MSG_BYTES\"} reach %d", refused), func() bool {
				return value(t, h.metrics.MessagesTooLarge) == float64(refused) &&
					value(t, h.metrics.LimitRefusals.WithLabelValues("GRPC_MAX_RECV_MSG_BYTES")) == float64(refused)
			})
		})
	}
	if logs := h.logs.String(); !strings.Contains(logs, "GRPC_MAX_RECV_MSG_BYTES") {
		t.Errorf("no log line names GRPC_MAX_RECV_MSG_BYTES:\n%s", logs)
	}
	// The connection survives a refused message.
	if _, err := client.IsActive(callCtx(t), ref(100)); err != nil {
		t.Errorf("a small request after a refused one: %v", err)
	}
}

// rawHTTP2 is a hand-driven HTTP/2 client connection, for what grpc-go's
// client will not do (ping faster than 10 s).
type rawHTTP2 struct {
	conn net.Conn
	fr   *http2.Framer
}

func dialHTTP2(t *testing.T, addr string) *rawHTTP2 {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	r := &rawHTTP2{conn: c, fr: http2.NewFramer(c, c)}
	if err := r.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return r
}

// ping sends a ping and reads frames until its ack, or until the server
// sends GOAWAY (returned) or closes.
func (r *rawHTTP2) ping(t *testing.T, n byte) (*http2.GoAwayFrame, error) {
	t.Helper()
	data := [8]byte{n}
	if err := r.fr.WritePing(false, data); err != nil {
		return nil, err
	}
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := r.fr.WriteSettingsAck(); err != nil {
					return nil, err
				}
			}
		case *http2.PingFrame:
			if f.IsAck() && f.Data == data {
				return nil, nil
			}
		case *http2.GoAwayFrame:
			return f, nil
		}
	}
}

func TestKeepaliveEnforcement(t *testing.T) {
	const minPing = 100 * time.Millisecond
	cfg := defaultConfig()
	cfg.GRPCKeepaliveMinPing = minPing
	h := start(t, cfg)

	// At the limit: pings spaced by the minimum, with no call open (as
	// PermitWithoutStream allows), are answered.
	ok := dialHTTP2(t, h.grpcAddr)
	for i := range 5 {
		goAway, err := ok.ping(t, byte(i))
		if err != nil || goAway != nil {
			t.Fatalf("ping %d spaced by %v: GOAWAY %v, error %v", i+1, minPing, goAway, err)
		}
		time.Sleep(minPing + 20*time.Millisecond)
	}

	// Past it: a client pinging faster gets GOAWAY too_many_pings.
	fast := dialHTTP2(t, h.grpcAddr)
	var goAway *http2.GoAwayFrame
	for i := 0; i < 10 && goAway == nil; i++ {
		var err error
		if goAway, err = fast.ping(t, byte(i)); err != nil {
			t.Fatalf("ping %d: %v", i+1, err)
		}
	}
	if goAway == nil {
		t.Fatal("10 pings at once got no GOAWAY")
	}
	if goAway.ErrCode != http2.ErrCodeEnhanceYourCalm || string(goAway.DebugData()) != "too_many_pings" {
		t.Errorf("GOAWAY %v %q, want ENHANCE_YOUR_CALM too_many_pings", goAway.ErrCode, goAway.DebugData())
	}
	// The polite connection is still served.
	if goAway, err := ok.ping(t, 99); err != nil || goAway != nil {
		t.Errorf("the polite connection after the other's GOAWAY: GOAWAY %v, error %v", goAway, err)
	}
}

// value reads a counter or a gauge.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

func histogramCount(t *testing.T, hist prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	if err := hist.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}
