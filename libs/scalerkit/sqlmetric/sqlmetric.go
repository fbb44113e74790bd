package sqlmetric

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
)

// Querier runs queries on one database connection (pool). Each service
// implements it with its own driver.
type Querier interface {
	// Query runs sql with args as exactly one statement inside a read-only
	// transaction that is rolled back afterwards, under the statement
	// timeout, and calls row with the first column of each row (nil for
	// NULL), in order. When row returns an error, Query stops reading,
	// cancels the statement and returns that error. Database errors come
	// back as gRPC status errors where the cause is known (a refused write
	// is PermissionDenied, a statement timeout DeadlineExceeded, a bad
	// query InvalidArgument); anything else is taken as an outage.
	Query(ctx context.Context, sql string, args []any, row func(first any) error) error
}

// Converter turns a driver's value into a number, reporting false when the
// value is not numeric. Services pass one that knows their driver's types
// and falls back to Number.
type Converter func(v any) (float64, bool)

// DefaultConnection is the name of the connection used when metadata names
// none.
const DefaultConnection = "default"

// Backend parses SQL triggers into probes over a set of connections. It
// implements scaler.Backend.
type Backend struct {
	conns   map[string]Querier
	named   map[string]NamedQuery
	policy  string
	maxRows int
	convert Converter
}

// NewBackend returns a Backend over conns, keyed by connection name
// (DefaultConnection for the default one; names are case-insensitive).
func NewBackend(cfg Config, conns map[string]Querier, convert Converter) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	named, err := cfg.NamedQueries()
	if err != nil {
		return nil, err
	}
	b := &Backend{conns: make(map[string]Querier), named: named, policy: cfg.QueryPolicy, maxRows: cfg.MaxRows, convert: convert}
	for name, q := range conns {
		b.conns[strings.ToLower(name)] = q
	}
	for name, nq := range named {
		if nq.Connection != "" && b.conns[strings.ToLower(nq.Connection)] == nil {
			return nil, fmt.Errorf("named query %q: connection %q is not configured", name, nq.Connection)
		}
	}
	return b, nil
}

