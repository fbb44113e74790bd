package server

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metrics"
	"github.com/kedascalers/kedascalers/libs/scalerkit/ratelog"
)

// connLimits bounds the gRPC connections of one server and watches each of
// them from accept to close: how many are open (GRPC_MAX_CONNECTIONS),
// whether they finished TLS and HTTP/2 setup, how long they lived, and how
// many calls each has open (GRPC_MAX_CONCURRENT_STREAMS). It wraps the
// listener; a call finds its connection through the peer address, which
// the wrapped connection carries (see connOf). It installs no gRPC stats
// handler: grpc-go builds several events per call for one.
type connLimits struct {
	maxConns   int   // 0: no cap
	maxStreams int64 // 0: not watched
	metrics    *metrics.Metrics
	log        *slog.Logger
	warn       *ratelog.Limiter
	// tls: connections are TLS, so their setup is watched above TLS
	// (setupCreds) rather than on the raw bytes.
	tls bool

	mu   sync.Mutex
	open int
}

// warnEvery is how often each kind of limit warning may be logged.
const warnEvery = time.Minute

func newConnLimits(maxConns int, maxStreams uint32, m *metrics.Metrics, log *slog.Logger) *connLimits {
	return &connLimits{
		maxConns:   maxConns,
		maxStreams: int64(maxStreams),
		metrics:    m,
		log:        log,
		warn:       ratelog.New(warnEvery, 8),
	}
}

// listener returns lis with the connection cap applied.
func (l *connLimits) listener(lis net.Listener) net.Listener {
	return &limitListener{Listener: lis, limits: l}
}

// limitListener accepts connections up to the cap and closes the others at
// once, so that a flood of idle connections cannot pile up.
type limitListener struct {
	net.Listener
	limits *connLimits
}

// Accept returns the next connection within the cap.
func (ll *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc := ll.limits.admit(c); tc != nil {
			return tc, nil
		}
	}
}

// admit tracks c, or closes it and returns nil when the cap is reached.
func (l *connLimits) admit(c net.Conn) *trackedConn {
	l.mu.Lock()
	if l.maxConns > 0 && l.open >= l.maxConns {
		l.mu.Unlock()
		c.Close()
		l.metrics.ConnectionsRefused.Inc()
		l.metrics.LimitRefusals.WithLabelValues("GRPC_MAX_CONNECTIONS").Inc()
		l.warn.Log(context.Background(), l.log, slog.LevelWarn, "grpc-max-connections",
			"gRPC connection refused: too many open connections",
			slog.Int("limit", l.maxConns), slog.String("variable", "GRPC_MAX_CONNECTIONS"),
			slog.String("remote", c.RemoteAddr().String()))
		return nil
	}
	l.open++
	l.mu.Unlock()
	tc := &trackedConn{Conn: c, limits: l, start: time.Now(), watchRaw: !l.tls}
	tc.addr = &connAddr{Addr: c.RemoteAddr(), tc: tc}
	l.metrics.Connections.Inc()
	return tc
}

// release forgets a closed connection.
func (l *connLimits) release(tc *trackedConn) {
	l.mu.Lock()
	l.open--
	l.mu.Unlock()
	l.metrics.Connections.Dec()
	l.metrics.ConnectionDuration.Observe(time.Since(tc.start).Seconds())
	if !tc.established.Load() {
		l.metrics.HandshakeFailures.Inc()
	}
}

// trackedConn is an accepted connection; closing it releases its place.
type trackedConn struct {
	net.Conn
	limits      *connLimits
	addr        *connAddr
	start       time.Time
	watchRaw    bool         // plaintext: the setup is watched in Read
	watch       setupWatch   // used by the one goroutine reading, until established
	setUp       atomic.Int64 // unix nanoseconds: when TLS and HTTP/2 setup completed
	established atomic.Bool  // TLS and HTTP/2 setup completed; set after setUp
	streams     atomic.Int64
	closeOnce   sync.Once
}

// Read reads from the connection, watching for the end of its setup.
func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if c.watchRaw {
		c.noteRead(b[:n])
	}
	return n, err
}

// RemoteAddr returns the peer's address, which leads back to c.
func (c *trackedConn) RemoteAddr() net.Addr { return c.addr }

// noteRead watches b, read from the connection's HTTP/2 bytes, until the
// client's preface and SETTINGS are in: grpc-go starts the connection's
// MAX_CONNECTION_AGE timer right after reading them, so streams end
// counting from that read.
func (c *trackedConn) noteRead(b []byte) {
	if c.established.Load() || !c.watch.seen(b) {
		return
	}
	c.setUp.Store(time.Now().UnixNano())
	c.established.Store(true)
}

// Close closes the connection and releases its place once.
func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() { c.limits.release(c) })
	return err
}

// tooLarge reports whether err is grpc-go's refusal of a request message
// over the receive limit.
func tooLarge(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.ResourceExhausted && strings.Contains(st.Message(), "larger than max")
}
