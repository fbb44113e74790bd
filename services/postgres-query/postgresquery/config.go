package postgresquery

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kedascalers/kedascalers/libs/scalerkit/config"
	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
)

// Application names the scaler's sessions carry in pg_stat_activity, unless
// the DSN sets its own application_name (listener sessions then carry it
// with ListenSuffix).
const (
	// AppName is the application_name of query sessions.
	AppName = "kedascalers-postgres-query"
	// ListenSuffix is appended to the application_name of LISTEN sessions.
	ListenSuffix = "-listen"
	// TargetSuffix is appended to the application_name of the sessions
	// of background target reads.
	TargetSuffix = "-target"
)

// maxQueryTimeout bounds QUERY_TIMEOUT well within statement_timeout's
// range (milliseconds in an int32).
const maxQueryTimeout = time.Hour

// vars names the connection variables: POSTGRES_URL_BILLING is the
// connection "billing", POSTGRES_PASSWORD_BILLING its password.
const vars sqlmetric.Vars = "POSTGRES"

// Config is the service's configuration, read from environment variables.
// Its envconfig defaults are the only defaults: tests that build a Config
// by hand set every field.
type Config struct {
	// Config holds the settings shared by the SQL scalers: QUERY_TIMEOUT,
	// MAX_ROWS, QUERY_POLICY, QUERIES and QUERIES_FILE.
	sqlmetric.Config

	// URL is the default connection: a postgres:// URL or a keyword/value
	// DSN, as pgx.ParseConfig accepts (TLS with sslmode, sslrootcert,
	// sslcert and sslkey).
	URL string `envconfig:"POSTGRES_URL" desc:"default connection (required): postgres://user@host:5432/db?sslmode=verify-full or host=... dbname=... keyword/value DSN; named connections: POSTGRES_URL_<NAME>"`
	// Password, when set, replaces the password of URL. Mount it from a
	// Secret.
	Password string `envconfig:"POSTGRES_PASSWORD" desc:"password (from a Secret) of POSTGRES_URL, replacing the DSN's; named connections: POSTGRES_PASSWORD_<NAME>"`
	// MaxConns caps the query connections of each connection's pool.
	MaxConns int32 `envconfig:"POSTGRES_MAX_CONNS" default:"4" want:"> 0" desc:"maximum query connections per connection (database) for value reads; the scaler must never load the database"`
	// MaxTargetConns caps the pool of background target reads
	// (targetQuery), kept apart so that they never take the connections
	// value reads need.
	MaxTargetConns int32 `envconfig:"POSTGRES_MAX_TARGET_CONNS" default:"1" want:"> 0" desc:"maximum connections per connection (database) for background target reads (targetQuery), a pool apart from POSTGRES_MAX_CONNS"`
	// AllowSuperuser lets the scaler run as a superuser or a role that
	// bypasses row security.
	AllowSuperuser bool `envconfig:"POSTGRES_ALLOW_SUPERUSER" default:"false" desc:"true lets the scaler connect as a superuser or a BYPASSRLS role (READ ONLY does not stop dblink_exec, pg_terminate_backend, file reads...): for throwaway demos only"`
	// MinConns is how many query connections each pool keeps open.
	MinConns int32 `envconfig:"POSTGRES_MIN_CONNS" default:"0" desc:"query connections kept open per connection (0: none until needed, so the scaler starts while the database is down)"`
	// MaxConnLifetime is when a connection is closed and replaced.
	MaxConnLifetime time.Duration `envconfig:"POSTGRES_MAX_CONN_LIFETIME" default:"30m" want:"> 0s" desc:"a query connection older than this is replaced"`
	// MaxConnIdleTime is when an idle connection is closed.
	MaxConnIdleTime time.Duration `envconfig:"POSTGRES_MAX_CONN_IDLE_TIME" default:"5m" want:"> 0s" desc:"a query connection idle for this long is closed"`
	// ConnectTimeout bounds connecting (it replaces the DSN's
	// connect_timeout).
	ConnectTimeout time.Duration `envconfig:"POSTGRES_CONNECT_TIMEOUT" default:"5s" want:"> 0s" desc:"bound on opening one connection"`
	// MaxListenChannels caps the notifyChannel values listened to at once
	// per connection: each costs one LISTEN session.
	MaxListenChannels int `envconfig:"POSTGRES_MAX_LISTEN_CHANNELS" default:"8" want:"> 0" desc:"LISTEN places per connection (one per notifyChannel and namespace watching it, one session per channel), shared fairly among namespaces: a namespace under its share takes one from the namespace holding the most; triggers without one poll every PUSH_INTERVAL"`
}

// EnvPrefixes names the prefixes of the variables of named connections,
// for config.NearMisses.
func (*Config) EnvPrefixes() []string { return vars.EnvPrefixes() }

// Settings is a validated Config with what Resolve derives from it: the
// named queries and each connection's pool settings. New trusts it.
type Settings struct {
	Config
	sql   sqlmetric.Settings
	pools map[string]resolvedPool
}

// resolvedPool is one connection as Resolve derived it: the variable
// that defines it and its pool settings.
type resolvedPool struct {
	urlVar string
	config *pgxpool.Config
}

// Validate checks the configuration and names the variable at fault.
// config.Load calls it, so that a bad value stops the process at start.
func (c *Config) Validate() error {
	if err := c.ValidateService(c); err != nil {
		return err
	}
	switch {
	case c.QueryTimeout > maxQueryTimeout:
		return fmt.Errorf("QUERY_TIMEOUT=%v: want at most %v (a scaler's query should take seconds)", c.QueryTimeout, maxQueryTimeout)
	case strings.TrimSpace(c.URL) == "":
		return errors.New("POSTGRES_URL is required (there is no default: the scaler must not guess which database to query)")
	case c.MinConns < 0 || c.MinConns > c.MaxConns:
		return fmt.Errorf("POSTGRES_MIN_CONNS=%d: want between 0 and POSTGRES_MAX_CONNS (%d)", c.MinConns, c.MaxConns)
	}
	return nil
}

