package redissession

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	skmetrics "github.com/kedascalers/kedascalers/libs/scalerkit/metrics"
	"github.com/kedascalers/kedascalers/libs/scalerkit/share"
)

// errConnLimit is the dial error of a connection past REDIS_MAX_CONNECTIONS
// that found no slot within its connect timeout.
var errConnLimit = errors.New("every Redis connection the scaler may open is in use")

// connLimit counts the connections the scaler holds open to Redis and
// keeps a dial past its maximum waiting: it closes the connections of a
// database client nobody uses (evict), or waits until a connection closes
// or a client falls idle, within the dial's context (REDIS_CONNECT_TIMEOUT).
// Every client's Dialer is connLimit.dial, so the cap holds whatever
// go-redis opens: pools, pub/sub, Sentinel look-ups, Cluster nodes.
type connLimit struct {
	max     int64
	timeout time.Duration
	tls     *tls.Config
	open    atomic.Int64
	refused func()
	// evict closes an idle database client that holds connections and
	// reports whether it found one; nil: none to close.
	evict func() bool
	// freed is signalled when a connection closes or a client falls idle.
	freed signal
}

// dial opens one connection once fewer than max are open. It dials as
// go-redis's own dialer does: TCP, then TLS when configured (the server
// name taken from addr when the configuration has none).
func (l *connLimit) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	for {
		freed := l.freed.wait() // before the count: a close after it is not missed
		n := l.open.Load()
		if n < l.max {
			if l.open.CompareAndSwap(n, n+1) {
				break
			}
			continue
		}
		if l.evict != nil && l.evict() {
			continue
		}
		select {
		case <-freed:
		case <-ctx.Done():
			if l.refused != nil {
				l.refused()
			}
			return nil, fmt.Errorf("dialing %s: %w (%d, %s)", addr, errConnLimit, l.max, limitConnections)
		}
	}
	nd := &net.Dialer{Timeout: l.timeout, KeepAlive: 30 * time.Second}
	var (
		c   net.Conn
		err error
	)
	if l.tls != nil {
		c, err = (&tls.Dialer{NetDialer: nd, Config: l.tls}).DialContext(ctx, network, addr)
	} else {
		c, err = nd.DialContext(ctx, network, addr)
	}
	if err != nil {
		l.release()
		return nil, err
	}
	cc := &countedConn{Conn: c, l: l}
	if sc, ok := c.(syscall.Conn); ok {
		// go-redis checks idle connections through the socket itself.
		return countedSysConn{cc, sc}, nil
	}
	return cc, nil
}

// signal wakes every goroutine waiting on it, any number of times.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed by the next broadcast.
func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// broadcast wakes the goroutines waiting.
func (s *signal) broadcast() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// countedConn gives its slot back once closed on both ends.
type countedConn struct {
	net.Conn
	l    *connLimit
	once sync.Once
}

// Close closes the connection and frees its slot once Redis has closed
// its end too (it answers our FIN with its own once it has let the client
// go), so that Redis never counts more than REDIS_MAX_CONNECTIONS of ours
// while a closed connection is replaced. The wait is in the background,
// bounded by REDIS_CONNECT_TIMEOUT.
func (c *countedConn) Close() error {
	var err error
	c.once.Do(func() {
		if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			go c.drain()
			return
		}
		err = c.Conn.Close()
		c.l.release()
	})
	return err
}

// drain reads until Redis closes its end, then closes and frees the slot.
func (c *countedConn) drain() {
	_ = c.Conn.SetReadDeadline(time.Now().Add(c.l.timeout))
	_, _ = io.Copy(io.Discard, c.Conn)
	_ = c.Conn.Close()
	c.l.release()
}

// release gives a connection's slot back.
func (l *connLimit) release() {
	l.open.Add(-1)
	l.freed.broadcast()
}

// countedSysConn is a countedConn over a plain socket.
type countedSysConn struct {
	*countedConn
	sc syscall.Conn
}

// SyscallConn gives go-redis's health check the socket.
func (c countedSysConn) SyscallConn() (syscall.RawConn, error) { return c.sc.SyscallConn() }

// Limit names, as in the metric label and the errors.
const (
	limitConnections = "REDIS_MAX_CONNECTIONS"
	limitDatabases   = "REDIS_MAX_DATABASES"
	limitWatchedKeys = "REDIS_MAX_WATCHED_KEYS"
)

// metrics are the backend's own Prometheus metrics.
type metrics struct {
	// connections and watchedKeys report the shared pools' places
	// (kedascalers_held{resource="redis_connections"|"watched_keys"}).
	connections   share.Options
	watchedKeys   share.Options
	clients       prometheus.Gauge
	subscriptions prometheus.Gauge
	limitReached  *prometheus.CounterVec
}

// newMetrics creates the metrics and registers them, with the gauges
// read at scrape time (open connections, connections in use), on reg
// when it is not nil.
func newMetrics(reg prometheus.Registerer, b *Backend, slots int) (*metrics, error) {
	// Refusals are counted in the scaler's kedascalers_limit_refusals_total.
	refused, err := skmetrics.Refusals(reg)
	if err != nil {
		return nil, err
	}
	conns, err := skmetrics.SharedOn(reg, "redis_connections", slots)
	if err != nil {
		return nil, err
	}
	watched, err := skmetrics.SharedOn(reg, "watched_keys", b.cfg.MaxWatchedKeys)
	if err != nil {
		return nil, err
	}
	m := &metrics{
		clients: skmetrics.Gauge("kedascalers_redis_clients",
			"Redis clients open, one per database in use (at most REDIS_MAX_DATABASES); they share REDIS_MAX_CONNECTIONS."),
		subscriptions: skmetrics.Gauge("kedascalers_redis_subscriptions",
			"Keyspace-notification channels and patterns subscribed (at most REDIS_MAX_WATCHED_KEYS)."),
		limitReached: refused,
		connections:  conns,
		watchedKeys:  watched,
	}
	for _, l := range []string{limitConnections, limitDatabases, limitWatchedKeys} {
		m.limitReached.WithLabelValues(l)
	}
	if reg == nil {
		return m, nil
	}
	open := skmetrics.GaugeFunc("kedascalers_redis_connections",
		"Connections open to Redis, Sentinels and pub/sub included (at most REDIS_MAX_CONNECTIONS).",
		func() float64 { return float64(b.conns.open.Load()) })
	inUse := skmetrics.GaugeFunc("kedascalers_redis_connections_in_use",
		"Connections of the database clients' pools busy with a command.",
		func() float64 { return float64(b.connsInUse()) })
	for _, c := range []prometheus.Collector{m.clients, m.subscriptions, open, inUse} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering the Redis metrics: %w", err)
		}
	}
	return m, nil
}
