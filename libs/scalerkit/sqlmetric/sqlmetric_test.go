package sqlmetric

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/config"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metrics"
	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
)

// fakeQuerier answers every query with the first columns in rows (or with
// err) and records what it was asked. It honours the Querier contract: a
// row error stops it and comes back as it is.
type fakeQuerier struct {
	rows []any
	err  error

	mu    sync.Mutex
	calls []fakeCall
}

// fakeCall is one query a fakeQuerier was asked.
type fakeCall struct {
	sql  string
	args []any
}

// Query implements Querier.
func (f *fakeQuerier) Query(_ context.Context, sql string, args []any, row func(first any) error) error {
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{sql: sql, args: args})
	f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	for _, v := range f.rows {
		if err := row(v); err != nil {
			return err
		}
	}
	return nil
}

// lastCall returns the last query f was asked.
func (f *fakeQuerier) lastCall(t *testing.T) fakeCall {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		t.Fatal("the querier was never asked")
	}
	return f.calls[len(f.calls)-1]
}

// validConfig is the production default configuration.
func validConfig() Config {
	return Config{QueryTimeout: 5 * time.Second, MaxRows: 10000, MaxQueryBytes: 8192, MaxRowBytes: 1 << 20, QueryPolicy: PolicyAny}
}

// testQueries are the named queries of the Parse tests.
const testQueries = `{
	"pending":     {"sql": "select count(*) from bookings where status = $1 and region = $2", "params": ["status", "region"]},
	"billing_sum": {"sql": "select sum(amount) from invoices", "connection": "Billing"},
	"plain":       {"sql": "select count(*) from bookings"}
}`

// newTestBackend returns a Backend over a default and a "Billing"
// connection, both fakes, with testQueries and the given policy.
func newTestBackend(t *testing.T, policy string) (b *Backend, def, billing *fakeQuerier) {
	t.Helper()
	cfg := validConfig()
	cfg.QueryPolicy = policy
	cfg.Queries = testQueries
	def, billing = &fakeQuerier{rows: []any{int64(7)}}, &fakeQuerier{rows: []any{int64(9)}}
	b, err := NewBackend(settings(t, cfg), Options{Conns: map[string]Querier{DefaultConnection: def, "Billing": billing}})
	if err != nil {
		t.Fatalf("NewBackend: %v", err)
	}
	return b, def, billing
}

// md builds trigger metadata from key, value pairs, with the target every
// trigger needs.
func md(kv ...string) map[string]string {
	m := map[string]string{"targetQueryValue": "10", "scalerAddress": "scaler.keda:9090"}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// parseQuery parses m and returns its probe as a *Query.
func parseQuery(t *testing.T, b *Backend, m map[string]string) *Query {
	t.Helper()
	tr, err := b.Parse(metadata.NewParser(m))
	if err != nil {
		t.Fatalf("Parse(%v): %v", m, err)
	}
	q, ok := tr.Probe.(*Query)
	if !ok {
		t.Fatalf("Parse(%v): probe is %T, want *Query", m, tr.Probe)
	}
	return q
}

func TestValueOf(t *testing.T) {
	never := func(any) (float64, bool) { return 0, false }
	seven := func(any) (float64, bool) { return 7, true }
	tests := []struct {
		name    string
		rows    int
		first   any
		convert Converter
		want    float64
	}{
		{"no rows", 0, nil, nil, 0},
		{"one numeric row", 1, int64(42), nil, 42},
		{"one float row", 1, 2.5, nil, 2.5},
		{"one numeric text row", 1, "42", nil, 42},
		{"one NULL row", 1, nil, nil, 0},
		{"one non-numeric row", 1, "abc", nil, 1},
		{"one bool row", 1, true, nil, 1},
		{"several numeric rows count", 3, int64(5), nil, 3},
		{"several NULL rows count", 2, nil, nil, 2},
		{"converter refusing", 1, int64(42), never, 1},
		{"converter deciding", 1, "anything", seven, 7},
		{"NULL never reaches the converter", 1, nil, seven, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := valueOf(tt.rows, tt.first, tt.convert); got != tt.want {
				t.Errorf("valueOf(%d, %#v) = %v, want %v", tt.rows, tt.first, got, tt.want)
			}
		})
	}
	if got := valueOf(1, "NaN", nil); !math.IsNaN(got) {
		t.Errorf(`valueOf(1, "NaN") = %v, want NaN (scalerkit refuses it rather than sending it)`, got)
	}
}

// stringer is a driver type that knows how to print itself.
type stringer string

func (s stringer) String() string { return string(s) }

