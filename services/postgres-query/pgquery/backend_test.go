package pgquery

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

const confirmed = "select count(*) from bookings where status = 'confirmed'"

// TestPollLikeKEDA asks what KEDA asks on every poll: GetMetricSpec, then
// GetMetrics, then IsActive.
func TestPollLikeKEDA(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPostgres(t), nil, scalertest.Options{})
	tests := []struct {
		name string
		md   map[string]string
		want scalertest.Poll
	}{
		{"count", map[string]string{"query": confirmed, "targetQueryValue": "2"},
			scalertest.Poll{MetricName: "query_value", Target: 2, Value: 3, Active: true}},
		{"at the activation threshold", map[string]string{"query": confirmed, "targetQueryValue": "2", "activationTargetQueryValue": "3"},
			scalertest.Poll{MetricName: "query_value", Target: 2, Value: 3, Active: false}},
		{"above the activation threshold", map[string]string{"query": confirmed, "targetQueryValue": "2", "activationTargetQueryValue": "2.5"},
			scalertest.Poll{MetricName: "query_value", Target: 2, Value: 3, Active: true}},
		{"rows", map[string]string{"query": "select id from bookings where status = 'pending'", "targetQueryValue": "1"},
			scalertest.Poll{MetricName: "query_value", Target: 1, Value: 2, Active: true}},
		{"sum", map[string]string{"query": "select sum(seats) from bookings where status = 'confirmed'", "targetQueryValue": "5"},
			scalertest.Poll{MetricName: "query_value", Target: 5, Value: 7, Active: true}},
		{"sum of nothing is NULL", map[string]string{"query": "select sum(seats) from bookings where status = 'none'", "targetQueryValue": "5"},
			scalertest.Poll{MetricName: "query_value", Target: 5, Value: 0, Active: false}},
		{"no rows", map[string]string{"query": "select id from bookings where status = 'none'", "targetQueryValue": "5"},
			scalertest.Poll{MetricName: "query_value", Target: 5, Value: 0, Active: false}},
		{"average", map[string]string{"query": "select avg(seats) from bookings", "targetQueryValue": "1", "metricName": "avg_seats"},
			scalertest.Poll{MetricName: "avg_seats", Target: 1, Value: 16.0 / 6, Active: true}},
		{"float target", map[string]string{"query": confirmed, "targetQueryValue": "2.5"},
			scalertest.Poll{MetricName: "query_value", Target: 2.5, Value: 3, Active: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.s.Poll(scalertest.Context(t, 10*time.Second), tt.md)
			must(t, err)
			if got.MetricName != tt.want.MetricName || got.Target != tt.want.Target || got.Active != tt.want.Active ||
				math.Abs(got.Value-tt.want.Value) > 1e-9 {
				t.Errorf("poll = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestFloatTarget: a fractional target is sent exactly as a float, and
// rounded up in the deprecated int64 field.
func TestFloatTarget(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPostgres(t), nil, scalertest.Options{})
	ctx := scalertest.Context(t, 10*time.Second)
	ref := scalertest.Ref(map[string]string{"query": "select avg(seats) from bookings", "targetQueryValue": "2.5"})
	spec, err := e.s.Client.GetMetricSpec(ctx, ref)
	must(t, err)
	if s := spec.GetMetricSpecs()[0]; s.GetTargetSizeFloat() != 2.5 || s.GetTargetSize() != 3 {
		t.Errorf("spec = %v, want targetSizeFloat 2.5 and targetSize 3", s)
	}
	vals, err := e.s.Client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: "query_value"})
	must(t, err)
	if v := vals.GetMetricValues()[0]; math.Abs(v.GetMetricValueFloat()-16.0/6) > 1e-9 || v.GetMetricValue() != 3 {
		t.Errorf("value = %v, want 2.666… and 3", v)
	}
}

// TestNamedConnection reads a second database through a named connection
// from the environment (POSTGRES_URL_REPORTING). Not parallel: it sets
// environment variables.
func TestNamedConnection(t *testing.T) {
	pg := sharedPostgres(t)
	url := newDatabase(t, pg)
	db := connect(t, url)
	exec(t, db, bookingsSQL)
	reporting := newDatabase(t, pg)
	exec(t, connect(t, reporting), "create table reports (id int); insert into reports select generate_series(1, 7)")

	t.Setenv("POSTGRES_URL_REPORTING", reporting)
	t.Setenv("POSTGRES_PASSWORD_REPORTING", "unused-with-trust-auth")
	cfg := testConfig(url)
	cfg.Environ = nil // from the environment
	cfg.Queries = `{"reports": {"sql": "select count(*) from reports", "connection": "reporting"}}`
	s := scalertest.Serve(t, newBackend(t, cfg), scalertest.Options{})
	e := &env{pg: pg, url: url, db: db, s: s}
	ctx := scalertest.Context(t, 30*time.Second)

	for _, md := range []map[string]string{
		{"query": "select count(*) from reports", "connection": "reporting", "targetQueryValue": "1"},
		{"query": "select count(*) from reports", "connection": "REPORTING", "targetQueryValue": "1"},
		{"queryName": "reports", "targetQueryValue": "1"},
	} {
		v, err := e.s.GetMetrics(ctx, md, "query_value")
		must(t, err)
		if v != 7 {
			t.Errorf("%v = %v, want 7 (from the reporting database)", md, v)
		}
	}
	v, err := e.s.GetMetrics(ctx, map[string]string{"query": confirmed, "targetQueryValue": "1"}, "query_value")
	must(t, err)
	if v != 3 {
		t.Errorf("default connection: %v, want 3", v)
	}
	_, err = e.s.GetMetrics(ctx, map[string]string{"query": "select count(*) from reports", "targetQueryValue": "1"}, "query_value")
	scalertest.WantStatus(t, err, codes.InvalidArgument, "relation \"reports\" does not exist")
	_, err = e.s.GetMetrics(ctx, map[string]string{"query": confirmed, "connection": "billing", "targetQueryValue": "1"}, "query_value")
	scalertest.WantStatus(t, err, codes.InvalidArgument, `"connection"`, "billing", "default", "reporting")
	_, err = e.s.GetMetrics(ctx, map[string]string{"queryName": "reports", "connection": "default", "targetQueryValue": "1"}, "query_value")
	scalertest.WantStatus(t, err, codes.InvalidArgument, `"connection"`)
}

// TestTargetQuery: a target read from the database is refreshed in the
// background, served by GetMetricSpec and pushed by StreamMetricSpec.
func TestTargetQuery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPostgres(t), nil, scalertest.Options{PushInterval: 100 * time.Millisecond})
	exec(t, e.db, "create table settings (k text primary key, v numeric); insert into settings values ('per_replica', 5)")
	md := map[string]string{
		"query":            confirmed,
		"targetQueryValue": "10", // until the first reading
		"targetQuery":      "select v from settings where k = 'per_replica'",
	}
	ref := scalertest.Ref(md)
	ctx := scalertest.Context(t, time.Minute)
	specTarget := func() (float64, error) {
		spec, err := e.s.Client.GetMetricSpec(ctx, ref)
		if err != nil {
			return 0, err
		}
		return spec.GetMetricSpecs()[0].GetTargetSizeFloat(), nil
	}
	waitTarget := func(want float64) {
		t.Helper()
		if err := wait.Until(5*time.Second, func() error {
			got, err := specTarget()
			if err == nil && got != want {
				err = fmt.Errorf("GetMetricSpec target %v, want %v", got, want)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	waitTarget(5)

	stream, err := e.s.Client.StreamMetricSpec(ctx, ref)
	must(t, err)
	specs := scalertest.Messages(ctx, func() (float64, error) {
		m, err := stream.Recv()
		if err != nil {
			return 0, err
		}
		return m.GetMetricSpecs()[0].GetTargetSizeFloat(), nil
	})
	if got := scalertest.Next(t, specs, 5*time.Second, "first spec"); got != 5 {
		t.Fatalf("first streamed target %v, want 5", got)
	}
	exec(t, e.db, "update settings set v = 8 where k = 'per_replica'")
	if got := scalertest.Next(t, specs, 5*time.Second, "after the update"); got != 8 {
		t.Fatalf("streamed target %v, want 8", got)
	}
	waitTarget(8)
	if got, _ := specTarget(); got != 8 {
		t.Errorf("GetMetricSpec = %v after the stream said 8", got)
	}
}

// TestBadMetadata: each mistake is InvalidArgument naming the key, and
// the service keeps serving.
func TestBadMetadata(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPostgres(t), func(c *Config) {
		c.Queries = `{"confirmed": {"sql": "select count(*) from bookings where status = $1", "params": ["status"]}}`
	}, scalertest.Options{})
	ok := map[string]string{"query": confirmed, "targetQueryValue": "2"}
	with := func(kv ...string) map[string]string {
		md := map[string]string{}
		for k, v := range ok {
			md[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(md, kv[i])
			} else {
				md[kv[i]] = kv[i+1]
			}
		}
		return md
	}
	tests := []struct {
		name string
		md   map[string]string
		key  string
	}{
		{"missing query", with("query", ""), "query"},
		{"blank query", with("query", "   "), "query"},
		{"missing targetQueryValue", with("targetQueryValue", ""), "targetQueryValue"},
		{"zero target", with("targetQueryValue", "0"), "targetQueryValue"},
		{"negative target", with("targetQueryValue", "-1"), "targetQueryValue"},
		{"target not a number", with("targetQueryValue", "abc"), "targetQueryValue"},
		{"target NaN", with("targetQueryValue", "NaN"), "targetQueryValue"},
		{"activation not a number", with("activationTargetQueryValue", "abc"), "activationTargetQueryValue"},
		{"query and queryName", with("queryName", "confirmed"), "query"},
		{"unknown queryName", with("query", "", "queryName", "nope"), "queryName"},
		{"missing param", with("query", "", "queryName", "confirmed"), "param.status"},
		{"not a select", with("query", "vacuum bookings"), "query"},
		{"notifyChannel with capitals", with("notifyChannel", "Bad-Channel"), "notifyChannel"},
		{"notifyChannel quoted", with("notifyChannel", `"bookings"`), "notifyChannel"},
		{"notifyChannel too long", with("notifyChannel", strings.Repeat("a", 64)), "notifyChannel"},
		{"notifyChannel starting with a digit", with("notifyChannel", "1bookings"), "notifyChannel"},
		{"unknown connection", with("connection", "billing"), "connection"},
		{"bad metricName", with("metricName", "Query Value"), "metricName"},
		{"bad onError", with("onError", "ignore"), "onError"},
		{"bad targetQuery", with("targetQuery", "delete from settings"), "targetQuery"},
	}
	ctx := scalertest.Context(t, time.Minute)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := scalertest.Ref(tt.md)
			_, err := e.s.Client.GetMetricSpec(ctx, ref)
			scalertest.WantStatus(t, err, codes.InvalidArgument, `"`+tt.key+`"`)
			_, err = e.s.Client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: "query_value"})
			scalertest.WantStatus(t, err, codes.InvalidArgument, `"`+tt.key+`"`)
			_, err = e.s.Client.IsActive(ctx, ref)
			scalertest.WantStatus(t, err, codes.InvalidArgument, `"`+tt.key+`"`)
		})
	}
	// Still serving, and healthy.
	got, err := e.s.Poll(ctx, ok)
	must(t, err)
	if got.Value != 3 {
		t.Errorf("value after bad metadata = %v, want 3", got.Value)
	}
	h, err := grpc_health_v1.NewHealthClient(e.s.Conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{})
	must(t, err)
	if h.GetStatus() != grpc_health_v1.HealthCheckResponse_SERVING {
		t.Errorf("health %v, want SERVING", h.GetStatus())
	}
}

