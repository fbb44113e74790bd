package postgresquery

import (
	"math"
	"math/big"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"google.golang.org/grpc/codes"

	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
)

// TestConvertRealValues converts what pgx really returns for each type.
func TestConvertRealValues(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPostgres(t), nil, scalertest.Options{})
	q := e.querier(2 * time.Second)
	ctx := scalertest.Context(t, time.Minute)
	nan := math.NaN()
	tests := []struct {
		sql    string
		want   float64
		number bool // false: not a number, the row counts
	}{
		{"select 1::int2", 1, true},
		{"select 1::int4", 1, true},
		{"select 7::int8", 7, true},
		{"select count(*) from bookings", 6, true},
		{"select sum(seats) from bookings", 16, true},       // sum(int4) is int8
		{"select sum(seats::int8) from bookings", 16, true}, // sum(int8) is numeric
		{"select avg(seats) from bookings", 16.0 / 6, true}, // numeric
		{"select 1.5::float4", 1.5, true},
		{"select 2.25::float8", 2.25, true},
		{"select 123.456::numeric(10,3)", 123.456, true},
		{"select '1e400'::numeric", math.Inf(1), true}, // beyond float64: refused by scalerkit
		{"select 'NaN'::numeric", nan, true},           // refused by scalerkit
		{"select 'Infinity'::numeric", math.Inf(1), true},
		{"select '-Infinity'::float8", math.Inf(-1), true},
		{"select '42'::text", 42, true},
		{"select ' 4.5 '::varchar", 4.5, true},
		{"select 'abc'::text", 0, false},
		{"select 10::money", 0, false}, // "$10.00": cast to numeric in SQL to use it
		{"select true", 0, false},
		{"select now()", 0, false},
		{"select '1 day'::interval", 0, false},
	}
	for _, tt := range tests {
		got, err := collect(ctx, q, tt.sql)
		must(t, err)
		v, ok := Convert(got[0])
		switch {
		case ok != tt.number:
			t.Errorf("%s: Convert(%T %#v) ok = %v, want %v", tt.sql, got[0], got[0], ok, tt.number)
		case !ok:
		case math.IsNaN(tt.want) && !math.IsNaN(v), !math.IsNaN(tt.want) && math.Abs(v-tt.want) > 1e-9:
			t.Errorf("%s: Convert(%T %#v) = %v, want %v", tt.sql, got[0], got[0], v, tt.want)
		}
	}
	// NULL arrives as nil: sqlmetric's rule makes it 0 before converting.
	got, err := collect(ctx, q, "select null::int")
	must(t, err)
	if got[0] != nil {
		t.Errorf("NULL arrives as %#v, want nil", got[0])
	}
}

// TestQueryValues applies the whole value rule through the scaler.
func TestQueryValues(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPostgres(t), nil, scalertest.Options{})
	ctx := scalertest.Context(t, time.Minute)
	tests := []struct {
		sql  string
		want float64
	}{
		{"select sum(seats) from bookings where status = 'none'", 0}, // NULL
		{"select id from bookings where false", 0},                   // no rows
		{"select 10::money", 1},                                      // one row, not a number
		{"select true", 1},
		{"select status from bookings", 6}, // rows
		{"select 10::money::numeric", 10},
	}
	for _, tt := range tests {
		v, err := e.s.GetMetrics(ctx, map[string]string{"query": tt.sql, "targetQueryValue": "1"}, "query_value")
		if err != nil {
			t.Errorf("%s: %v", tt.sql, err)
			continue
		}
		if v != tt.want {
			t.Errorf("%s = %v, want %v", tt.sql, v, tt.want)
		}
	}
	for _, sql := range []string{"select 'NaN'::numeric", "select 'Infinity'::float8", "select '1e400'::numeric"} {
		_, err := e.s.GetMetrics(ctx, map[string]string{"query": sql, "targetQueryValue": "1"}, "query_value")
		scalertest.WantStatus(t, err, codes.OutOfRange, "finite")
	}
}

func TestConvertNumeric(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n      pgtype.Numeric
		want   float64
		number bool
	}{
		{pgtype.Numeric{Int: big.NewInt(123456), Exp: -3, Valid: true}, 123.456, true},
		{pgtype.Numeric{Int: big.NewInt(-5), Exp: 2, Valid: true}, -500, true},
		{pgtype.Numeric{Int: big.NewInt(1), Exp: 400, Valid: true}, math.Inf(1), true},
		{pgtype.Numeric{Int: big.NewInt(-1), Exp: 400, Valid: true}, math.Inf(-1), true},
		{pgtype.Numeric{Int: big.NewInt(1), Exp: -400, Valid: true}, 0, true},
		{pgtype.Numeric{InfinityModifier: pgtype.NegativeInfinity, Valid: true}, math.Inf(-1), true},
		{pgtype.Numeric{}, 0, true}, // NULL
	}
	for _, tt := range tests {
		v, ok := Convert(tt.n)
		if ok != tt.number || v != tt.want {
			t.Errorf("Convert(%#v) = %v, %v; want %v, %v", tt.n, v, ok, tt.want, tt.number)
		}
	}
	if v, ok := Convert(pgtype.Numeric{NaN: true, Valid: true}); !ok || !math.IsNaN(v) {
		t.Errorf("Convert(NaN) = %v, %v; want NaN, true", v, ok)
	}
}
