package oraclequery

import (
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	go_ora "github.com/sijms/go-ora/v2"

	"github.com/kedascalers/kedascalers/libs/scalerkit/config"
	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
)

// vars names the connection variables: ORACLE_URL_BILLING is the
// connection "billing", ORACLE_PASSWORD_BILLING its password.
const vars sqlmetric.Vars = "ORACLE"

// Config is the service's configuration: the SQL settings every SQL
// scaler shares, and the Oracle connections, read from ORACLE_*
// environment variables. Its envconfig defaults are the only defaults.
type Config struct {
	sqlmetric.Config

	// URL is the default connection as a go-ora URL. Exactly one of URL
	// and Host may be set.
	URL string `envconfig:"ORACLE_URL" desc:"default connection: oracle://user:password@host:port/service?OPTION=value (go-ora URL; options such as SSL=true, SSL VERIFY=true, WALLET=/path); this, ORACLE_HOST or an ORACLE_URL_<NAME> is required"`
	// Host builds the default connection from parts, instead of URL.
	Host string `envconfig:"ORACLE_HOST" desc:"database host, instead of ORACLE_URL, with ORACLE_PORT, ORACLE_SERVICE, ORACLE_USER and ORACLE_PASSWORD"`
	// Port is the listener port with Host.
	Port int `envconfig:"ORACLE_PORT" default:"1521" desc:"listener port with ORACLE_HOST"`
	// Service is the service name with Host (FREEPDB1, ORCLPDB1, ...).
	Service string `envconfig:"ORACLE_SERVICE" desc:"service name with ORACLE_HOST, e.g. FREEPDB1"`
	// User is the database user with Host; it overrides the user of URL.
	User string `envconfig:"ORACLE_USER" desc:"database user with ORACLE_HOST (required there); overrides the user in ORACLE_URL"`
	// Password overrides the password of URL and is the password with
	// Host. Mount it from a Secret.
	Password string `envconfig:"ORACLE_PASSWORD" desc:"password (from a Secret) with ORACLE_HOST; overrides the password in ORACLE_URL"`
	// Options are go-ora URL options with Host, as a query string.
	Options string `envconfig:"ORACLE_OPTIONS" desc:"go-ora URL options with ORACLE_HOST, as a query string: SSL=true&SSL VERIFY=true&WALLET=/wallet (with ORACLE_URL, put them in the URL)"`

	// MaxConns caps each connection's pool.
	MaxConns int `envconfig:"ORACLE_MAX_CONNS" was:"ORACLE_MAX_OPEN_CONNS" default:"4" want:"> 0" desc:"maximum open sessions per connection for value reads (the scaler must never load the database)"`
	// MaxTargetConns caps the pool of background target reads
	// (targetQuery), kept apart so that they never take the sessions
	// value reads need.
	MaxTargetConns int `envconfig:"ORACLE_MAX_TARGET_CONNS" default:"1" want:"> 0" desc:"maximum open sessions per connection for background target reads (targetQuery), a pool apart from ORACLE_MAX_CONNS"`
	// MaxIdleConns is how many idle sessions each pool keeps.
	MaxIdleConns int `envconfig:"ORACLE_MAX_IDLE_CONNS" default:"2" desc:"idle sessions kept per connection (at most ORACLE_MAX_CONNS)"`
	// MaxConnLifetime retires sessions after this long; 0 never does.
	MaxConnLifetime time.Duration `envconfig:"ORACLE_MAX_CONN_LIFETIME" was:"ORACLE_CONN_MAX_LIFETIME" default:"30m" want:">= 0s" desc:"a session is closed and replaced after this long (0: never)"`
	// MaxConnIdleTime closes sessions idle this long; 0 never does.
	MaxConnIdleTime time.Duration `envconfig:"ORACLE_MAX_CONN_IDLE_TIME" was:"ORACLE_CONN_MAX_IDLE_TIME" default:"5m" want:">= 0s" desc:"an idle session is closed after this long (0: never)"`
}

// EnvPrefixes names the prefixes of the variables of named connections,
// for config.NearMisses.
func (*Config) EnvPrefixes() []string { return vars.EnvPrefixes() }

// Settings is a validated Config with what Resolve derives from it: the
// named queries and the go-ora URL of every connection. New trusts it.
type Settings struct {
	Config
	sql  sqlmetric.Settings
	urls map[string]string
}

// Validate checks the configuration and names the variable at fault.
// config.Load calls it, so that a bad value stops the process at start.
func (c *Config) Validate() error {
	if err := c.ValidateService(c); err != nil {
		return err
	}
	switch {
	case c.Port <= 0 || c.Port > 65535:
		return fmt.Errorf("ORACLE_PORT=%d: want a port between 1 and 65535", c.Port)
	case c.MaxIdleConns < 0 || c.MaxIdleConns > c.MaxConns:
		return fmt.Errorf("ORACLE_MAX_IDLE_CONNS=%d: want between 0 and ORACLE_MAX_CONNS (%d)", c.MaxIdleConns, c.MaxConns)
	}
	return nil
}

// Resolve derives the Settings of a validated c: the named queries (see
// sqlmetric.Config.Resolve) and every connection's URL, parsed as go-ora
// will (reading a WALLET if one is named). It connects to nothing.
func (c *Config) Resolve(shared config.Config) (Settings, error) {
	sql, urls, err := sqlmetric.ResolveConnections(&c.Config, shared, vars, c.Connections)
	return Settings{Config: *c, sql: sql, urls: urls}, err
}