// Parse implements scaler.Backend. Metadata:
//
//	query / queryName              the SQL, or the name of an operator-defined query
//	param.<name>                   a named query's parameters
//	targetQueryValue               target per replica (required, > 0)
//	activationTargetQueryValue     activation threshold (default 0)
//	targetQuery / targetQueryName  read the target from a query instead (targetQueryValue is the fallback)
//	connection                     named connection (default: the default one)
//	metricName                     default query_value
//	onError                        error (default) or inactive
func (b *Backend) Parse(md map[string]string) (*scaler.Trigger, error) {
	p := metadata.NewParser(md)
	t := &scaler.Trigger{
		MetricName: scaler.ParseMetricName(p, "query_value"),
		Target:     p.RequiredFloat("targetQueryValue", metadata.Positive[float64]()),
		Activation: p.Float("activationTargetQueryValue", 0, metadata.Any[float64]()),
		OnError:    scaler.ParseOnError(p),
	}
	if q := b.ParseQuery(p, "query", "queryName"); q != nil {
		t.Probe = q
	}
	if p.Has("targetQuery") || p.Has("targetQueryName") {
		if q := b.ParseQuery(p, "targetQuery", "targetQueryName"); q != nil {
			t.TargetProbe = q
		}
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	return t, nil
}

// ParseQuery reads one query from metadata: raw SQL under sqlKey or an
// operator-defined query under nameKey (with its param.<name> values), on
// the connection the metadata or the named query says. It records errors
// in p and returns nil on any.
func (b *Backend) ParseQuery(p *metadata.Parser, sqlKey, nameKey string) *Query {
	q := &Query{maxRows: b.maxRows, convert: b.convert}
	switch {
	case p.Has(sqlKey) && p.Has(nameKey):
		p.Fail(&metadata.Error{Key: sqlKey, Value: p.String(sqlKey, ""), Want: "either " + sqlKey + " or " + nameKey + ", not both"})
		return nil
	case p.Has(nameKey):
		// Named queries were checked at start (Config.NamedQueries).
		name := p.String(nameKey, "")
		nq, ok := b.named[name]
		if !ok {
			p.Fail(&metadata.Error{Key: nameKey, Value: name, Want: "the name of a query defined in QUERIES or QUERIES_FILE"})
			return nil
		}
		q.SQL, q.Connection = nq.SQL, nq.Connection
		for _, param := range nq.Params {
			q.Args = append(q.Args, p.RequiredString("param."+param, "the value of parameter "+param+" of query "+name))
		}
	case b.policy == PolicyAllowlist && p.Has(sqlKey):
		p.Fail(status.Errorf(codes.PermissionDenied,
			"metadata %q: SQL in metadata is not allowed (QUERY_POLICY=allowlist): use %s with a query the operator defined", sqlKey, nameKey))
		return nil
	case b.policy == PolicyAllowlist:
		p.Fail(&metadata.Error{Key: nameKey, Want: "the name of a query defined in QUERIES or QUERIES_FILE (QUERY_POLICY=allowlist)", Missing: true})
		return nil
	default:
		q.SQL = p.RequiredString(sqlKey, "a SQL query")
		if err := CheckSelect(q.SQL); p.Err() == nil && err != nil {
			p.Fail(&metadata.Error{Key: sqlKey, Value: q.SQL, Want: err.Error()})
		}
	}
	if p.Err() != nil {
		return nil
	}
	if q.Connection == "" {
		q.Connection = p.String("connection", DefaultConnection)
	} else if c := p.String("connection", q.Connection); !strings.EqualFold(c, q.Connection) {
		p.Fail(&metadata.Error{Key: "connection", Value: c, Want: "no connection, or " + q.Connection + ": query " + p.String(nameKey, "") + " runs there"})
		return nil
	}
	q.Connection = strings.ToLower(q.Connection)
	if q.querier = b.conns[q.Connection]; q.querier == nil {
		p.Fail(&metadata.Error{Key: "connection", Value: q.Connection, Want: "a configured connection: " + strings.Join(b.connectionNames(), ", ")})
		return nil
	}
	return q
}

func (b *Backend) connectionNames() []string {
	names := make([]string, 0, len(b.conns))
	for n := range b.conns {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Query is one query on one connection: a scaler.Probe.
type Query struct {
	// Connection is the name of the connection it runs on.
	Connection string
	// SQL is the statement.
	SQL string
	// Args are its bind parameters.
	Args []any

	querier Querier
	maxRows int
	convert Converter
}

// Key implements scaler.Probe: the connection, the SQL and the arguments.
func (q *Query) Key() string {
	return fmt.Sprintf("%s\x00%s\x00%q", q.Connection, q.SQL, q.Args)
}

// Read implements scaler.Probe.
func (q *Query) Read(ctx context.Context) (scaler.Reading, error) {
	v, err := q.Value(ctx)
	return scaler.Reading{Value: v}, err
}

// errTooManyRows stops reading once MAX_ROWS is passed.
var errTooManyRows = errors.New("too many rows")

// Value runs the query and applies the value rule (see the package doc).
func (q *Query) Value(ctx context.Context) (float64, error) {
	var rows int
	var first any
	err := q.querier.Query(ctx, q.SQL, q.Args, func(v any) error {
		rows++
		if rows == 1 {
			first = v
		}
		if rows > q.maxRows {
			return errTooManyRows
		}
		return nil
	})
	if errors.Is(err, errTooManyRows) {
		return 0, status.Errorf(codes.FailedPrecondition,
			"query returned more than %d rows (MAX_ROWS): count in SQL instead, e.g. select count(*) from ...", q.maxRows)
	}
	if err != nil {
		return 0, err
	}
	return valueOf(rows, first, q.convert), nil
}

// valueOf is the value rule: one numeric row is its number, NULL is 0,
// anything else is the row count.
func valueOf(rows int, first any, convert Converter) float64 {
	if rows != 1 {
		return float64(rows)
	}
	if first == nil {
		return 0
	}
	if convert == nil {
		convert = Number
	}
	if v, ok := convert(first); ok {
		return v
	}
	return 1
}

// Number converts the standard Go types drivers return: integers, floats,
// and strings or bytes that parse as a number. NaN parses: scalerkit then
// refuses it rather than sending it.
func Number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case int16:
		return float64(n), true
	case int8:
		return float64(n), true
	case int:
		return float64(n), true
	case uint64:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint8:
		return float64(n), true
	case uint:
		return float64(n), true
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case string:
		return parseNumber(n)
	case []byte:
		return parseNumber(string(n))
	case fmt.Stringer:
		return parseNumber(n.String())
	}
	return 0, false
}

func parseNumber(s string) (float64, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	if math.IsInf(f, 0) && errors.Is(err, strconv.ErrRange) {
		return f, true // out of range: scalerkit refuses ±Inf
	}
	return f, true
}

// CheckSelect accepts one query statement: after comments, white space
// and opening parentheses it must start with SELECT, WITH, VALUES or
// TABLE. It is the first of several guards, not the one to rely on: the
// read-only transaction is (a WITH can hold a DELETE; "select 1; delete"
// starts with SELECT), and the drivers refuse several statements.
func CheckSelect(sql string) error {
	s := sql
	for {
		s = strings.TrimLeftFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r == '(' })
		switch {
		case strings.HasPrefix(s, "--"):
			if i := strings.IndexByte(s, '\n'); i >= 0 {
				s = s[i+1:]
				continue
			}
			s = ""
		case strings.HasPrefix(s, "/*"):
			if i := strings.Index(s, "*/"); i >= 0 {
				s = s[i+2:]
				continue
			}
			s = ""
		}
		break
	}
	word := s
	if i := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsLetter(r) }); i >= 0 {
		word = s[:i]
	}
	switch strings.ToLower(word) {
	case "select", "with", "values", "table":
		return nil
	}
	return errors.New("a single SELECT (or WITH ... SELECT) statement")
}