// Resolve derives the Settings of a validated c: the named queries (see
// sqlmetric.Config.Resolve) and every connection's pool settings, parsing
// its DSN. Its errors name the variable at fault.
func (c *Config) Resolve(shared config.Config) (Settings, error) {
	sql, pools, err := sqlmetric.ResolveConnections(&c.Config, shared, vars, c.resolvePools)
	return Settings{Config: *c, sql: sql, pools: pools}, err
}

// resolvePools returns the pool settings of every connection, by name.
func (c *Config) resolvePools() (map[string]resolvedPool, error) {
	conns, err := c.connections()
	if err != nil {
		return nil, err
	}
	pools := make(map[string]resolvedPool, len(conns))
	for _, name := range slices.Sorted(maps.Keys(conns)) {
		pc, err := c.poolConfig(conns[name])
		if err != nil {
			return nil, err
		}
		pools[name] = resolvedPool{urlVar: conns[name].URLVar, config: pc}
	}
	return pools, nil
}

// connections returns every connection by lowercase name: the default one
// (sqlmetric.DefaultConnection) and the named ones.
func (c *Config) connections() (map[string]sqlmetric.Connection, error) {
	out, err := c.Named(vars)
	if err != nil {
		return nil, err
	}
	out[sqlmetric.DefaultConnection] = sqlmetric.Connection{
		Name:        sqlmetric.DefaultConnection,
		URL:         c.URL,
		URLVar:      vars.URL(sqlmetric.DefaultConnection),
		Password:    c.Password,
		PasswordVar: vars.Password(sqlmetric.DefaultConnection),
	}
	return out, nil
}

// poolConfig returns the pool settings of conn: its DSN with the
// password, timeouts and limits of c. Errors name conn's variable and
// never quote the DSN's password.
func (c *Config) poolConfig(conn sqlmetric.Connection) (*pgxpool.Config, error) {
	dsn := strings.TrimSpace(conn.URL)
	if scheme, _, ok := strings.Cut(dsn, "://"); ok && scheme != "postgres" && scheme != "postgresql" {
		if !schemeRE.MatchString(scheme) {
			scheme = "?"
		}
		return nil, fmt.Errorf("%s: scheme %q: want postgres://user@host:5432/db?sslmode=verify-full or a keyword/value DSN such as host=... dbname=...", conn.URLVar, scheme)
	}
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// Not the reason: pgconn quotes the DSN, redacting a password it
		// recognises, which a malformed one may not be.
		return nil, fmt.Errorf("%s is not a valid PostgreSQL URL or keyword/value DSN (details are not shown: they could quote the password): %w", conn.URLVar, parseErrorReason(err))
	}
	cc := pc.ConnConfig
	if cc.DefaultQueryExecMode == pgx.QueryExecModeSimpleProtocol {
		// The simple protocol runs several statements in one string and
		// splices parameters into the SQL text: both guards would be gone.
		return nil, fmt.Errorf("%s: default_query_exec_mode=simple_protocol is not allowed: queries must use the extended protocol (exec works behind PgBouncer)", conn.URLVar)
	}
	// One-off queries leave nothing behind: no named prepared statement
	// on the server, no cached statement or description in the scaler
	// (see Querier).
	cc.StatementCacheCapacity = 0
	cc.DescriptionCacheCapacity = 0
	// What the server sends is bounded while it is read: a larger message
	// (a row, a value) is refused from its header, before its body.
	maxBody := c.MaxRowBytes
	cc.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
		f := pgproto3.NewFrontend(r, w)
		f.SetMaxBodyLen(maxBody)
		return f
	}
	if conn.Password != "" {
		cc.Password = conn.Password
	}
	cc.ConnectTimeout = c.ConnectTimeout
	if cc.RuntimeParams == nil {
		cc.RuntimeParams = make(map[string]string)
	}
	if cc.RuntimeParams["application_name"] == "" {
		cc.RuntimeParams["application_name"] = AppName
	}
	pc.MaxConns = c.MaxConns
	pc.MinConns = c.MinConns
	pc.MinIdleConns = 0
	pc.MaxConnLifetime = c.MaxConnLifetime
	pc.MaxConnLifetimeJitter = c.MaxConnLifetime / 10 // spread reconnects
	pc.MaxConnIdleTime = c.MaxConnIdleTime
	return pc, nil
}

// schemeRE is a URL scheme that may be quoted in an error.
var schemeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]{0,19}$`)

// parseErrorReason is the reason of a pgconn parse error without the DSN
// it quotes (a url.Error quotes the whole URL).
func parseErrorReason(err error) error {
	var pe *pgconn.ParseConfigError
	if !errors.As(err, &pe) || pe.Unwrap() == nil {
		return errors.New("not parseable")
	}
	reason := pe.Unwrap()
	var ue *url.Error
	if errors.As(reason, &ue) {
		reason = ue.Err
	}
	return reason
}

// listenConfig returns the settings of conn's LISTEN sessions: those of
// its pool, under their own application_name.
func listenConfig(pc *pgxpool.Config) *pgx.ConnConfig {
	cc := pc.ConnConfig.Copy()
	cc.RuntimeParams["application_name"] += ListenSuffix
	return cc
}
