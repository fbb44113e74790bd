package sqlmetric

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kedascalers/kedascalers/libs/scalerkit/config"
)

// Config holds the settings every SQL scaler shares. Services embed it in
// their own configuration.
type Config struct {
	// QueryTimeout is the statement timeout of every query.
	QueryTimeout time.Duration `envconfig:"QUERY_TIMEOUT" default:"4s" want:"> 0s" desc:"statement timeout of every query (and its context deadline); keep it below BACKEND_TIMEOUT so the database stops a slow query itself"`
	// MaxRows caps the rows a query may return.
	MaxRows int `envconfig:"MAX_ROWS" default:"10000" want:"> 0" desc:"a query returning more rows is an error, not a count"`
	// MaxQueryBytes caps the SQL (and each parameter value) a trigger's
	// metadata may carry.
	MaxQueryBytes int `envconfig:"MAX_QUERY_BYTES" default:"8192" desc:"longest query, targetQuery or param.<name> value in trigger metadata, in bytes; longer is InvalidArgument (the whole metadata is bounded by MAX_METADATA_BYTES too)"`
	// MaxRowBytes caps what the database may send for one row (see
	// RowTooLargeError).
	MaxRowBytes int `envconfig:"MAX_ROW_BYTES" default:"1048576" desc:"largest row the database may send, in bytes (refused before it is read where the driver can); larger is ResourceExhausted"`
	// QueryPolicy is "any" or "allowlist".
	QueryPolicy string `envconfig:"QUERY_POLICY" default:"any" desc:"any: metadata may carry SQL (query) or name a query (queryName); allowlist: queryName only"`
	// Queries defines named queries inline, as JSON.
	Queries string `envconfig:"QUERIES" desc:"named queries as JSON: {\"name\": {\"sql\": \"...\", \"params\": [\"p\"], \"connection\": \"\"}}"`
	// Environ is the environment named connections are read from (see
	// Config.Named), as os.Environ returns it; nil means the process's
	// own. Tests set it.
	Environ []string `ignored:"true"`

	// QueriesFile names a file of named queries, as JSON.
	QueriesFile string `envconfig:"QUERIES_FILE" file:"true" desc:"file with named queries (same JSON as QUERIES), e.g. a mounted ConfigMap"`
}

// Settings is a validated Config with what Resolve derives from it: the
// named queries, QUERIES_FILE read once. NewBackend trusts it.
type Settings struct {
	Config
	// Named are the named queries of QUERIES and QUERIES_FILE.
	Named map[string]NamedQuery
}

// Policies.
const (
	// PolicyAny accepts SQL in metadata and named queries.
	PolicyAny = "any"
	// PolicyAllowlist accepts named queries only.
	PolicyAllowlist = "allowlist"
)

