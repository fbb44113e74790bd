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
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metrics"
	"github.com/kedascalers/kedascalers/libs/scalerkit/ratelog"
)

// connLimits bounds the gRPC connections of one server and watches each of
// them from accept to close: how many are open (GRPC_MAX_CONNECTIONS),
// whether they finished TLS and HTTP/2 setup, how long they lived, and how
// many calls each has open (GRPC_MAX_CONCURRENT_STREAMS). It is the
// listener's wrapper and the gRPC stats handler at once, which is how a
// net.Conn is matched with the HTTP/2 transport grpc-go builds on it.
type connLimits struct {
	maxConns   int   // 0: no cap
	maxStreams int64 // 0: not watched
	metrics    *metrics.Metrics
	log        *slog.Logger
	warn       *ratelog.Limiter

	mu   sync.Mutex
	open int
	// pending holds the connections not yet set up, by remote address;
	// several share an address only on in-memory listeners (bufconn),
	// where they are matched oldest first.
	pending map[string][]*trackedConn
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
		pending:    map[string][]*trackedConn{},
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
	tc := &trackedConn{Conn: c, limits: l, start: time.Now()}
	key := c.RemoteAddr().String()
	l.pending[key] = append(l.pending[key], tc)
	l.mu.Unlock()
	l.metrics.Connections.Inc()
	return tc
}

// release forgets a closed connection.
func (l *connLimits) release(tc *trackedConn) {
	l.mu.Lock()
	l.open--
	l.unpend(tc.RemoteAddr().String(), tc)
	l.mu.Unlock()
	l.metrics.Connections.Dec()
	l.metrics.ConnectionDuration.Observe(time.Since(tc.start).Seconds())
	if !tc.established.Load() {
		l.metrics.HandshakeFailures.Inc()
	}
}

// unpend removes tc from the pending connections of key. l.mu is held.
func (l *connLimits) unpend(key string, tc *trackedConn) {
	q := l.pending[key]
	for i, c := range q {
		if c == tc {
			q = append(q[:i:i], q[i+1:]...)
			break
		}
	}
	if len(q) == 0 {
		delete(l.pending, key)
		return
	}
	l.pending[key] = q
}

// trackedConn is an accepted connection; closing it releases its place.
type trackedConn struct {
	net.Conn
	limits      *connLimits
	start       time.Time
	setUp       time.Time    // when TLS and HTTP/2 setup completed; written once, in TagConn
	lastRead    atomic.Int64 // unix nanoseconds of the last Read's end
	established atomic.Bool  // TLS and HTTP/2 setup completed
	streams     atomic.Int64
	closeOnce   sync.Once
}

// Read reads from the connection, noting when.
func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.lastRead.Store(time.Now().UnixNano())
	return n, err
}

// Close closes the connection and releases its place once.
func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() { c.limits.release(c) })
	return err
}

type connKey struct{}

// TagConn marks the connection set up: grpc-go calls it once the HTTP/2
// transport exists, after TLS and the HTTP/2 preface.
func (l *connLimits) TagConn(ctx context.Context, info *stats.ConnTagInfo) context.Context {
	if info.RemoteAddr == nil {
		return ctx
	}
	key := info.RemoteAddr.String()
	l.mu.Lock()
	var tc *trackedConn
	if q := l.pending[key]; len(q) > 0 {
		tc = q[0]
		l.unpend(key, tc)
	}
	l.mu.Unlock()
	if tc == nil {
		return ctx
	}
	// grpc-go starts the connection's MAX_CONNECTION_AGE timer right
	// after reading the client's HTTP/2 SETTINGS, the last read before
	// TagConn (the connection's reader starts after it), however late
	// this goroutine runs: streams end counting from that read.
	tc.setUp = time.Now()
	if n := tc.lastRead.Load(); n != 0 {
		tc.setUp = time.Unix(0, n)
	}
	tc.established.Store(true)
	return context.WithValue(ctx, connKey{}, tc)
}

// HandleConn is part of stats.Handler; nothing to do.
func (l *connLimits) HandleConn(context.Context, stats.ConnStats) {}

// TagRPC is part of stats.Handler; nothing to tag.
func (l *connLimits) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

// HandleRPC counts the calls open on each connection, and the requests
// refused for their size.
func (l *connLimits) HandleRPC(ctx context.Context, s stats.RPCStats) {
	tc, _ := ctx.Value(connKey{}).(*trackedConn)
	switch s := s.(type) {
	case *stats.Begin:
		if tc == nil || l.maxStreams == 0 {
			return
		}
		if n := tc.streams.Add(1); n == l.maxStreams {
			l.metrics.StreamLimitReached.Inc()
			l.warn.Log(ctx, l.log, slog.LevelWarn, "grpc-max-concurrent-streams",
				"gRPC connection reached its limit of open calls: its further calls wait",
				slog.Int64("limit", l.maxStreams), slog.String("variable", "GRPC_MAX_CONCURRENT_STREAMS"),
				slog.String("remote", tc.RemoteAddr().String()))
		}
	case *stats.End:
		if tc != nil && l.maxStreams != 0 {
			tc.streams.Add(-1)
		}
		if tooLarge(s.Error) {
			l.metrics.MessagesTooLarge.Inc()
			l.metrics.LimitRefusals.WithLabelValues("GRPC_MAX_RECV_MSG_BYTES").Inc()
			l.warn.Log(ctx, l.log, slog.LevelWarn, "grpc-max-recv-msg-bytes",
				"gRPC request refused: message too large",
				slog.String("variable", "GRPC_MAX_RECV_MSG_BYTES"), slog.String("error", status.Convert(s.Error).Message()))
		}
	}
}

// tooLarge reports whether err is grpc-go's refusal of a request message
// over the receive limit.
func tooLarge(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.ResourceExhausted && strings.Contains(st.Message(), "larger than max")
}
