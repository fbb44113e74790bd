package redissession

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kedascalers/kedascalers/libs/scalerkit/config"
)

// Config is the service's connection to Redis, read from REDIS_*
// environment variables. Its envconfig defaults are the only defaults:
// tests and callers that build a Config by hand set every field.
type Config struct {
	// URL is a redis:// or rediss:// URL with optional user, password and
	// database. Exactly one of URL and Addrs must be set.
	URL string `envconfig:"REDIS_URL" desc:"redis://[user[:password]@]host:port[/db] or rediss:// for TLS; this or REDIS_ADDRS is required"`
	// Addrs lists host:port addresses: Sentinels when MasterName is set,
	// Cluster nodes when there are several (or Cluster is set), else one
	// server.
	Addrs []string `envconfig:"REDIS_ADDRS" desc:"comma-separated host:port list: Sentinels with REDIS_MASTER_NAME, Cluster nodes when several; this or REDIS_URL is required"`
	// MasterName is the Sentinel master name.
	MasterName string `envconfig:"REDIS_MASTER_NAME" desc:"Sentinel master name; REDIS_ADDRS are then Sentinels"`
	// Cluster makes a single REDIS_ADDRS entry a Cluster (a cloud
	// provider's configuration endpoint).
	Cluster bool `envconfig:"REDIS_CLUSTER" default:"false" desc:"treat a single REDIS_ADDRS entry as a Redis Cluster (configuration endpoint)"`
	// Username overrides the URL's user.
	Username string `envconfig:"REDIS_USERNAME" desc:"ACL user; overrides the user in REDIS_URL"`
	// Password overrides the URL's password. Mount it from a Secret.
	Password string `envconfig:"REDIS_PASSWORD" desc:"password (from a Secret); overrides the password in REDIS_URL"`
	// DB is the database used when a trigger gives no databaseIndex and
	// REDIS_ADDRS is used; with REDIS_URL the URL's path says.
	DB int `envconfig:"REDIS_DB" default:"0" want:">= 0" desc:"default database with REDIS_ADDRS (with REDIS_URL the URL path says); triggers override it with databaseIndex"`
	// TLS turns TLS on; rediss:// implies it.
	TLS bool `envconfig:"REDIS_TLS" default:"false" desc:"connect with TLS (rediss:// implies it)"`
	// TLSCAFile is a PEM bundle of the CAs trusted for the server
	// certificate, instead of the system roots.
	TLSCAFile string `envconfig:"REDIS_TLS_CA_FILE" file:"true" desc:"CA bundle (PEM) trusted for the Redis server certificate; system roots when empty"`
	// TLSServerName is the name checked in the server certificate.
	TLSServerName string `envconfig:"REDIS_TLS_SERVER_NAME" desc:"name checked in the server certificate; the host name when empty"`
	// TLSInsecureSkipVerify disables certificate checks. Never in
	// production.
	TLSInsecureSkipVerify bool `envconfig:"REDIS_TLS_INSECURE_SKIP_VERIFY" default:"false" desc:"accept any server certificate (tests only)"`
	// PoolSize caps the connections of each database's client.
	PoolSize int `envconfig:"REDIS_POOL_SIZE" default:"10" want:"> 0" desc:"most connections one database's client opens; every client's connections together stay within REDIS_MAX_CONNECTIONS, which cuts this at start if needed (the start log says)"`
	// MinIdleConns is how many connections the default database's client
	// keeps open; the other databases' keep at most one idle.
	MinIdleConns int `envconfig:"REDIS_MIN_IDLE_CONNS" default:"1" desc:"idle connections kept open for the default database; the client of any other databaseIndex keeps at most one idle, so that connections go where the reads are"`
	// ConnectTimeout bounds connecting.
	ConnectTimeout time.Duration `envconfig:"REDIS_CONNECT_TIMEOUT" was:"REDIS_DIAL_TIMEOUT" default:"2s" want:"> 0s" desc:"bound on connecting to Redis"`
	// ReadTimeout bounds reading one reply.
	ReadTimeout time.Duration `envconfig:"REDIS_READ_TIMEOUT" default:"3s" want:"> 0s" desc:"bound on reading one reply"`
	// WriteTimeout bounds writing one command.
	WriteTimeout time.Duration `envconfig:"REDIS_WRITE_TIMEOUT" default:"3s" want:"> 0s" desc:"bound on writing one command"`
	// ScanCount is the COUNT hint of SCAN in mode=pattern.
	ScanCount int64 `envconfig:"REDIS_SCAN_COUNT" default:"1000" want:"> 0" desc:"COUNT hint of each SCAN step (mode=pattern)"`
	// NotifyMinInterval is the least time between two re-checks caused by
	// keyspace notifications of a whole keyspace or pattern (mode=dbsize and
	// mode=pattern): a busy keyspace sends an event on every write, and a
	// pattern re-check is a SCAN walk. The first change after a quiet spell
	// is re-checked at once.
	NotifyMinInterval time.Duration `envconfig:"REDIS_NOTIFY_MIN_INTERVAL" default:"5s" want:">= 0s" desc:"least time between re-checks caused by keyspace notifications for dbsize and pattern triggers (the first change after a quiet spell is immediate)"`
	// MaxConnections is the hard cap on the connections the scaler opens
	// to Redis (Sentinels and Cluster nodes included), whatever triggers
	// ask: every dial goes through one counter. The databases' clients
	// share it, each read in its turn, round robin among namespaces.
	MaxConnections int `envconfig:"REDIS_MAX_CONNECTIONS" default:"32" desc:"hard cap on the connections the scaler opens to Redis, Sentinels and pub/sub included, shared by every databaseIndex: a read waits its turn for one (round robin among namespaces, one namespace at most half) within BACKEND_TIMEOUT, and an idle database's connections are closed for a busy one"`
	// MaxDatabases bounds the database clients open at once (memory):
	// past it the client idle the longest is closed, or the read waits
	// for one to fall idle. It never refuses a databaseIndex.
	MaxDatabases int `envconfig:"REDIS_MAX_DATABASES" default:"16" want:"> 0" desc:"database clients (one per databaseIndex in use) open at once; past it the client idle the longest is closed to make room, or the read waits (within BACKEND_TIMEOUT) for one to fall idle: a databaseIndex the server has is never refused"`
	// ClientIdleTimeout is how long a database's client stays open
	// without a read before it is closed, with its connections.
	ClientIdleTimeout time.Duration `envconfig:"REDIS_CLIENT_IDLE_TIMEOUT" default:"2m" want:"> 0s" desc:"a database's client (and its connections) is closed after this long without a read"`
	// MaxWatchedKeys bounds the keyspace-notification places (a channel
	// or pattern per namespace watching it) on the one shared pub/sub
	// connection, shared fairly among namespaces.
	MaxWatchedKeys int `envconfig:"REDIS_MAX_WATCHED_KEYS" default:"6000" want:">= 0" desc:"keyspace-notification places (one per channel or pattern and namespace watching it) on one shared connection, shared fairly among namespaces: a namespace under its share takes one from the namespace holding the most; a trigger without one is polled every PUSH_INTERVAL instead, with a rate-limited warning; 0 turns notifications off. 6000: MAX_FEEDS (5000) and MAX_TARGET_READERS (1000), each of which holds one; about 2 KB each"`
}