// NamedQuery is a query an operator defines in the scaler's configuration,
// for ScaledObjects to refer to by name.
type NamedQuery struct {
	// SQL is the query. Parameters are bind parameters in the database's
	// own syntax ($1, $2 or :1, :2, as the service's README says), in the order of
	// Params.
	SQL string `json:"sql"`
	// Params names the parameters a ScaledObject supplies, as metadata keys
	// "param.<name>". They are always passed as bind parameters, as text.
	Params []string `json:"params,omitempty"`
	// Connection, when set, is the named connection the query runs on; a
	// ScaledObject cannot move it elsewhere.
	Connection string `json:"connection,omitempty"`
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// Limits on MAX_QUERY_BYTES and MAX_ROW_BYTES: a query needs some room,
// and a row is never allowed to cost the scaler more than its memory.
const (
	minQueryBytes = 64
	maxQueryBytes = 1 << 20
	minRowBytes   = 1 << 10
	maxRowBytes   = 64 << 20
)

// Validate checks the settings; config.Load calls it once at start.
func (c *Config) Validate() error {
	if err := config.CheckBounds(c); err != nil {
		return err
	}
	switch {
	case c.MaxQueryBytes < minQueryBytes || c.MaxQueryBytes > maxQueryBytes:
		return fmt.Errorf("MAX_QUERY_BYTES=%d: want between %d and %d", c.MaxQueryBytes, minQueryBytes, maxQueryBytes)
	case c.MaxRowBytes < minRowBytes || c.MaxRowBytes > maxRowBytes:
		return fmt.Errorf("MAX_ROW_BYTES=%d: want between %d and %d", c.MaxRowBytes, minRowBytes, maxRowBytes)
	case c.QueryPolicy != PolicyAny && c.QueryPolicy != PolicyAllowlist:
		return fmt.Errorf("QUERY_POLICY=%q: want any or allowlist", c.QueryPolicy)
	}
	return nil
}

// ValidateService checks the shared settings, then the want bounds of a
// SQL service's own fields: service is its Config, which embeds c. A
// service's Validate starts with it, then checks what bounds cannot say.
func (c *Config) ValidateService(service any) error {
	if err := c.Validate(); err != nil {
		return err
	}
	return config.CheckBounds(service)
}

// Resolve derives the Settings of a validated c: it reads the named
// queries, and refuses a QUERY_TIMEOUT that is not below the shared
// BACKEND_TIMEOUT (0: not checked).
func (c *Config) Resolve(shared config.Config) (Settings, error) {
	if err := c.checkBackendTimeout(shared.BackendTimeout); err != nil {
		return Settings{}, err
	}
	named, err := c.readNamedQueries()
	if err != nil {
		return Settings{}, err
	}
	return Settings{Config: *c, Named: named}, nil
}

// checkBackendTimeout refuses a QUERY_TIMEOUT that is not below
// BACKEND_TIMEOUT: the scaler would give up on a query before the
// database stops it, and report a timeout of its own instead of the
// query's.
func (c *Config) checkBackendTimeout(backendTimeout time.Duration) error {
	if backendTimeout > 0 && c.QueryTimeout >= backendTimeout {
		return fmt.Errorf("QUERY_TIMEOUT=%v is not below BACKEND_TIMEOUT=%v: lower QUERY_TIMEOUT (or raise BACKEND_TIMEOUT), so that the database stops a slow query before the scaler gives up on it",
			c.QueryTimeout, backendTimeout)
	}
	return nil
}

// readNamedQueries reads the named queries of QUERIES and QUERIES_FILE.
// A name defined in both is an error.
func (c *Config) readNamedQueries() (map[string]NamedQuery, error) {
	out := make(map[string]NamedQuery)
	add := func(source, doc string) error {
		qs, err := decodeQueries(doc)
		if err != nil {
			return fmt.Errorf("%s: not a JSON object of named queries: %w", source, err)
		}
		for _, name := range slices.Sorted(maps.Keys(qs)) {
			q := qs[name]
			if !nameRE.MatchString(name) {
				return fmt.Errorf("%s: query name %q: want letters, digits, '_', '.' or '-'", source, name)
			}
			if q.SQL == "" {
				return fmt.Errorf("%s: query %q has no sql", source, name)
			}
			if err := CheckSelect(q.SQL); err != nil {
				return fmt.Errorf("%s: query %q: want %w", source, name, err)
			}
			for _, p := range q.Params {
				if !nameRE.MatchString(p) {
					return fmt.Errorf("%s: query %q: parameter name %q: want letters, digits, '_', '.' or '-'", source, name, p)
				}
			}
			if _, dup := out[name]; dup {
				return fmt.Errorf("%s: query %q is defined twice", source, name)
			}
			out[name] = q
		}
		return nil
	}
	if c.Queries != "" {
		if err := add("QUERIES", c.Queries); err != nil {
			return nil, err
		}
	}
	if c.QueriesFile != "" {
		b, err := os.ReadFile(c.QueriesFile)
		if err != nil {
			return nil, fmt.Errorf("QUERIES_FILE: %w", err)
		}
		if err := add("QUERIES_FILE "+c.QueriesFile, string(b)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// decodeQueries decodes a JSON object of named queries. Unlike decoding
// into a map, it refuses a name given twice (the first would silently be
// lost) and trailing data; like it, it refuses unknown fields, so that a
// typo such as "parms" is not ignored.
func decodeQueries(doc string) (map[string]NamedQuery, error) {
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.DisallowUnknownFields()
	if tok, err := dec.Token(); err != nil {
		return nil, err
	} else if tok != json.Delim('{') {
		return nil, fmt.Errorf("found %v", tok)
	}
	out := make(map[string]NamedQuery)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name := tok.(string) // dec.Token reports anything else inside an object as a syntax error
		var q NamedQuery
		if err := dec.Decode(&q); err != nil {
			return nil, fmt.Errorf("query %q: %w", name, err)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("query %q is given twice", name)
		}
		out[name] = q
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if tok, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the object (%v)", tok)
	}
	return out, nil
}