// TestAllowlist: with QUERY_POLICY=allowlist only operator-defined queries
// run, and their parameters are bound, never spliced into the SQL.
func TestAllowlist(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPostgres(t), func(c *Config) {
		c.QueryPolicy = sqlmetric.PolicyAllowlist
		c.Queries = `{"confirmed": {"sql": "select count(*) from bookings where status = $1", "params": ["status"]}}`
	}, scalertest.Options{})
	ctx := scalertest.Context(t, time.Minute)
	named := func(status string) map[string]string {
		return map[string]string{"queryName": "confirmed", "param.status": status, "targetQueryValue": "1"}
	}
	for status, want := range map[string]float64{
		"confirmed":                   3,
		"pending":                     2,
		"confirmed' or '1'='1":        0,
		"x'; delete from bookings --": 0,
	} {
		v, err := e.s.GetMetrics(ctx, named(status), "query_value")
		must(t, err)
		if v != want {
			t.Errorf("param.status=%q: %v, want %v", status, v, want)
		}
	}
	_, err := e.s.GetMetrics(ctx, map[string]string{"queryName": "confirmed", "targetQueryValue": "1"}, "query_value")
	scalertest.WantStatus(t, err, codes.InvalidArgument, `"param.status"`)
	_, err = e.s.GetMetrics(ctx, map[string]string{"query": confirmed, "targetQueryValue": "1"}, "query_value")
	scalertest.WantStatus(t, err, codes.PermissionDenied, "allowlist")
	_, err = e.s.GetMetrics(ctx, map[string]string{"queryName": "confirmed", "param.status": "x", "targetQuery": "select 1", "targetQueryValue": "1"}, "query_value")
	scalertest.WantStatus(t, err, codes.PermissionDenied, "allowlist")
	if n := count(t, e.db, "select count(*) from bookings"); n != 6 {
		t.Errorf("%d bookings left, want 6", n)
	}
}

