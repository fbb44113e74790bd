package pgquery

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
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
)

// maxQueryTimeout bounds QUERY_TIMEOUT well within statement_timeout's
// range (milliseconds in an int32).
const maxQueryTimeout = time.Hour

// Prefixes of the variables of named connections.
const (
	urlPrefix      = "POSTGRES_URL_"
	passwordPrefix = "POSTGRES_PASSWORD_"
)

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
	MaxConns int32 `envconfig:"POSTGRES_MAX_CONNS" default:"4" desc:"maximum query connections per connection (database); the scaler must never load the database"`
	// MinConns is how many query connections each pool keeps open.
	MinConns int32 `envconfig:"POSTGRES_MIN_CONNS" default:"0" desc:"query connections kept open per connection (0: none until needed, so the scaler starts while the database is down)"`
	// MaxConnLifetime is when a connection is closed and replaced.
	MaxConnLifetime time.Duration `envconfig:"POSTGRES_MAX_CONN_LIFETIME" default:"30m" desc:"a query connection older than this is replaced"`
	// MaxConnIdleTime is when an idle connection is closed.
	MaxConnIdleTime time.Duration `envconfig:"POSTGRES_MAX_CONN_IDLE_TIME" default:"5m" desc:"a query connection idle for this long is closed"`
	// ConnectTimeout bounds connecting (it replaces the DSN's
	// connect_timeout).
	ConnectTimeout time.Duration `envconfig:"POSTGRES_CONNECT_TIMEOUT" default:"5s" desc:"bound on opening one connection"`
	// MaxListenChannels caps the notifyChannel values listened to at once
	// per connection: each costs one LISTEN session.
	MaxListenChannels int `envconfig:"POSTGRES_MAX_LISTEN_CHANNELS" default:"8" desc:"most notifyChannel values listened to at once per connection (one LISTEN session each); triggers beyond it poll"`

	// Named are the named connections, by name (case-insensitive). When
	// nil, they are read from the environment: POSTGRES_URL_<NAME> and
	// POSTGRES_PASSWORD_<NAME>. Tests set it (non-nil) instead.
	Named map[string]Connection `ignored:"true"`
}

// Connection is one database the scaler queries.
type Connection struct {
	// URL is the DSN, as POSTGRES_URL.
	URL string
	// Password, when set, replaces the DSN's password.
	Password string
}

// connection is a resolved Connection: its lowercase name and the
// variable it came from, for error messages.
type connection struct {
	Connection
	name     string
	variable string // e.g. POSTGRES_URL_REPORTING
}

var connNameRE = regexp.MustCompile(`^[a-z0-9_]+$`)

// Validate checks the configuration, parsing every DSN, and names the
// variable at fault. config.Load calls it, so that a bad value stops the
// process at start.
func (c *Config) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	switch {
	case c.QueryTimeout > maxQueryTimeout:
		return fmt.Errorf("QUERY_TIMEOUT=%v: want at most %v (a scaler's query should take seconds)", c.QueryTimeout, maxQueryTimeout)
	case strings.TrimSpace(c.URL) == "":
		return errors.New("POSTGRES_URL is required (there is no default: the scaler must not guess which database to query)")
	case c.MaxConns <= 0:
		return fmt.Errorf("POSTGRES_MAX_CONNS=%d: want > 0", c.MaxConns)
	case c.MinConns < 0 || c.MinConns > c.MaxConns:
		return fmt.Errorf("POSTGRES_MIN_CONNS=%d: want between 0 and POSTGRES_MAX_CONNS (%d)", c.MinConns, c.MaxConns)
	case c.MaxConnLifetime <= 0:
		return fmt.Errorf("POSTGRES_MAX_CONN_LIFETIME=%v: want > 0", c.MaxConnLifetime)
	case c.MaxConnIdleTime <= 0:
		return fmt.Errorf("POSTGRES_MAX_CONN_IDLE_TIME=%v: want > 0", c.MaxConnIdleTime)
	case c.ConnectTimeout <= 0:
		return fmt.Errorf("POSTGRES_CONNECT_TIMEOUT=%v: want > 0", c.ConnectTimeout)
	case c.MaxListenChannels <= 0:
		return fmt.Errorf("POSTGRES_MAX_LISTEN_CHANNELS=%d: want > 0", c.MaxListenChannels)
	}
	conns, err := c.connections()
	if err != nil {
		return err
	}
	for _, conn := range conns {
		if _, err := c.poolConfig(conn); err != nil {
			return err
		}
	}
	named, err := c.NamedQueries()
	if err != nil {
		return err
	}
	for name, q := range named {
		if q.Connection == "" {
			continue
		}
		if _, ok := conns[strings.ToLower(q.Connection)]; !ok {
			return fmt.Errorf("named query %q runs on connection %q, but %s%s is not set",
				name, q.Connection, urlPrefix, strings.ToUpper(q.Connection))
		}
	}
	return nil
}