// urlVariable names the variable that defines connection name.
func (c *Config) urlVariable(name string) string {
	switch {
	case name != sqlmetric.DefaultConnection:
		return vars.URL(name)
	case strings.TrimSpace(c.URL) != "":
		return "ORACLE_URL"
	}
	return "ORACLE_HOST"
}

// Connections returns the go-ora URL of every connection, keyed by
// lowercase name: sqlmetric.DefaultConnection for ORACLE_URL or
// ORACLE_HOST, and "billing" for ORACLE_URL_BILLING (names are
// case-insensitive). ORACLE_USER and ORACLE_PASSWORD are applied to the
// default connection, ORACLE_PASSWORD_<NAME> to a named one. Errors name
// the variable and never quote a URL: it may hold a password.
func (c *Config) Connections() (map[string]string, error) {
	out := make(map[string]string)
	hasURL, hasHost := strings.TrimSpace(c.URL) != "", strings.TrimSpace(c.Host) != ""
	switch {
	case hasURL && hasHost:
		return nil, errors.New("ORACLE_URL and ORACLE_HOST are both set: set one")
	case hasURL && c.Options != "":
		return nil, errors.New("ORACLE_OPTIONS is for ORACLE_HOST: with ORACLE_URL, put the options in the URL's query")
	case hasURL:
		u, err := connectionURL("ORACLE_URL", c.URL, c.User, c.Password)
		if err != nil {
			return nil, err
		}
		out[sqlmetric.DefaultConnection] = u
	case hasHost:
		u, err := c.partsURL()
		if err != nil {
			return nil, err
		}
		out[sqlmetric.DefaultConnection] = u
	case c.Service != "" || c.Options != "":
		return nil, errors.New("ORACLE_SERVICE and ORACLE_OPTIONS need ORACLE_HOST")
	case c.User != "" || c.Password != "":
		return nil, errors.New("ORACLE_USER and ORACLE_PASSWORD belong to the default connection, and neither ORACLE_URL nor ORACLE_HOST is set (a named connection's password is ORACLE_PASSWORD_<NAME>)")
	}

	named, err := c.Named(vars)
	if err != nil {
		return nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(named)) {
		conn := named[name]
		u, err := connectionURL(conn.URLVar, conn.URL, "", conn.Password)
		if err != nil {
			return nil, err
		}
		out[name] = u
	}
	if len(out) == 0 {
		return nil, errors.New("ORACLE_URL (or ORACLE_HOST with ORACLE_SERVICE and ORACLE_USER, or a named ORACLE_URL_<NAME>) is required: there is no default, the scaler must not guess which database to read")
	}
	return out, nil
}

// partsURL builds the default connection's URL from ORACLE_HOST and
// friends with go-ora's own URL builder.
func (c *Config) partsURL() (string, error) {
	switch {
	case strings.TrimSpace(c.Service) == "":
		return "", errors.New("ORACLE_SERVICE is required with ORACLE_HOST (the service name, e.g. FREEPDB1)")
	case strings.TrimSpace(c.User) == "":
		return "", errors.New("ORACLE_USER is required with ORACLE_HOST")
	}
	var opts map[string]string
	if c.Options != "" {
		q, err := url.ParseQuery(c.Options)
		if err != nil {
			// Without the reason, which quotes the text (perhaps a WALLET PASSWORD).
			return "", errors.New("ORACLE_OPTIONS is not a query string such as SSL=true&SSL VERIFY=true (check its %-escapes)")
		}
		opts = make(map[string]string, len(q))
		for k, v := range q {
			opts[k] = strings.Join(v, ",")
		}
	}
	u := go_ora.BuildUrl(strings.TrimSpace(c.Host), c.Port, strings.TrimSpace(c.Service), c.User, c.Password, opts)
	if _, err := go_ora.ParseConfig(u); err != nil {
		return "", fmt.Errorf("ORACLE_HOST, ORACLE_SERVICE or ORACLE_OPTIONS: go-ora refuses the connection: %w", err)
	}
	return u, nil
}

// connectionURL checks the go-ora URL in variable and applies user and
// password over its own when they are set.
func connectionURL(variable, raw, user, password string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		// Not even the reason: url.Parse's errors quote the URL or the
		// part of it where parsing failed, which may be the password.
		return "", fmt.Errorf("%s is not a valid URL (details are not shown: they could quote the password); percent-encode special characters of the user and password, or set the password in %s",
			variable, passwordVariable(variable))
	}
	if u.Scheme != "oracle" {
		return "", fmt.Errorf("%s: scheme %q: want oracle://user:password@host:port/service", variable, u.Scheme)
	}
	if user != "" || password != "" {
		name := u.User.Username()
		if user != "" {
			name = user
		}
		pw, _ := u.User.Password()
		if password != "" {
			pw = password
		}
		u.User = url.UserPassword(name, pw)
	}
	s := u.String()
	if _, err := go_ora.ParseConfig(s); err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("%s: go-ora refuses the URL: %w", variable, err)
	}
	return s, nil
}

// passwordVariable names the variable of the password of the connection
// of URL variable urlVariable.
func passwordVariable(urlVariable string) string {
	if name, ok := strings.CutPrefix(urlVariable, vars.URLPrefix()); ok {
		return vars.PasswordPrefix() + name
	}
	return vars.Password(sqlmetric.DefaultConnection)
}

// applyPool sets the pool limits of the configuration on db, with at
// most maxOpen sessions.
func (c *Config) applyPool(db *sql.DB, maxOpen int) {
	db.SetMaxOpenConns(maxOpen)
	db.SetMaxIdleConns(min(c.MaxIdleConns, maxOpen))
	db.SetConnMaxLifetime(c.MaxConnLifetime)
	db.SetConnMaxIdleTime(c.MaxConnIdleTime)
}