// Validate checks the configuration and names the variable at fault.
func (c *Config) Validate() error {
	if err := config.CheckBounds(c); err != nil {
		return err
	}
	hasURL := strings.TrimSpace(c.URL) != ""
	switch {
	case !hasURL && len(c.Addrs) == 0:
		return errors.New("REDIS_URL or REDIS_ADDRS is required (there is no default: the scaler must not guess which Redis to read)")
	case hasURL && len(c.Addrs) > 0:
		return errors.New("REDIS_URL and REDIS_ADDRS are both set: set one")
	case hasURL && c.MasterName != "":
		return errors.New("REDIS_MASTER_NAME needs REDIS_ADDRS (the Sentinels), not REDIS_URL")
	case hasURL && c.Cluster:
		return errors.New("REDIS_CLUSTER needs REDIS_ADDRS, not REDIS_URL")
	case c.Cluster && c.MasterName != "":
		return errors.New("REDIS_CLUSTER and REDIS_MASTER_NAME: set one")
	case c.isCluster() && c.DB != 0:
		return fmt.Errorf("REDIS_DB=%d: Redis Cluster has only database 0", c.DB)
	case c.MinIdleConns < 0 || c.MinIdleConns > c.PoolSize:
		return fmt.Errorf("REDIS_MIN_IDLE_CONNS=%d: want between 0 and REDIS_POOL_SIZE (%d)", c.MinIdleConns, c.PoolSize)
	}
	for _, a := range c.Addrs {
		if _, _, err := net.SplitHostPort(strings.TrimSpace(a)); err != nil {
			return fmt.Errorf("REDIS_ADDRS entry %q: want host:port", a)
		}
	}
	if !c.tlsOn() && (c.TLSCAFile != "" || c.TLSServerName != "" || c.TLSInsecureSkipVerify) {
		return errors.New("REDIS_TLS_CA_FILE, REDIS_TLS_SERVER_NAME or REDIS_TLS_INSECURE_SKIP_VERIFY is set but TLS is off: use rediss:// or REDIS_TLS=true")
	}
	return nil
}

