package sqlmetric

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
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
	// query InvalidArgument); anything else is taken as an outage. A row
	// larger than MAX_ROW_BYTES is a *RowTooLargeError, refused before it
	// is kept.
	Query(ctx context.Context, sql string, args []any, row func(first any) error) error
}

// Converter turns a driver's value into a number, reporting false when the
// value is not numeric. Services pass one that knows their driver's types
// and falls back to Number.
type Converter func(v any) (float64, bool)

// DefaultConnection is the name of the connection used when metadata names
// none.
const DefaultConnection = "default"

// Options are what a service hands NewBackend besides its Config.
type Options struct {
	// Conns are the queriers of value reads (query, queryName), keyed by
	// connection name (DefaultConnection for the default one; names are
	// case-insensitive).
	Conns map[string]Querier
	// Targets are the queriers of background target reads (targetQuery,
	// targetQueryName), by the same names: a pool of their own, so that
	// slow target queries never take the connections value reads need.
	// A connection missing here reads its targets through Conns.
	Targets map[string]Querier
	// Convert turns the driver's values into numbers; nil means Number.
	Convert Converter
	// Margin is how much longer than QUERY_TIMEOUT the scaler waits for a
	// query: a database with a statement timeout of its own should stop
	// the query first and say so. 0 for a database without one.
	Margin time.Duration
	// Registerer takes the SQL metrics (see Metrics and AddPool); nil
	// registers them nowhere.
	Registerer prometheus.Registerer
	// Extend, when set, reads a service's own metadata keys and returns
	// the probe of the trigger's value query q: q itself, or q wrapped
	// with change signals of the service's database. It records errors
	// in p.
	Extend func(p *metadata.Parser, q *Query) scaler.Probe
}

// Backend parses SQL triggers into probes over a set of connections. It
// implements scaler.Backend. Close cancels every query in flight.
type Backend struct {
	conns   map[string]Querier
	targets map[string]Querier
	named   map[string]NamedQuery
	policy  string
	limits  limits
	convert Converter
	metrics *Metrics
	extend  func(p *metadata.Parser, q *Query) scaler.Probe

	closing context.Context // ends at Close: in-flight queries are cancelled
	close   context.CancelFunc
}

// limits are what every Query of a Backend obeys.
type limits struct {
	maxRows       int
	maxQueryBytes int
	maxRowBytes   int
	timeout       time.Duration
	margin        time.Duration
}

// NewBackend returns a Backend over opts' connections, trusting cfg (see
// Config.Resolve).
func NewBackend(cfg Settings, opts Options) (*Backend, error) {
	named := cfg.Named
	closing, cancel := context.WithCancel(context.Background())
	b := &Backend{
		conns:   make(map[string]Querier),
		targets: make(map[string]Querier),
		named:   named,
		policy:  cfg.QueryPolicy,
		limits: limits{maxRows: cfg.MaxRows, maxQueryBytes: cfg.MaxQueryBytes, maxRowBytes: cfg.MaxRowBytes,
			timeout: cfg.QueryTimeout, margin: opts.Margin},
		convert: opts.Convert,
		extend:  opts.Extend,
		closing: closing,
		close:   cancel,
	}
	if b.convert == nil {
		b.convert = Number
	}
	for name, q := range opts.Conns {
		b.conns[strings.ToLower(name)] = q
	}
	for name, q := range opts.Targets {
		if _, ok := b.conns[strings.ToLower(name)]; !ok {
			cancel()
			return nil, fmt.Errorf("target querier of connection %q, which has no value querier", name)
		}
		b.targets[strings.ToLower(name)] = q
	}
	for name, nq := range named {
		if nq.Connection != "" && b.conns[strings.ToLower(nq.Connection)] == nil {
			cancel()
			return nil, fmt.Errorf("named query %q: connection %q is not configured", name, nq.Connection)
		}
	}
	metrics, err := NewMetrics(opts.Registerer)
	if err != nil {
		cancel()
		return nil, err
	}
	b.metrics = metrics
	return b, nil
}

// AddPool exports the connections of one pool of connection, as stats
// reports them (see PoolValue and PoolTarget), in kedascalers_sql_pool_connections.
func (b *Backend) AddPool(connection, pool string, stats func() (inUse, idle int)) {
	b.metrics.AddPool(connection, pool, stats)
}

// Close cancels every query in flight and makes later ones fail at once,
// so that closing the pools after it does not wait for them. It implements
// io.Closer.
func (b *Backend) Close() error {
	b.close()
	return nil
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
func (b *Backend) Parse(p *metadata.Parser) (*scaler.Trigger, error) {
	t := &scaler.Trigger{
		MetricName: scaler.ParseMetricName(p, "query_value"),
		Target:     p.RequiredFloat("targetQueryValue", metadata.Positive[float64]()),
		Activation: p.Float("activationTargetQueryValue", 0, metadata.Any[float64]()),
		OnError:    scaler.ParseOnError(p),
	}
	if q := b.ParseQuery(p, "query", "queryName", false); q != nil {
		t.Probe = q
		if b.extend != nil {
			t.Probe = b.extend(p, q)
		}
	}
	if p.Has("targetQuery") || p.Has("targetQueryName") {
		if q := b.ParseQuery(p, "targetQuery", "targetQueryName", true); q != nil {
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
// the connection the metadata or the named query says; target says it is
// read in the background (its connection's target pool). Text longer than
// MAX_QUERY_BYTES, or that the database protocol cannot carry (a NUL byte,
// invalid UTF-8), is refused here, before it reaches the database. It
// records errors in p and returns nil on any.
func (b *Backend) ParseQuery(p *metadata.Parser, sqlKey, nameKey string, target bool) *Query {
	q := &Query{limits: b.limits, convert: b.convert, closing: b.closing, metrics: b.metrics}
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
			v := p.RequiredString("param."+param, "the value of parameter "+param+" of query "+name)
			b.checkText(p, "param."+param, v)
			q.Args = append(q.Args, v)
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
		b.checkText(p, sqlKey, q.SQL)
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
	if t := b.targets[q.Connection]; target && t != nil {
		q.querier = t
	}
	return q
}

// checkText records in p why the value of key cannot be sent to the
// database: longer than MAX_QUERY_BYTES, a NUL byte (wire protocols end
// strings with it: a driver would cut the query or drop the connection),
// or invalid UTF-8 (databases refuse it, some as a broken message).
func (b *Backend) checkText(p *metadata.Parser, key, v string) {
	if p.Err() != nil {
		return
	}
	var want string
	limit := LimitText
	switch {
	case len(v) > b.limits.maxQueryBytes:
		want = fmt.Sprintf("at most %d bytes (MAX_QUERY_BYTES), not %d", b.limits.maxQueryBytes, len(v))
		limit = LimitQueryBytes
	case strings.IndexByte(v, 0) >= 0:
		want = "text without NUL bytes (the database protocol cannot carry them)"
	case !utf8.ValidString(v):
		want = "valid UTF-8 text (the database refuses anything else)"
	default:
		return
	}
	b.metrics.refused(limit)
	p.Fail(&metadata.Error{Key: key, Value: v, Want: want})
}

func (b *Backend) connectionNames() []string {
	names := make([]string, 0, len(b.conns))
	for n := range b.conns {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