// TestAttacks: whatever a ScaledObject's query tries, it is refused or
// cancelled with a clear status within its time bound, and the data is
// the same afterwards.
func TestAttacks(t *testing.T) {
	t.Parallel()
	const queryTimeout = time.Second
	e := newEnv(t, sharedPostgres(t), func(c *Config) { c.QueryTimeout = queryTimeout }, scalertest.Options{})
	cfg := testConfig(e.url)
	cfg.QueryTimeout = queryTimeout
	cfg.QueryPolicy = sqlmetric.PolicyAllowlist
	allowlist := scalertest.Serve(t, newBackend(t, cfg), scalertest.Options{})
	before := checksum(t, e.db)

	tests := []struct {
		name      string
		query     string
		allowlist bool
		code      codes.Code
		want      []string
		within    time.Duration
	}{
		{"delete", "delete from bookings", false, codes.InvalidArgument, []string{`"query"`, "single SELECT"}, time.Second},
		{"drop", "drop table bookings", false, codes.InvalidArgument, []string{"single SELECT"}, time.Second},
		{"insert", "insert into bookings (status, seats) values ('x', 1)", false, codes.InvalidArgument, []string{"single SELECT"}, time.Second},
		{"update", "update bookings set seats = 0", false, codes.InvalidArgument, []string{"single SELECT"}, time.Second},
		{"create", "create table x (i int)", false, codes.InvalidArgument, []string{"single SELECT"}, time.Second},
		{"delete in parentheses", "(delete from bookings)", false, codes.InvalidArgument, []string{"single SELECT"}, time.Second},
		{"delete after a comment", "/* select */ delete from bookings", false, codes.InvalidArgument, []string{"single SELECT"}, time.Second},
		{"explain analyze", "explain analyze delete from bookings", false, codes.InvalidArgument, []string{"single SELECT"}, time.Second},
		{"second statement", "select 1; delete from bookings", false, codes.InvalidArgument,
			[]string{"cannot insert multiple commands into a prepared statement"}, time.Second},
		{"read-write session first", "select set_config('default_transaction_read_only', 'off', false); delete from bookings", false,
			codes.InvalidArgument, []string{"multiple commands"}, time.Second},
		{"commit first", "values (1); commit; delete from bookings", false, codes.InvalidArgument, []string{"multiple commands"}, time.Second},
		{"delete in WITH", "with d as (delete from bookings returning 1) select count(*) from d", false,
			codes.PermissionDenied, []string{"read-only", "25006"}, time.Second},
		{"update in WITH", "with u as (update bookings set seats = 0 returning 1) select count(*) from u", false,
			codes.PermissionDenied, []string{"read-only"}, time.Second},
		{"nextval", "select nextval('bookings_id_seq')", false, codes.PermissionDenied, []string{"read-only"}, time.Second},
		{"select for update", "select count(*) from (select * from bookings for update) b", false, codes.PermissionDenied, []string{"read-only"}, time.Second},
		{"read-write transaction", "select set_config('transaction_read_only', 'off', true)", false,
			codes.PermissionDenied, []string{"read-write mode"}, time.Second},
		{"sleep", "select pg_sleep(60)", false, codes.DeadlineExceeded, []string{"QUERY_TIMEOUT=1s"}, 2 * time.Second},
		{"sleep without the timeout", "select set_config('statement_timeout', '0', false), pg_sleep(60)", false,
			codes.DeadlineExceeded, []string{"QUERY_TIMEOUT=1s"}, 2 * time.Second},
		{"a million rows", "select generate_series(1, 1000000)", false, codes.ResourceExhausted, []string{"MAX_ROWS", "10000"}, time.Second},
		{"raw SQL under the allowlist", confirmed, true, codes.PermissionDenied, []string{"allowlist"}, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := e.s
			if tt.allowlist {
				s = allowlist
			}
			md := map[string]string{"query": tt.query, "targetQueryValue": "1"}
			start := time.Now()
			_, err := s.Client.GetMetrics(scalertest.Context(t, 30*time.Second), &pb.GetMetricsRequest{ScaledObjectRef: scalertest.Ref(md), MetricName: "query_value"})
			elapsed := time.Since(start)
			scalertest.WantStatus(t, err, tt.code, tt.want...)
			if elapsed > tt.within {
				t.Errorf("answered after %v, want within %v", elapsed, tt.within)
			}
			if got := checksum(t, e.db); got != before {
				t.Fatalf("the database changed: %s, was %s", got, before)
			}
		})
	}
}