// Settings is a validated Config with what Resolve derives from it: the
// pool size within REDIS_MAX_CONNECTIONS and the client options (address,
// credentials, TLS). New runs on it and checks nothing again.
type Settings struct {
	Config
	budget budget
	opts   redis.UniversalOptions // template of every client, but for its Dialer
}

// Resolve derives the Settings of a validated c: it shares out
// REDIS_MAX_CONNECTIONS, parses REDIS_URL and reads REDIS_TLS_CA_FILE.
// Its errors name the variable at fault.
func (c *Config) Resolve(config.Config) (Settings, error) {
	bud, err := c.budget()
	if err != nil {
		return Settings{}, err
	}
	opts := redis.UniversalOptions{
		MasterName:   c.MasterName,
		DB:           c.DB,
		PoolSize:     bud.pool,
		MinIdleConns: c.MinIdleConns,
		// PoolSize alone lets go-redis open more connections under load,
		// and a separate pipeline pool would add its own: the scaler must
		// never be what loads Redis.
		MaxActiveConns:   bud.pool,
		PipelinePoolSize: -1,
		// One dial per attempt: a refused connection is an outage to
		// report now (Unavailable), not to retry until BACKEND_TIMEOUT
		// turns it into DeadlineExceeded. Commands still retry, which
		// covers pooled connections gone stale after a Redis restart.
		DialerRetries: 1,
		DialTimeout:   c.ConnectTimeout,
		ReadTimeout:   c.ReadTimeout,
		WriteTimeout:  c.WriteTimeout,
		// A connection idle as long as its client would be is closed too.
		ConnMaxIdleTime: c.ClientIdleTimeout,
		// scalerkit bounds every read with BACKEND_TIMEOUT through ctx.
		ContextTimeoutEnabled: true,
		IsClusterMode:         c.Cluster,
	}
	for _, a := range c.Addrs {
		opts.Addrs = append(opts.Addrs, strings.TrimSpace(a))
	}
	tlsHost := ""
	if strings.TrimSpace(c.URL) != "" {
		u, err := parseURL(c.URL)
		if err != nil {
			return Settings{}, err
		}
		opts.Addrs = []string{u.addr}
		opts.Username, opts.Password, opts.DB = u.username, u.password, u.db
		tlsHost, _, _ = net.SplitHostPort(u.addr)
	}
	if c.Username != "" {
		opts.Username = c.Username
	}
	if c.Password != "" {
		opts.Password = c.Password
	}
	if c.tlsOn() {
		if opts.TLSConfig, err = tlsConfig(*c, tlsHost); err != nil {
			return Settings{}, err
		}
	}
	return Settings{Config: *c, budget: bud, opts: opts}, nil
}