func TestNumber(t *testing.T) {
	tests := []struct {
		in     any
		want   float64
		wantOK bool
	}{
		{int8(-8), -8, true},
		{int16(16), 16, true},
		{int32(-32), -32, true},
		{int64(64), 64, true},
		{int(7), 7, true},
		{uint8(8), 8, true},
		{uint16(16), 16, true},
		{uint32(32), 32, true},
		{uint64(1 << 63), 1 << 63, true},
		{uint(9), 9, true},
		{float32(1.5), 1.5, true},
		{float64(-2.25), -2.25, true},
		{"42", 42, true},
		{" 3.5 ", 3.5, true},
		{"\t-1e3\n", -1000, true},
		{[]byte("7"), 7, true},
		{[]byte(" 8 "), 8, true},
		{stringer("12.5"), 12.5, true},
		{"abc", 0, false},
		{"", 0, false},
		{"12,5", 0, false},
		{"1 2", 0, false},
		{[]byte("x"), 0, false},
		{stringer("n/a"), 0, false},
		{true, 0, false},
		{nil, 0, false},
		{struct{}{}, 0, false},
		// A named integer type is not one of the types Number knows; as a
		// fmt.Stringer it prints "5ns", which is not a number.
		{time.Duration(5), 0, false},
	}
	for _, tt := range tests {
		got, ok := Number(tt.in)
		if ok != tt.wantOK || got != tt.want {
			t.Errorf("Number(%T %#v) = %v, %v; want %v, %v", tt.in, tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
	if got, ok := Number("NaN"); !ok || !math.IsNaN(got) {
		t.Errorf(`Number("NaN") = %v, %v; want NaN, true`, got, ok)
	}
	if got, ok := Number("1e400"); !ok || !math.IsInf(got, 1) {
		t.Errorf(`Number("1e400") = %v, %v; want +Inf, true (scalerkit refuses it)`, got, ok)
	}
	if got, ok := Number("1e-400"); !ok || got != 0 {
		t.Errorf(`Number("1e-400") = %v, %v; want 0, true`, got, ok)
	}
}

func TestCheckSelect(t *testing.T) {
	accept := []string{
		"select 1",
		"SELECT count(*) FROM bookings",
		"Select 1",
		"with x as (select 1) select * from x",
		"WITH x AS (SELECT 1) SELECT * FROM x",
		"values (1), (2)",
		"table bookings",
		"  \n\tselect 1",
		"-- a comment\nselect 1",
		"-- one\n-- two\r\n  select 1",
		"/* x */ select 1",
		"/* multi\nline */select 1",
		"/* a */ -- b\n /* c */ select 1",
		"(select 1)",
		"((select 1) union (select 2))",
		"( /* x */ ( -- y\n select 1))",
		"select",
	}
	for _, q := range accept {
		if err := CheckSelect(q); err != nil {
			t.Errorf("CheckSelect(%q) = %v, want nil", q, err)
		}
	}
	refuse := []string{
		"delete from bookings",
		"DELETE FROM bookings",
		"drop table bookings",
		"insert into bookings values (1)",
		"update bookings set seats = 0",
		"create table x (a int)",
		"begin",
		"BEGIN null; END;",
		"declare x number; begin null; end;",
		"call f()",
		"set transaction read write",
		"commit",
		"explain analyze select 1",
		"merge into bookings using dual on (1=1) when matched then delete",
		"truncate bookings",
		"",
		"   ",
		"123",
		"1; select 1",
		"-- only a comment",
		"-- only a comment\n",
		"/* only a comment */",
		"/* unterminated select 1",
		"-- select 1",
		"(delete from bookings)",
		"/* select */ delete from bookings",
		"selectx from bookings",
		"\"select\" from bookings",
	}
	for _, q := range refuse {
		err := CheckSelect(q)
		if err == nil {
			t.Errorf("CheckSelect(%q) = nil, want an error", q)
			continue
		}
		if !strings.Contains(err.Error(), "SELECT") {
			t.Errorf("CheckSelect(%q) = %q, want it to say a SELECT is expected", q, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (&Config{QueryTimeout: time.Second, MaxRows: 1, MaxQueryBytes: 8192, MaxRowBytes: 1 << 20, QueryPolicy: PolicyAllowlist}).Validate(); err != nil {
		t.Errorf("smallest valid configuration: %v", err)
	}
	dir := t.TempDir()
	file := writeFile(t, dir, "queries.json", `{"pending": {"sql": "select 1"}, "other": {"sql": "select 2"}}`)
	bad := writeFile(t, dir, "bad.json", `{"pending": `)
	tests := []struct {
		name string
		edit func(*Config)
		want []string // substrings of the error
	}{
		{"zero timeout", func(c *Config) { c.QueryTimeout = 0 }, []string{"QUERY_TIMEOUT"}},
		{"negative timeout", func(c *Config) { c.QueryTimeout = -time.Second }, []string{"QUERY_TIMEOUT"}},
		{"MAX_ROWS=0", func(c *Config) { c.MaxRows = 0 }, []string{"MAX_ROWS=0"}},
		{"negative MAX_ROWS", func(c *Config) { c.MaxRows = -1 }, []string{"MAX_ROWS=-1"}},
		{"MAX_QUERY_BYTES too small", func(c *Config) { c.MaxQueryBytes = 10 }, []string{"MAX_QUERY_BYTES=10", "between"}},
		{"MAX_QUERY_BYTES too large", func(c *Config) { c.MaxQueryBytes = 2 << 20 }, []string{"MAX_QUERY_BYTES"}},
		{"MAX_ROW_BYTES too small", func(c *Config) { c.MaxRowBytes = 0 }, []string{"MAX_ROW_BYTES=0", "between"}},
		{"MAX_ROW_BYTES too large", func(c *Config) { c.MaxRowBytes = 1 << 30 }, []string{"MAX_ROW_BYTES"}},
		{"QUERY_POLICY=xyz", func(c *Config) { c.QueryPolicy = "xyz" }, []string{"QUERY_POLICY", "xyz", "any or allowlist"}},
		{"empty QUERY_POLICY", func(c *Config) { c.QueryPolicy = "" }, []string{"QUERY_POLICY"}},
		{"bad JSON", func(c *Config) { c.Queries = `{"a": {"sql": "select 1"}` }, []string{"QUERIES", "JSON"}},
		{"JSON array", func(c *Config) { c.Queries = `["select 1"]` }, []string{"QUERIES", "JSON"}},
		{"sql of the wrong type", func(c *Config) { c.Queries = `{"a": {"sql": 1}}` }, []string{"QUERIES"}},
		{"empty sql", func(c *Config) { c.Queries = `{"a": {"sql": ""}}` }, []string{"QUERIES", `"a"`, "no sql"}},
		{"missing sql", func(c *Config) { c.Queries = `{"a": {"params": ["p"]}}` }, []string{"QUERIES", `"a"`, "no sql"}},
		{"null query", func(c *Config) { c.Queries = `{"a": null}` }, []string{"QUERIES", `"a"`, "no sql"}},
		{"name with a space", func(c *Config) { c.Queries = `{"my query": {"sql": "select 1"}}` }, []string{"QUERIES", `"my query"`}},
		{"empty name", func(c *Config) { c.Queries = `{"": {"sql": "select 1"}}` }, []string{"QUERIES", `""`}},
		{"name starting with a dash", func(c *Config) { c.Queries = `{"-x": {"sql": "select 1"}}` }, []string{"QUERIES", `"-x"`}},
		{"bad parameter name", func(c *Config) { c.Queries = `{"a": {"sql": "select $1", "params": ["the status"]}}` }, []string{"QUERIES", `"the status"`}},
		{"name given twice", func(c *Config) { c.Queries = `{"a": {"sql": "select 1"}, "a": {"sql": "select 2"}}` }, []string{"QUERIES", `"a"`, "twice"}},
		{"unknown field", func(c *Config) { c.Queries = `{"a": {"sql": "select $1", "parms": ["p"]}}` }, []string{"QUERIES", `"a"`, "parms"}},
		{"data after the object", func(c *Config) { c.Queries = `{"a": {"sql": "select 1"}} {}` }, []string{"QUERIES", "after the object"}},
		{"JSON null", func(c *Config) { c.Queries = `null` }, []string{"QUERIES", "JSON"}},
		{"missing QUERIES_FILE", func(c *Config) { c.QueriesFile = dir + "/nope.json" }, []string{"QUERIES_FILE"}},
		{"bad QUERIES_FILE", func(c *Config) { c.QueriesFile = bad }, []string{"QUERIES_FILE", bad, "JSON"}},
		{"name in QUERIES and QUERIES_FILE", func(c *Config) {
			c.Queries = `{"pending": {"sql": "select 3"}}`
			c.QueriesFile = file
		}, []string{"QUERIES_FILE", `"pending"`, "twice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.edit(&c)
			_, err := resolve(c)
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestNamedQueries(t *testing.T) {
	dir := t.TempDir()
	c := validConfig()
	c.Queries = `{"inline": {"sql": "select 1", "params": ["a", "b.c", "d-e"], "connection": "billing"}}`
	c.QueriesFile = writeFile(t, dir, "q.json", `{"from_file": {"sql": "select 2"}, "v1.2-x": {"sql": "select 3"}}`)
	got := settings(t, c).Named
	if len(got) != 3 {
		t.Errorf("NamedQueries() has %d queries, want 3: %v", len(got), got)
	}
	in := got["inline"]
	if in.SQL != "select 1" || strings.Join(in.Params, ",") != "a,b.c,d-e" || in.Connection != "billing" {
		t.Errorf("inline = %+v", in)
	}
	if got["from_file"].SQL != "select 2" || got["v1.2-x"].SQL != "select 3" {
		t.Errorf("queries from QUERIES_FILE = %v", got)
	}
	empty := validConfig()
	if got, err := resolve(empty); err != nil || len(got.Named) != 0 {
		t.Errorf("NamedQueries() without QUERIES = %v, %v; want none", got, err)
	}
}

func TestNewBackendChecksNamedConnections(t *testing.T) {
	cfg := validConfig()
	cfg.Queries = `{"q": {"sql": "select 1", "connection": "reports"}}`
	_, err := NewBackend(settings(t, cfg), Options{Conns: map[string]Querier{DefaultConnection: &fakeQuerier{}}})
	if err == nil || !strings.Contains(err.Error(), `"reports"`) {
		t.Errorf("NewBackend with a named query on an unknown connection = %v, want an error naming it", err)
	}
	if _, err := NewBackend(settings(t, cfg), Options{Conns: map[string]Querier{DefaultConnection: &fakeQuerier{}, "REPORTS": &fakeQuerier{}}}); err != nil {
		t.Errorf("connection names are case-insensitive: %v", err)
	}
}

func TestParse(t *testing.T) {
	b, def, billing := newTestBackend(t, PolicyAny)
	ctx := context.Background()

	q := parseQuery(t, b, md("query", "  select count(*) from bookings  "))
	if q.SQL != "select count(*) from bookings" || q.Connection != DefaultConnection || len(q.Args) != 0 {
		t.Errorf("query: %+v", q)
	}
	if v, err := q.Value(ctx); err != nil || v != 7 {
		t.Errorf("Value() = %v, %v; want 7 from the default connection", v, err)
	}
	if def.lastCall(t).sql != "select count(*) from bookings" {
		t.Errorf("the default connection ran %q", def.lastCall(t).sql)
	}

	q = parseQuery(t, b, md("queryName", "pending", "param.status", "confirmed", "param.region", "eu"))
	if q.SQL != "select count(*) from bookings where status = $1 and region = $2" {
		t.Errorf("queryName pending: SQL %q", q.SQL)
	}
	if len(q.Args) != 2 || q.Args[0] != "confirmed" || q.Args[1] != "eu" {
		t.Errorf("queryName pending: args %#v, want [confirmed eu] in the order of params", q.Args)
	}
	if _, err := q.Value(ctx); err != nil {
		t.Fatal(err)
	}
	if got := def.lastCall(t).args; len(got) != 2 || got[0] != "confirmed" {
		t.Errorf("the querier got args %#v", got)
	}

	q = parseQuery(t, b, md("queryName", "billing_sum"))
	if q.Connection != "billing" {
		t.Errorf("named query's connection = %q, want billing (lowercase)", q.Connection)
	}
	if v, err := q.Value(ctx); err != nil || v != 9 {
		t.Errorf("Value() = %v, %v; want 9 from the billing connection", v, err)
	}
	if billing.lastCall(t).sql != "select sum(amount) from invoices" {
		t.Errorf("billing ran %q", billing.lastCall(t).sql)
	}
	for _, c := range []string{"billing", "BILLING", "Billing"} {
		if q := parseQuery(t, b, md("queryName", "billing_sum", "connection", c)); q.Connection != "billing" {
			t.Errorf("connection %q repeating the named query's: got %q", c, q.Connection)
		}
	}
	if q := parseQuery(t, b, md("query", "select 1", "connection", "BILLING")); q.Connection != "billing" {
		t.Errorf("connection BILLING: got %q, want billing", q.Connection)
	}

	tr, err := b.Parse(metadata.NewParser(md("query", "select 1", "activationTargetQueryValue", "2.5", "metricName", "pending_bookings", "onError", "inactive")))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Target != 10 || tr.Activation != 2.5 || tr.MetricName != "pending_bookings" || tr.TargetProbe != nil {
		t.Errorf("trigger %+v", tr)
	}
	if tr, _ := b.Parse(metadata.NewParser(md("query", "select 1"))); tr.MetricName != "query_value" {
		t.Errorf("default metric name %q, want query_value", tr.MetricName)
	}
}

func TestParseTargetProbe(t *testing.T) {
	b, _, _ := newTestBackend(t, PolicyAny)
	tr, err := b.Parse(metadata.NewParser(md("query", "select 1", "targetQuery", "select capacity from settings")))
	if err != nil {
		t.Fatal(err)
	}
	tq, ok := tr.TargetProbe.(*Query)
	if !ok || tq.SQL != "select capacity from settings" {
		t.Fatalf("targetQuery: TargetProbe = %#v", tr.TargetProbe)
	}
	if tr.Target != 10 {
		t.Errorf("targetQueryValue is the fallback: Target = %v, want 10", tr.Target)
	}
	tr, err = b.Parse(metadata.NewParser(md("query", "select 1", "targetQueryName", "billing_sum")))
	if err != nil {
		t.Fatal(err)
	}
	if tq, ok := tr.TargetProbe.(*Query); !ok || tq.Connection != "billing" {
		t.Errorf("targetQueryName: TargetProbe = %#v", tr.TargetProbe)
	}
	if tr.Probe.Key() == tr.TargetProbe.Key() {
		t.Errorf("value and target probes share a key")
	}
	tr, err = b.Parse(metadata.NewParser(md("query", "select 1")))
	if err != nil || tr.TargetProbe != nil {
		t.Errorf("no targetQuery: TargetProbe = %v, %v; want nil", tr.TargetProbe, err)
	}
	if _, err := b.Parse(metadata.NewParser(md("query", "select 1", "targetQuery", "select 1", "targetQueryName", "plain"))); !isMetadataError(err, "targetQuery") {
		t.Errorf("targetQuery and targetQueryName: %v, want InvalidArgument naming targetQuery", err)
	}
}

// isMetadataError reports whether err is InvalidArgument naming key.
func isMetadataError(err error, key string) bool {
	var me *metadata.Error
	return errors.As(err, &me) && me.Key == key && status.Code(err) == codes.InvalidArgument
}

func TestParseErrors(t *testing.T) {
	b, _, _ := newTestBackend(t, PolicyAny)
	tests := []struct {
		name string
		md   map[string]string
		code codes.Code
		key  string   // the metadata key the error names ("" for a status error)
		want []string // substrings of the message
	}{
		{"no query", md(), codes.InvalidArgument, "query", []string{"required"}},
		{"blank query", md("query", "   "), codes.InvalidArgument, "query", []string{"required"}},
		{"query and queryName", md("query", "select 1", "queryName", "plain"), codes.InvalidArgument, "query", []string{"queryName", "not both"}},
		{"a delete", md("query", "delete from bookings"), codes.InvalidArgument, "query", []string{"SELECT"}},
		{"unknown queryName", md("queryName", "nope"), codes.InvalidArgument, "queryName", []string{"nope", "QUERIES"}},
		{"missing parameter", md("queryName", "pending", "param.status", "confirmed"), codes.InvalidArgument, "param.region", []string{"required", "region", "pending"}},
		{"blank parameter", md("queryName", "pending", "param.status", " ", "param.region", "eu"), codes.InvalidArgument, "param.status", []string{"required"}},
		{"unknown connection", md("query", "select 1", "connection", "reports"), codes.InvalidArgument, "connection", []string{"reports", "billing", "default"}},
		{"moving a named query", md("queryName", "billing_sum", "connection", "default"), codes.InvalidArgument, "connection", []string{"billing", "billing_sum"}},
		{"no target", map[string]string{"query": "select 1"}, codes.InvalidArgument, "targetQueryValue", []string{"required"}},
		{"zero target", md("query", "select 1", "targetQueryValue", "0"), codes.InvalidArgument, "targetQueryValue", nil},
		{"bad activation", md("query", "select 1", "activationTargetQueryValue", "x"), codes.InvalidArgument, "activationTargetQueryValue", nil},
		{"bad metric name", md("query", "select 1", "metricName", "Bad Name"), codes.InvalidArgument, "metricName", nil},
		{"bad onError", md("query", "select 1", "onError", "ignore"), codes.InvalidArgument, "onError", nil},
		{"unknown targetQueryName", md("query", "select 1", "targetQueryName", "nope"), codes.InvalidArgument, "targetQueryName", nil},
		{"targetQuery a delete", md("query", "select 1", "targetQuery", "delete from x"), codes.InvalidArgument, "targetQuery", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := b.Parse(metadata.NewParser(tt.md))
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			if got := status.Code(err); got != tt.code {
				t.Errorf("code %v, want %v: %v", got, tt.code, err)
			}
			if tt.key != "" && !isMetadataError(err, tt.key) {
				t.Errorf("error %q does not name key %q", err, tt.key)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// A named query whose SQL is not a SELECT is the operator's mistake: the
// error must name queryName (the key the ScaledObject set), not query.
// The list of configured connections in an error is sorted, so that the
// message is the same on every call.
func TestParseUnknownConnectionListsConnectionsInOrder(t *testing.T) {
	conns := map[string]Querier{}
	for _, n := range []string{"default", "zeta", "alpha", "mid", "beta", "omega"} {
		conns[n] = &fakeQuerier{}
	}
	b, err := NewBackend(settings(t, validConfig()), Options{Conns: conns})
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		_, err := b.Parse(metadata.NewParser(md("query", "select 1", "connection", "nope")))
		if err == nil || !strings.Contains(err.Error(), "alpha, beta, default, mid, omega, zeta") {
			t.Fatalf("error %v: want the connections listed in order", err)
		}
	}
}

func TestParseAllowlist(t *testing.T) {
	b, _, _ := newTestBackend(t, PolicyAllowlist)
	for _, key := range []string{"query", "targetQuery"} {
		m := md("queryName", "plain", key, "select 1")
		if key == "query" {
			m = md(key, "select 1")
		}
		_, err := b.Parse(metadata.NewParser(m))
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("allowlist, %s in metadata: %v, want PermissionDenied", key, err)
			continue
		}
		for _, w := range []string{key, "QUERY_POLICY=allowlist"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("allowlist, %s: error %q does not contain %q", key, err, w)
			}
		}
	}
	q := parseQuery(t, b, md("queryName", "plain"))
	if q.SQL != "select count(*) from bookings" {
		t.Errorf("allowlist queryName: SQL %q", q.SQL)
	}
	// With neither key, the error points at the key the policy allows.
	if _, err := b.Parse(metadata.NewParser(md())); !isMetadataError(err, "queryName") {
		t.Errorf("allowlist, no query at all: %v, want InvalidArgument naming queryName", err)
	}
}

func TestQueryKey(t *testing.T) {
	b, _, _ := newTestBackend(t, PolicyAny)
	key := func(kv ...string) string { return parseQuery(t, b, md(kv...)).Key() }
	same := [][2][]string{
		{{"query", "select 1"}, {"query", "select 1"}},
		{{"query", "select 1"}, {"query", " select 1 ", "metricName", "other", "targetQueryValue", "99"}},
		{{"query", "select 1"}, {"query", "select 1", "connection", "DEFAULT"}},
		{{"queryName", "plain"}, {"query", "select count(*) from bookings"}},
		{{"queryName", "pending", "param.status", "a", "param.region", "b"}, {"queryName", "pending", "param.region", "b", "param.status", "a"}},
		{{"queryName", "billing_sum"}, {"queryName", "billing_sum", "connection", "Billing"}},
	}
	for _, p := range same {
		if a, b := key(p[0]...), key(p[1]...); a != b {
			t.Errorf("keys differ for equal questions %v and %v:\n%q\n%q", p[0], p[1], a, b)
		}
	}
	differ := [][2][]string{
		{{"query", "select 1"}, {"query", "select 2"}},
		{{"query", "select 1"}, {"query", "select 1", "connection", "billing"}},
		{{"queryName", "pending", "param.status", "a", "param.region", "b"}, {"queryName", "pending", "param.status", "b", "param.region", "a"}},
		{{"queryName", "pending", "param.status", "a b", "param.region", "c"}, {"queryName", "pending", "param.status", "a", "param.region", "b c"}},
		{{"queryName", "pending", "param.status", "a", "param.region", "b"}, {"queryName", "pending", "param.status", "a", "param.region", "B"}},
	}
	for _, p := range differ {
		if a, b := key(p[0]...), key(p[1]...); a == b {
			t.Errorf("keys equal for different questions %v and %v: %q", p[0], p[1], a)
		}
	}
	if got, want := key("queryName", "pending", "param.status", "a", "param.region", "b"),
		`default|"select count(*) from bookings where status = $1 and region = $2"|["a" "b"]`; got != want {
		t.Errorf("key = %q, want the readable %q", got, want)
	}
	if k := key("query", "select 1\n\tfrom x"); strings.ContainsAny(k, "\x00\n\t") {
		t.Errorf("key %q holds control characters", k)
	}
}

func TestQueryValue(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		rows []any
		want float64
	}{
		{"count", []any{int64(42)}, 42},
		{"no rows", nil, 0},
		{"NULL sum", []any{nil}, 0},
		{"numeric text", []any{" 3.5 "}, 3.5},
		{"bytes", []any{[]byte("7")}, 7},
		{"one non-numeric row", []any{"abc"}, 1},
		{"row count", []any{int64(1), int64(2), int64(3)}, 3},
		{"exactly MAX_ROWS", []any{"a", "b", "c", "d", "e"}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeQuerier{rows: tt.rows}
			cfg := validConfig()
			cfg.MaxRows = 5
			b, err := NewBackend(settings(t, cfg), Options{Conns: map[string]Querier{DefaultConnection: f}})
			if err != nil {
				t.Fatal(err)
			}
			q := parseQuery(t, b, md("query", "select x from t"))
			got, err := q.Value(ctx)
			if err != nil || got != tt.want {
				t.Errorf("Value() = %v, %v; want %v", got, err, tt.want)
			}
			r, err := q.Read(ctx)
			if err != nil || r.Value != tt.want {
				t.Errorf("Read() = %+v, %v; want %v", r, err, tt.want)
			}
		})
	}
}

func TestQueryValueMaxRows(t *testing.T) {
	rows := make([]any, 1000)
	f := &countingQuerier{rows: rows}
	cfg := validConfig()
	cfg.MaxRows = 10
	b, err := NewBackend(settings(t, cfg), Options{Conns: map[string]Querier{DefaultConnection: f}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = parseQuery(t, b, md("query", "select x from t")).Value(context.Background())
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "MAX_ROWS=") {
		t.Errorf("1000 rows with MAX_ROWS=10: %v, want ResourceExhausted naming MAX_ROWS", err)
	}
	if f.delivered != 11 {
		t.Errorf("the querier delivered %d rows, want 11: reading stops at the first row past MAX_ROWS", f.delivered)
	}
}

// countingQuerier counts the rows it delivers before it is told to stop.
type countingQuerier struct {
	rows      []any
	delivered int
}

func (c *countingQuerier) Query(_ context.Context, _ string, _ []any, row func(any) error) error {
	for _, v := range c.rows {
		c.delivered++
		if err := row(v); err != nil {
			return err
		}
	}
	return nil
}

func TestQueryValueErrors(t *testing.T) {
	outage := errors.New("connection refused")
	refused := status.Error(codes.PermissionDenied, "read only")
	for _, want := range []error{outage, refused} {
		b, err := NewBackend(settings(t, validConfig()), Options{Conns: map[string]Querier{DefaultConnection: &fakeQuerier{err: want}}})
		if err != nil {
			t.Fatal(err)
		}
		q := parseQuery(t, b, md("query", "select 1"))
		if _, err := q.Value(context.Background()); !errors.Is(err, want) && status.Code(err) != status.Code(want) {
			t.Errorf("Value() = %v, want %v as it is", err, want)
		}
	}
}

func TestConverterIsUsed(t *testing.T) {
	conv := func(v any) (float64, bool) {
		if s, ok := v.(string); ok && s == "lots" {
			return 1000, true
		}
		return Number(v)
	}
	b, err := NewBackend(settings(t, validConfig()), Options{Conns: map[string]Querier{DefaultConnection: &fakeQuerier{rows: []any{"lots"}}}, Convert: conv})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := parseQuery(t, b, md("query", "select 1")).Value(context.Background()); err != nil || v != 1000 {
		t.Errorf("Value() with a converter = %v, %v; want 1000", v, err)
	}
}

// writeFile writes content to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := dir + "/" + name
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// resolve validates and resolves cfg, as scalerkit.Run does.
func resolve(cfg Config) (Settings, error) { return scalertest.Resolve[Config, Settings](cfg) }

// settings is resolve for a cfg that must be valid.
func settings(t testing.TB, cfg Config) Settings {
	t.Helper()
	return scalertest.Settings[Config, Settings](t, cfg)
}

func TestNamedQueriesCheckedAtStart(t *testing.T) {
	tests := []struct {
		name, queries, want string
	}{
		{"not a select", `{"wipe":{"sql":"delete from bookings"}}`, `query "wipe"`},
		{"unknown field", `{"q":{"sql":"select 1","parms":["x"]}}`, `parms`},
	}
	for _, tt := range tests {
		cfg := Config{QueryTimeout: time.Second, MaxRows: 10, MaxQueryBytes: 8192, MaxRowBytes: 1 << 20, QueryPolicy: "any", Queries: tt.queries}
		if _, err := resolve(cfg); err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "QUERIES") {
			t.Errorf("%s: Validate() = %v, want an error naming QUERIES and %s", tt.name, err, tt.want)
		}
	}
}

func TestParseRefusesUnsendableText(t *testing.T) {
	cfg := validConfig()
	cfg.MaxQueryBytes = 100
	cfg.Queries = `{"p": {"sql": "select $1", "params": ["v"]}}`
	f := &fakeQuerier{rows: []any{int64(1)}}
	b, err := NewBackend(settings(t, cfg), Options{Conns: map[string]Querier{DefaultConnection: f}})
	if err != nil {
		t.Fatal(err)
	}
	atLimit := "select 1 --" + strings.Repeat("x", 100-len("select 1 --"))
	tests := []struct {
		name string
		md   map[string]string
		key  string
		want string // "" parses
	}{
		{"query at MAX_QUERY_BYTES", md("query", atLimit), "", ""},
		{"query past MAX_QUERY_BYTES", md("query", atLimit+"x"), "query", "at most 100 bytes (MAX_QUERY_BYTES), not 101"},
		{"targetQuery past MAX_QUERY_BYTES", md("query", "select 1", "targetQuery", atLimit+"x"), "targetQuery", "MAX_QUERY_BYTES"},
		{"parameter at MAX_QUERY_BYTES", md("queryName", "p", "param.v", strings.Repeat("v", 100)), "", ""},
		{"parameter past MAX_QUERY_BYTES", md("queryName", "p", "param.v", strings.Repeat("v", 101)), "param.v", "MAX_QUERY_BYTES"},
		{"NUL in query", md("query", "select 1\x00"), "query", "NUL"},
		{"NUL in parameter", md("queryName", "p", "param.v", "a\x00b"), "param.v", "NUL"},
		{"invalid UTF-8 in query", md("query", "select '\xff'"), "query", "UTF-8"},
		{"invalid UTF-8 in parameter", md("queryName", "p", "param.v", "\xc3\x28"), "param.v", "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := b.Parse(metadata.NewParser(tt.md))
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Parse = %v, want it to parse", err)
			case tt.want != "" && (!isMetadataError(err, tt.key) || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Parse = %v, want InvalidArgument naming %q and saying %q", err, tt.key, tt.want)
			case tt.want != "" && !utf8.ValidString(err.Error()):
				t.Errorf("the error is not valid UTF-8 (gRPC would refuse it): %q", err)
			}
		})
	}
}

// TestQueryValueRowTooLarge: a row a Querier refuses past MAX_ROW_BYTES,
// however it found out, is ResourceExhausted naming the limit, counted.
func TestQueryValueRowTooLarge(t *testing.T) {
	cfg := validConfig()
	cfg.MaxRowBytes = 1024
	reg := prometheus.NewRegistry()
	f := &fakeQuerier{err: fmt.Errorf("receiving: %w", &RowTooLargeError{Bytes: 2000})}
	b, err := NewBackend(settings(t, cfg), Options{Conns: map[string]Querier{DefaultConnection: f}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	_, err = parseQuery(t, b, md("query", "select x")).Value(context.Background())
	scalertest.WantStatus(t, err, codes.ResourceExhausted, "a row of 2000 bytes, more than MAX_ROW_BYTES=1024")
	refused, err := metrics.Refusals(reg)
	if err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(refused.WithLabelValues(LimitRowBytes)); n != 1 {
		t.Errorf("kedascalers_limit_refusals_total{limit=%q} = %v, want 1", LimitRowBytes, n)
	}
}

// blockingQuerier runs until its context ends.
type blockingQuerier struct{ started chan struct{} }

func (q blockingQuerier) Query(ctx context.Context, _ string, _ []any, _ func(any) error) error {
	close(q.started)
	<-ctx.Done()
	return ctx.Err()
}

func TestQueryTimeoutAndClose(t *testing.T) {
	cfg := validConfig()
	cfg.QueryTimeout = 50 * time.Millisecond
	b, err := NewBackend(settings(t, cfg), Options{Conns: map[string]Querier{DefaultConnection: blockingQuerier{make(chan struct{})}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = parseQuery(t, b, md("query", "select 1")).Value(context.Background())
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "QUERY_TIMEOUT=50ms") {
		t.Errorf("timed out: %v, want DeadlineExceeded naming QUERY_TIMEOUT", err)
	}

	cfg.QueryTimeout = time.Hour
	started := make(chan struct{})
	b, err = NewBackend(settings(t, cfg), Options{Conns: map[string]Querier{DefaultConnection: blockingQuerier{started}}})
	if err != nil {
		t.Fatal(err)
	}
	q := parseQuery(t, b, md("query", "select 1"))
	done := make(chan error, 1)
	go func() {
		_, err := q.Value(context.Background())
		done <- err
	}()
	<-started
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "shutting down") {
			t.Errorf("after Close: %v, want Unavailable saying the scaler is shutting down", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the query still runs 5s after Close")
	}
	if _, err := q.Value(context.Background()); status.Code(err) != codes.Unavailable {
		t.Errorf("a query after Close: %v, want Unavailable", err)
	}
}

func TestParseTargetUsesTargetQuerier(t *testing.T) {
	value, target := &fakeQuerier{rows: []any{int64(1)}}, &fakeQuerier{rows: []any{int64(2)}}
	b, err := NewBackend(settings(t, validConfig()), Options{
		Conns:   map[string]Querier{DefaultConnection: value},
		Targets: map[string]Querier{DefaultConnection: target},
	})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := b.Parse(metadata.NewParser(md("query", "select v", "targetQuery", "select t")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Probe.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.TargetProbe.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	if value.lastCall(t).sql != "select v" || target.lastCall(t).sql != "select t" || len(value.calls) != 1 || len(target.calls) != 1 {
		t.Errorf("value querier ran %v, target querier %v; want each its own query", value.calls, target.calls)
	}
}

func TestResolveChecksBackendTimeout(t *testing.T) {
	c := validConfig()
	c.QueryTimeout = 4 * time.Second
	for _, tt := range []struct {
		backend time.Duration
		ok      bool
	}{{5 * time.Second, true}, {4*time.Second + time.Nanosecond, true}, {4 * time.Second, false}, {3 * time.Second, false}} {
		_, err := c.Resolve(config.Config{BackendTimeout: tt.backend})
		if (err == nil) != tt.ok || (err != nil && (!strings.Contains(err.Error(), "QUERY_TIMEOUT=4s") || !strings.Contains(err.Error(), "BACKEND_TIMEOUT="))) {
			t.Errorf("BACKEND_TIMEOUT=%v: %v, want ok=%v", tt.backend, err, tt.ok)
		}
	}
}

func TestMetadataKeysChecked(t *testing.T) {
	b, _, _ := newTestBackend(t, PolicyAny)
	s := scalertest.Serve(t, b, scalertest.Options{})
	ctx := scalertest.Context(t, 10*time.Second)
	_, err := s.Client.GetMetricSpec(ctx, scalertest.Ref(md("query", "select 1", "activationTargetQueryvalue", "5")))
	scalertest.WantStatus(t, err, codes.InvalidArgument,
		`metadata "activationTargetQueryvalue" is not a known key: did you mean "activationTargetQueryValue"?`)
	// A misspelt required key is named as a typo, not as a missing key.
	m := md("query", "select 1", "targetQueryvalue", "5")
	delete(m, "targetQueryValue")
	_, err = s.Client.GetMetricSpec(ctx, scalertest.Ref(m))
	scalertest.WantStatus(t, err, codes.InvalidArgument, `did you mean "targetQueryValue"?`)
	// KEDA's keys pass (md carries scalerAddress), an unrelated one warns.
	var header grpcmd.MD
	_, err = s.Client.GetMetricSpec(ctx, scalertest.Ref(md("query", "select 1", "enableTLS", "true", "team", "billing")), grpc.Header(&header))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := header.Get(scaler.WarningHeader), []string{`metadata "team" is not a known key: ignored`}; !slices.Equal(got, want) {
		t.Errorf("warnings %q, want %q", got, want)
	}
}
