package sqlmetric

import (
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/kedascalers/kedascalers/libs/scalerkit/config"
)

// Vars is the naming rule of a SQL service's connection variables, by
// its database's prefix: Vars("POSTGRES") names POSTGRES_URL and
// POSTGRES_PASSWORD for the default connection, and POSTGRES_URL_BILLING
// and POSTGRES_PASSWORD_BILLING for the connection "billing".
type Vars string

// URL names the variable of the URL of connection name.
func (v Vars) URL(name string) string { return v.variable("_URL", name) }

// Password names the variable of the password of connection name.
func (v Vars) Password(name string) string { return v.variable("_PASSWORD", name) }

// URLPrefix is the prefix of the URL variables of named connections.
func (v Vars) URLPrefix() string { return string(v) + "_URL_" }

// PasswordPrefix is the prefix of the password variables of named
// connections.
func (v Vars) PasswordPrefix() string { return string(v) + "_PASSWORD_" }

// EnvPrefixes lists both prefixes, for a service Config's EnvPrefixes
// (see config.NearMisses).
func (v Vars) EnvPrefixes() []string { return []string{v.URLPrefix(), v.PasswordPrefix()} }

func (v Vars) variable(kind, name string) string {
	if name == DefaultConnection {
		return string(v) + kind
	}
	return string(v) + kind + "_" + strings.ToUpper(name)
}

// Connection is a named connection as the environment defines it: the
// variable v.URLPrefix()+NAME holds its URL and v.PasswordPrefix()+NAME,
// when set, its password (see Vars).
type Connection struct {
	// Name is the connection's name in lowercase, as metadata "connection"
	// chooses it (names are case-insensitive).
	Name string
	// URL is the value of URLVar, as set.
	URL string
	// URLVar names the variable that holds URL.
	URLVar string
	// Password is the value of PasswordVar, or "" when it is not set.
	Password string
	// PasswordVar names the variable of the password, set or not.
	PasswordVar string
}

// connectionNameRE is what a connection's name may be, in lowercase.
var connectionNameRE = regexp.MustCompile(`^[a-z0-9_]+$`)

// NamedConnections returns the named connections that environ (as
// os.Environ returns it) defines with the variables of v, keyed by
// lowercase name. It refuses a name that is
// not letters, digits and '_', the name of the default connection, two
// variables for one name (names are case-insensitive), an empty URL and a
// password without its URL. Errors name the variables and never quote a
// value: a URL may hold a password.
func NamedConnections(environ []string, v Vars) (map[string]Connection, error) {
	urlPrefix, passwordPrefix := v.URLPrefix(), v.PasswordPrefix()
	urls, passwords := byName(environ, urlPrefix), byName(environ, passwordPrefix)
	out := make(map[string]Connection, len(urls))
	for _, name := range slices.Sorted(maps.Keys(urls)) {
		u, pw := urls[name], passwords[name]
		switch {
		case len(u.vars) > 1:
			return nil, fmt.Errorf("%s name the same connection %q (names are case-insensitive): keep one", strings.Join(u.vars, " and "), name)
		case len(pw.vars) > 1:
			return nil, fmt.Errorf("%s set the password of the same connection %q (names are case-insensitive): keep one", strings.Join(pw.vars, " and "), name)
		case !connectionNameRE.MatchString(name):
			return nil, fmt.Errorf("%s: connection name %q: want letters, digits and '_'", u.vars[0], name)
		case name == DefaultConnection:
			return nil, fmt.Errorf("%s: %q is the name of the default connection: pick another name", u.vars[0], name)
		case strings.TrimSpace(u.value) == "":
			return nil, fmt.Errorf("%s is empty", u.vars[0])
		}
		pwVar := passwordPrefix + strings.TrimPrefix(u.vars[0], urlPrefix)
		if len(pw.vars) == 1 {
			pwVar = pw.vars[0]
		}
		out[name] = Connection{Name: name, URL: u.value, URLVar: u.vars[0], Password: pw.value, PasswordVar: pwVar}
	}
	for _, name := range slices.Sorted(maps.Keys(passwords)) {
		if _, ok := urls[name]; !ok {
			v := passwords[name].vars[0]
			return nil, fmt.Errorf("%s is set but %s%s is not", v, urlPrefix, strings.TrimPrefix(v, passwordPrefix))
		}
	}
	return out, nil
}

// Named returns the named connections of c's environment (Environ), as
// NamedConnections reads them.
func (c *Config) Named(v Vars) (map[string]Connection, error) {
	environ := c.Environ
	if environ == nil {
		environ = os.Environ()
	}
	return NamedConnections(environ, v)
}

// ResolveConnections is a SQL service's Resolve: c's Settings (see
// Config.Resolve) and the connections conns derives, by lowercase name,
// refusing a named query on a connection that is not among them (its
// variable would be v.URL(name)).
func ResolveConnections[T any](c *Config, shared config.Config, v Vars, conns func() (map[string]T, error)) (Settings, map[string]T, error) {
	s, err := c.Resolve(shared)
	if err != nil {
		return Settings{}, nil, err
	}
	out, err := conns()
	if err != nil {
		return Settings{}, nil, err
	}
	if err := s.CheckConnections(slices.Collect(maps.Keys(out)), v); err != nil {
		return Settings{}, nil, err
	}
	return s, out, nil
}

// CheckConnections returns an error naming the first named query (by
// name) whose connection is not among configured, the lowercase names of
// the connections there are, and the variable of v that would define it.
func (s *Settings) CheckConnections(configured []string, v Vars) error {
	for _, name := range slices.Sorted(maps.Keys(s.Named)) {
		conn := s.Named[name].Connection
		if conn != "" && !slices.Contains(configured, strings.ToLower(conn)) {
			return fmt.Errorf("named query %q runs on connection %q, but %s is not set",
				name, conn, v.URL(conn))
		}
	}
	return nil
}

// setting is the value of the variables that map to one lowercase name.
type setting struct {
	value string
	vars  []string // the variables, sorted; more than one is a conflict
}

// byName returns the variables of environ whose names start with prefix
// and go on, grouped by the rest of the name in lowercase.
func byName(environ []string, prefix string) map[string]setting {
	out := make(map[string]setting)
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok || rest == "" {
			continue
		}
		name := strings.ToLower(rest)
		s := out[name]
		s.value = v
		s.vars = append(s.vars, k)
		slices.Sort(s.vars)
		out[name] = s
	}
	return out
}
