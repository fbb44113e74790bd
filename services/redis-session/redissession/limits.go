package redissession

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	skmetrics "github.com/kedascalers/kedascalers/libs/scalerkit/metrics"
)

// errConnLimit is the dial error of a connection past REDIS_MAX_CONNECTIONS.
var errConnLimit = errors.New("every Redis connection the scaler may open is in use")

// connLimit counts the connections the scaler holds open to Redis and
// refuses a dial past its maximum. Every client's Dialer is connLimit.dial,
// so the cap holds whatever go-redis opens: pools, pub/sub, Sentinel
// look-ups, Cluster nodes.
type connLimit struct {
	max     int64
	timeout time.Duration
	tls     *tls.Config
	open    atomic.Int64
	refused func()
}

// dial opens one connection, or fails with errConnLimit when max are open.
// It dials as go-redis's own dialer does: TCP, then TLS when configured
// (the server name taken from addr when the configuration has none).
func (l *connLimit) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	for {
		n := l.open.Load()
		if n >= l.max {
			if l.refused != nil {
				l.refused()
			}
			return nil, fmt.Errorf("dialing %s: %w (%d, %s)", addr, errConnLimit, l.max, limitConnections)
		}
		if l.open.CompareAndSwap(n, n+1) {
			break
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
		l.open.Add(-1)
		return nil, err
	}
	cc := &countedConn{Conn: c, l: l}
	if sc, ok := c.(syscall.Conn); ok {
		// go-redis checks idle connections through the socket itself.
		return countedSysConn{cc, sc}, nil
	}
	return cc, nil
}

// countedConn gives its slot back when closed.
type countedConn struct {
	net.Conn
	l    *connLimit
	once sync.Once
}

// Close closes the connection and frees its slot.
func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
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
	clients       prometheus.Gauge
	subscriptions prometheus.Gauge
	limitReached  *prometheus.CounterVec
}

// newMetrics creates the metrics and registers them, with the gauges
// read at scrape time (open connections, connections in use), on reg
// when it is not nil.
func newMetrics(reg prometheus.Registerer, b *Backend) (*metrics, error) {
	// Refusals are counted in the scaler's kedascalers_limit_refusals_total.
	refused, err := skmetrics.Refusals(reg)
	if err != nil {
		return nil, err
	}
	m := &metrics{
		clients: skmetrics.Gauge("kedascalers_redis_clients",
			"Redis clients open, one per database in use (at most REDIS_MAX_DATABASES)."),
		subscriptions: skmetrics.Gauge("kedascalers_redis_subscriptions",
			"Keyspace-notification channels and patterns subscribed (at most REDIS_MAX_WATCHED_KEYS)."),
		limitReached: refused,
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