// tlsConfig builds the client TLS settings. host is the URL's host name,
// checked in the certificate unless REDIS_TLS_SERVER_NAME says otherwise;
// when both are empty (REDIS_ADDRS) each connection checks the host it
// dials.
func tlsConfig(cfg Config, host string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host, InsecureSkipVerify: cfg.TLSInsecureSkipVerify} //nolint:gosec // opt-in, documented as tests only
	if cfg.TLSServerName != "" {
		tc.ServerName = cfg.TLSServerName
	}
	if cfg.TLSCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("REDIS_TLS_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("REDIS_TLS_CA_FILE %s: no PEM certificate found", cfg.TLSCAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// budget is how the connections of REDIS_MAX_CONNECTIONS are shared out.
type budget struct {
	// pool is the most connections of one client's pool: of each
	// database's client, or of each node's on a Cluster.
	pool int
	// reserved is what the database clients leave for the rest: the
	// shared pub/sub connection, and with Sentinel the Sentinel
	// connections of the pub/sub client and of one database client.
	reserved int
	// slots is the number of reads that hold a connection at once, shared
	// by every database and namespace (the gate).
	slots int
}

// budget shares out MaxConnections. Standalone: one pub/sub connection
// is reserved, the database clients share the rest, each pool at most
// PoolSize. Sentinel: the pub/sub client's three, one connection per
// Sentinel while the master is looked up, and a database client's own
// Sentinel connection and +switch-master subscription. A Cluster has a
// pool per node, and the number of nodes is only known from the Cluster:
// the pool is cut to the addresses given. The dial counter enforces the
// cap whatever the topology turns out to be; past it a dial waits for an
// idle client's connections to close.
func (c *Config) budget() (budget, error) {
	if c.MaxConnections <= 0 {
		return budget{}, fmt.Errorf("REDIS_MAX_CONNECTIONS=%d: want > 0", c.MaxConnections)
	}
	var b budget
	nodes := 1
	switch {
	case c.isCluster():
		nodes = max(1, len(c.Addrs))
	case c.MasterName != "":
		b.reserved = 3 + len(c.Addrs) + 2
	default:
		b.reserved = 1
	}
	if c.MaxWatchedKeys == 0 || c.isCluster() {
		b.reserved = max(0, b.reserved-1) // no pub/sub connection
		if c.MasterName != "" {
			b.reserved -= 2
		}
	}
	b.slots = c.MaxConnections - b.reserved
	b.pool = min(c.PoolSize, b.slots/nodes)
	if b.pool < 1 {
		return budget{}, fmt.Errorf("REDIS_MAX_CONNECTIONS=%d is too small with %s: %d are reserved and a database client needs at least one more; raise REDIS_MAX_CONNECTIONS",
			c.MaxConnections, c.topology(), b.reserved)
	}
	if c.MinIdleConns > b.pool {
		return budget{}, fmt.Errorf("REDIS_MIN_IDLE_CONNS=%d: a client's pool holds only %d connections within REDIS_MAX_CONNECTIONS=%d",
			c.MinIdleConns, b.pool, c.MaxConnections)
	}
	return b, nil
}

// addressVariable names the variable that says where Redis is.
func (c *Config) addressVariable() string {
	if strings.TrimSpace(c.URL) != "" {
		return "REDIS_URL"
	}
	return "REDIS_ADDRS"
}

// topology names the kind of deployment the configuration describes.
func (c *Config) topology() string {
	switch {
	case c.MasterName != "":
		return "sentinel"
	case c.isCluster():
		return "cluster"
	}
	return "standalone"
}

// isCluster reports whether the configuration names a Redis Cluster.
func (c *Config) isCluster() bool {
	return c.MasterName == "" && (len(c.Addrs) > 1 || (c.Cluster && len(c.Addrs) > 0))
}

// tlsOn reports whether connections use TLS.
func (c *Config) tlsOn() bool {
	return c.TLS || strings.HasPrefix(strings.TrimSpace(c.URL), "rediss://")
}

// noScheme explains a REDIS_URL written as an address. It quotes raw
// only when raw is a plain host:port, which cannot hold a password.
func noScheme(raw string) error {
	if host, port, err := net.SplitHostPort(raw); err == nil && host != "" && !strings.ContainsAny(raw, "@/") {
		return fmt.Errorf("REDIS_URL %q is an address, not a URL: write it as redis://%s/0 (or rediss:// for TLS)",
			raw, net.JoinHostPort(host, port))
	}
	return errors.New("REDIS_URL has no scheme: want a URL such as redis://127.0.0.1:6379/0 (or rediss:// for TLS)")
}

// redisURL is what REDIS_URL says.
type redisURL struct {
	addr     string
	username string
	password string
	db       int
}

// parseURL reads a redis:// or rediss:// URL. Its errors never quote the
// URL, which may hold a password.
func parseURL(raw string) (redisURL, error) {
	raw = strings.TrimSpace(raw)
	if !strings.Contains(raw, "://") {
		return redisURL{}, noScheme(raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error quotes the whole URL, password included
		}
		return redisURL{}, fmt.Errorf("REDIS_URL is not a valid URL: %w", err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return redisURL{}, fmt.Errorf("REDIS_URL scheme %q: want redis:// or rediss://", u.Scheme)
	}
	if u.RawQuery != "" {
		return redisURL{}, errors.New("REDIS_URL has query parameters: set pool and timeouts with the REDIS_* variables instead")
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return redisURL{}, errors.New("REDIS_URL has no host")
	}
	if port == "" {
		port = "6379"
	}
	r := redisURL{addr: net.JoinHostPort(host, port), username: u.User.Username()}
	r.password, _ = u.User.Password()
	switch path := strings.Trim(u.Path, "/"); {
	case path == "":
	case strings.Contains(path, "/"):
		return redisURL{}, fmt.Errorf("REDIS_URL path %q: want /<database number>", u.Path)
	default:
		db, err := strconv.Atoi(path)
		if err != nil || db < 0 {
			return redisURL{}, fmt.Errorf("REDIS_URL path %q: want /<database number>", u.Path)
		}
		r.db = db
	}
	return r, nil
}