// TestConnectionCap: 500 concurrent calls over 50 distinct queries never
// open more than POSTGRES_MAX_CONNS sessions, and all succeed.
func TestConnectionCap(t *testing.T) {
	t.Parallel()
	const maxConns, queries, calls = 4, 50, 500
	// 125 queries queue for each connection: QUERY_TIMEOUT (which starts
	// before the wait) leaves room for a busy machine.
	e := newEnv(t, sharedPostgres(t), func(c *Config) {
		c.MaxConns = maxConns
		c.QueryTimeout = 20 * time.Second
	}, scalertest.Options{CacheTTL: -1, BackendTimeout: 30 * time.Second})
	ctx := scalertest.Context(t, 2*time.Minute)
	sessions := func() int {
		return count(t, e.db, "select count(*) from pg_stat_activity where application_name = $1 and datname = current_database()", AppName)
	}

	stop := make(chan struct{})
	sampled := make(chan []int)
	go func() {
		var samples []int
		defer func() { sampled <- samples }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			var n int
			if err := e.db.QueryRow(ctx, "select count(*) from pg_stat_activity where application_name = $1 and datname = current_database()", AppName).Scan(&n); err != nil {
				return
			}
			samples = append(samples, n)
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, calls)
	start := make(chan struct{})
	for i := range calls {
		wg.Go(func() {
			<-start
			k := i % queries
			// pg_sleep keeps each query on its connection for a while.
			md := map[string]string{"query": fmt.Sprintf("select count(*) + %d from bookings, pg_sleep(0.01) where status = 'confirmed'", k), "targetQueryValue": "1"}
			v, err := e.s.GetMetrics(ctx, md, "query_value")
			if err == nil && v != float64(3+k) {
				err = fmt.Errorf("query %d = %v, want %d", k, v, 3+k)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(stop)
	samples := <-sampled
	close(errs)
	failed := 0
	for err := range errs {
		if failed++; failed <= 3 {
			t.Error(err)
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d calls failed", failed, calls)
	}
	most := 0
	for _, n := range samples {
		most = max(most, n)
	}
	t.Logf("%d samples of pg_stat_activity during the load, at most %d scaler sessions", len(samples), most)
	if len(samples) < 5 {
		t.Errorf("only %d samples: the load ended too soon to tell", len(samples))
	}
	if most > maxConns {
		t.Errorf("%d scaler sessions at once, want at most POSTGRES_MAX_CONNS=%d", most, maxConns)
	}
	if most == 0 {
		t.Error("no scaler session seen during the load")
	}
	if n := sessions(); n > maxConns {
		t.Errorf("%d sessions after the load, want at most %d", n, maxConns)
	}
}

// TestOutage: while PostgreSQL is down every read is Unavailable, never a
// value; once it is back the values are right again within 2 s.
func TestOutage(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	e := newEnv(t, pg, func(c *Config) { c.ConnectTimeout = 500 * time.Millisecond },
		scalertest.Options{CacheTTL: -1, BackendTimeout: 2 * time.Second})
	md := map[string]string{"query": confirmed, "targetQueryValue": "1"}
	ctx := scalertest.Context(t, 2*time.Minute)
	if v, err := e.s.GetMetrics(ctx, md, "query_value"); err != nil || v != 3 {
		t.Fatalf("before the outage: %v, %v; want 3", v, err)
	}

	must(t, pg.Stop())
	for i := range 3 {
		start := time.Now()
		v, err := e.s.GetMetrics(ctx, md, "query_value")
		if err == nil {
			t.Fatalf("read %d during the outage returned %v, want an error", i, v)
		}
		scalertest.WantStatus(t, err, codes.Unavailable)
		t.Logf("read %d during the outage: %v after %v", i, err, time.Since(start))
		_, err = e.s.Client.IsActive(ctx, scalertest.Ref(md))
		scalertest.WantStatus(t, err, codes.Unavailable)
	}

	must(t, pg.Start())
	back := time.Now()
	err := wait.Until(2*time.Second, func() error {
		v, err := e.s.GetMetrics(ctx, md, "query_value")
		if err == nil && v != 3 {
			return fmt.Errorf("value %v, want 3", v)
		}
		return err
	})
	if err != nil {
		t.Fatalf("not back within 2s of the restart: %v", err)
	}
	t.Logf("right again %v after the restart", time.Since(back))
}

// TestStartsWhileDown: the scaler starts without the database and reads
// once it is there.
func TestStartsWhileDown(t *testing.T) {
	t.Parallel()
	cfg := testConfig("postgres://postgres@127.0.0.1:1/none?sslmode=disable")
	cfg.ConnectTimeout = 500 * time.Millisecond
	b := newBackend(t, cfg)
	s := scalertest.Serve(t, b, scalertest.Options{BackendTimeout: 2 * time.Second})
	_, err := s.Client.GetMetrics(scalertest.Context(t, 10*time.Second), &pb.GetMetricsRequest{
		ScaledObjectRef: scalertest.Ref(map[string]string{"query": "select 1", "targetQueryValue": "1"}), MetricName: "query_value"})
	scalertest.WantStatus(t, err, codes.Unavailable, "connecting to PostgreSQL")
}

// TestBackendTimeoutFirst: when BACKEND_TIMEOUT ends before QUERY_TIMEOUT,
// the call is DeadlineExceeded too, at BACKEND_TIMEOUT, and the statement
// does not run on in the server.
func TestBackendTimeoutFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPostgres(t), func(c *Config) { c.QueryTimeout = 30 * time.Second },
		scalertest.Options{BackendTimeout: 500 * time.Millisecond})
	start := time.Now()
	_, err := e.s.GetMetrics(scalertest.Context(t, 10*time.Second), map[string]string{"query": "select pg_sleep(20)", "targetQueryValue": "1"}, "query_value")
	scalertest.WantStatus(t, err, codes.DeadlineExceeded)
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("answered after %v, want about BACKEND_TIMEOUT (500ms)", d)
	}
	if err := wait.Until(5*time.Second, func() error {
		if n := count(t, e.db, "select count(*) from pg_stat_activity where query = 'select pg_sleep(20)' and state = 'active'"); n > 0 {
			return fmt.Errorf("the statement still runs in %d sessions", n)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}
