package oraclequery

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	go_ora "github.com/sijms/go-ora/v2"
	"github.com/sijms/go-ora/v2/network"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit"
	"github.com/kedascalers/kedascalers/libs/scalerkit/config"
	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
)

// liveSetup creates KS_BOOKINGS: 3 confirmed, 2 pending, 1 cancelled.
var liveSetup = []string{
	`create table ks_bookings (
		id     number(10) primary key,
		status varchar2(20) not null,
		seats  number(10),
		price  number(10,2),
		ratio  binary_double,
		score  binary_float,
		label  nvarchar2(20))`,
	`insert into ks_bookings values (1, 'confirmed', 2, 10.50, 0.5, 1.5, N' 7 ')`,
	`insert into ks_bookings values (2, 'confirmed', 1, 20.25, null, null, N'abc')`,
	`insert into ks_bookings values (3, 'confirmed', 4, 1.00, null, null, null)`,
	`insert into ks_bookings values (4, 'pending', 3, null, null, null, null)`,
	`insert into ks_bookings values (5, 'pending', null, null, null, null, null)`,
	`insert into ks_bookings values (6, 'cancelled', 1, 5.00, null, null, null)`,
}

// TestLiveOracle runs the scaler against the real Oracle Database of
// ORACLE_URL (and the rest of the environment, as the service reads it).
// It creates KS_BOOKINGS with a plain connection and drops it afterwards.
func TestLiveOracle(t *testing.T) {
	if os.Getenv("ORACLE_URL") == "" {
		t.Skip("ORACLE_URL is not set: the live Oracle test needs a real Oracle Database (see README)")
	}
	var cfg Config
	if err := config.Load(&cfg); err != nil {
		t.Fatalf("loading the configuration from the environment: %v", err)
	}
	cfg.MaxRows = 1000
	cfg.Queries = `{"by_status": {"sql": "select count(*) from ks_bookings where status = :1", "params": ["status"]}}`
	urls, err := cfg.Connections()
	if err != nil {
		t.Fatal(err)
	}

	// The table is made outside the guard, with a plain connection.
	admin := sql.OpenDB(go_ora.NewConnector(urls[sqlmetric.DefaultConnection]))
	t.Cleanup(func() { _ = admin.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dropBookings := func() error {
		_, err := admin.ExecContext(ctx, "drop table ks_bookings purge")
		var oe *network.OracleError
		if errors.As(err, &oe) && oe.ErrCode == 942 {
			return nil // not there
		}
		return err
	}
	if err := dropBookings(); err != nil {
		t.Fatalf("dropping a leftover KS_BOOKINGS: %v", err)
	}
	for _, stmt := range liveSetup {
		if _, err := admin.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	t.Cleanup(func() {
		if err := dropBookings(); err != nil {
			t.Errorf("dropping KS_BOOKINGS: %v", err)
		}
	})
	count := func(t *testing.T) int {
		t.Helper()
		var n int
		if err := admin.QueryRowContext(ctx, "select count(*) from ks_bookings").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	b, err := New(context.Background(), settings(t, cfg), scalerkit.Env{Log: quiet})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	s := scalertest.Serve(t, b, scalertest.Options{CacheTTL: -1})
	querier := b.queriers[sqlmetric.DefaultConnection]

	t.Run("go-ora types", func(t *testing.T) {
		// What the converter relies on (see convert.go).
		for q, want := range map[string]string{
			"select count(*) from ks_bookings":            "string",
			"select price from ks_bookings where id = 1":  "string",
			"select ratio from ks_bookings where id = 1":  "float64",
			"select score from ks_bookings where id = 1":  "float64",
			"select label from ks_bookings where id = 1":  "string",
			"select status from ks_bookings where id = 1": "string",
			"select ratio from ks_bookings where id = 2":  "<nil>",
		} {
			got, err := firstType(querier, q)
			if err != nil || got != want {
				t.Errorf("%s: go-ora gave %s, %v; want %s", q, got, err, want)
			}
		}
	})
	values := []struct {
		name, query string
		want        float64
	}{
		{"count", "select count(*) from ks_bookings where status = 'confirmed'", 3},
		{"row count", "select id from ks_bookings where status = 'pending'", 2},
		{"NUMBER(10,2) sum", "select sum(price) from ks_bookings where status = 'confirmed'", 31.75},
		{"NULL sum", "select sum(seats) from ks_bookings where status = 'nobody'", 0},
		{"no rows", "select id from ks_bookings where 1 = 0", 0},
		{"BINARY_DOUBLE", "select ratio from ks_bookings where id = 1", 0.5},
		{"BINARY_FLOAT", "select score from ks_bookings where id = 1", 1.5},
		{"numeric NVARCHAR2", "select label from ks_bookings where id = 1", 7},
		{"text NVARCHAR2", "select label from ks_bookings where id = 2", 1},
		{"WITH", "with c as (select * from ks_bookings where status = 'pending') select count(*) from c", 2},
	}
	for _, v := range values {
		t.Run(v.name, func(t *testing.T) {
			p, err := s.Poll(scalertest.Context(t, callTimeout), trigger(v.query))
			if err != nil || p.Value != v.want {
				t.Errorf("%s: %+v, %v; want %v", v.query, p, err, v.want)
			}
		})
	}
	t.Run("bind parameter", func(t *testing.T) {
		md := map[string]string{"queryName": "by_status", "targetQueryValue": "1"}
		for st, want := range map[string]float64{"pending": 2, "x' or '1'='1": 0} {
			md["param.status"] = st
			if v, err := s.GetMetrics(scalertest.Context(t, callTimeout), md, "query_value"); err != nil || v != want {
				t.Errorf("by_status %q: %v, %v; want %v", st, v, err, want)
			}
		}
	})
	t.Run("MAX_ROWS", func(t *testing.T) {
		_, err := s.GetMetrics(scalertest.Context(t, callTimeout), trigger("select level from dual connect by level <= 100000"), "query_value")
		if status.Code(err) != codes.ResourceExhausted {
			t.Errorf("100000 rows with MAX_ROWS=1000: %v, want ResourceExhausted", err)
		}
	})
	t.Run("bad query", func(t *testing.T) {
		_, err := s.GetMetrics(scalertest.Context(t, callTimeout), trigger("select count(*) from ks_no_such_table"), "query_value")
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "942") {
			t.Errorf("missing table: %v, want InvalidArgument (ORA-00942)", err)
		}
	})
	t.Run("read-only refusal", func(t *testing.T) {
		before := count(t)
		err := querier.Query(ctx, "delete from ks_bookings", nil, func(any) error { return nil })
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("delete through the querier: %v, want PermissionDenied (ORA-01456)", err)
		}
		if after := count(t); after != before {
			t.Errorf("KS_BOOKINGS went from %d to %d rows", before, after)
		}
	})
	t.Run("QUERY_TIMEOUT", func(t *testing.T) {
		slow := cfg
		slow.QueryTimeout = time.Second
		sb, err := New(context.Background(), settings(t, slow), scalerkit.Env{Log: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sb.Close() })
		ss := scalertest.Serve(t, sb, scalertest.Options{CacheTTL: -1, BackendTimeout: 10 * time.Second})
		start := time.Now()
		_, err = ss.GetMetrics(scalertest.Context(t, callTimeout), trigger("select count(*) from all_objects a, all_objects b, all_objects c"), "query_value")
		if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "QUERY_TIMEOUT") {
			t.Errorf("a slow query with QUERY_TIMEOUT=1s: %v, want DeadlineExceeded naming QUERY_TIMEOUT", err)
		}
		if d := time.Since(start); d > 8*time.Second {
			t.Errorf("the timeout took %v", d)
		}
		// The pool recovers from the break.
		if v, err := ss.GetMetrics(scalertest.Context(t, callTimeout), trigger("select count(*) from ks_bookings"), "query_value"); err != nil || v != 6 {
			t.Errorf("after a timeout: %v, %v; want 6", v, err)
		}
	})
}

// firstType runs q through querier and returns the Go type of the first
// column of its first row, as fmt's %T prints it.
func firstType(querier sqlmetric.Querier, q string) (string, error) {
	typ := "no rows"
	err := querier.Query(context.Background(), q, nil, func(first any) error {
		if first == nil {
			typ = "<nil>"
		} else {
			typ = fmt.Sprintf("%T", first)
		}
		return nil
	})
	return typ, err
}