// connections returns every connection by lowercase name: the default one
// (sqlmetric.DefaultConnection) and the named ones.
func (c *Config) connections() (map[string]connection, error) {
	named := c.Named
	if named == nil {
		var err error
		if named, err = namedFromEnv(); err != nil {
			return nil, err
		}
	}
	out := map[string]connection{
		sqlmetric.DefaultConnection: {
			Connection: Connection{URL: c.URL, Password: c.Password},
			name:       sqlmetric.DefaultConnection,
			variable:   "POSTGRES_URL",
		},
	}
	for _, raw := range sortedKeys(named) {
		name, variable := strings.ToLower(raw), urlPrefix+raw
		switch _, dup := out[name]; {
		case name == sqlmetric.DefaultConnection:
			return nil, fmt.Errorf("%s: %q is the name of the default connection: set POSTGRES_URL instead", variable, raw)
		case !connNameRE.MatchString(name):
			return nil, fmt.Errorf("%s: connection name %q: want letters, digits and '_'", variable, raw)
		case dup:
			return nil, fmt.Errorf("%s: connection %q is defined twice (names are case-insensitive)", variable, name)
		case strings.TrimSpace(named[raw].URL) == "":
			return nil, fmt.Errorf("%s is empty: want a PostgreSQL URL or DSN", variable)
		}
		out[name] = connection{Connection: named[raw], name: name, variable: variable}
	}
	return out, nil
}

// namedFromEnv reads the named connections from POSTGRES_URL_<NAME> and
// POSTGRES_PASSWORD_<NAME>.
func namedFromEnv() (map[string]Connection, error) {
	urls, passwords := config.LookupAll(urlPrefix), config.LookupAll(passwordPrefix)
	out := make(map[string]Connection, len(urls))
	for name, url := range urls {
		out[name] = Connection{URL: url, Password: passwords[name]}
	}
	for _, name := range sortedKeys(passwords) {
		if _, ok := urls[name]; !ok {
			return nil, fmt.Errorf("%s%s is set but %s%s is not", passwordPrefix, name, urlPrefix, name)
		}
	}
	return out, nil
}

// poolConfig returns the pool settings of conn: its DSN with the
// password, timeouts and limits of c. Errors name conn's variable and
// never quote the DSN's password.
func (c *Config) poolConfig(conn connection) (*pgxpool.Config, error) {
	pc, err := pgxpool.ParseConfig(strings.TrimSpace(conn.URL))
	if err != nil {
		// pgconn redacts the password in the DSN it quotes.
		return nil, fmt.Errorf("%s is not a valid PostgreSQL URL or keyword/value DSN: %w", conn.variable, err)
	}
	cc := pc.ConnConfig
	if cc.DefaultQueryExecMode == pgx.QueryExecModeSimpleProtocol {
		// The simple protocol runs several statements in one string and
		// splices parameters into the SQL text: both guards would be gone.
		return nil, fmt.Errorf("%s: default_query_exec_mode=simple_protocol is not allowed: queries must use the extended protocol (exec works behind PgBouncer)", conn.variable)
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

// listenConfig returns the settings of conn's LISTEN sessions: those of
// its pool, under their own application_name.
func listenConfig(pc *pgxpool.Config) *pgx.ConnConfig {
	cc := pc.ConnConfig.Copy()
	cc.RuntimeParams["application_name"] += ListenSuffix
	return cc
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
