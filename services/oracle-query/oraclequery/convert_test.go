package oraclequery

import (
	"math"
	"strings"
	"testing"
	"time"

	go_ora "github.com/sijms/go-ora/v2"
)

// mustNumber returns go-ora's NUMBER for s.
func mustNumber(t *testing.T, s string) *go_ora.Number {
	t.Helper()
	n, err := go_ora.NewNumberFromString(s)
	if err != nil {
		t.Fatalf("go_ora.NewNumberFromString(%q): %v", s, err)
	}
	return n
}

func TestConvert(t *testing.T) {
	tests := []struct {
		name   string
		in     any
		want   float64
		wantOK bool
	}{
		// NUMBER arrives as its decimal text (parameter.go, decodePrimValue).
		{"NUMBER 42 (count(*))", "42", 42, true},
		{"NUMBER 0", "0", 0, true},
		{"NUMBER(10,2) 12.5", "12.5", 12.5, true},
		{"NUMBER(10,2) 31.75", "31.75", 31.75, true},
		{"NUMBER negative fraction", "-0.001", -0.001, true},
		{"NUMBER(38) beyond int64", "123456789012345678901234567890", 1.2345678901234568e29, true},
		{"NUMBER 1e125", "1" + strings.Repeat("0", 125), 1e125, true},
		// BINARY_DOUBLE and BINARY_FLOAT arrive as float64
		// (converters/other_types.go).
		{"BINARY_DOUBLE 2.5", 2.5, 2.5, true},
		{"BINARY_FLOAT 1.5 (go-ora: float64)", float64(1.5), 1.5, true},
		{"BINARY_FLOAT 0.1 (go-ora: float64, shortest decimal)", 0.1, 0.1, true},
		// float32 is what ColumnTypeScanType names for BINARY_FLOAT.
		{"BINARY_FLOAT 1.5 as float32", float32(1.5), 1.5, true},
		{"BINARY_FLOAT 0.1 as float32", float32(0.1), 0.1, true},
		// VARCHAR2, CHAR, NVARCHAR2 arrive as string.
		{"VARCHAR2 ' 7 '", " 7 ", 7, true},
		{"CHAR(5) '42   '", "42   ", 42, true},
		{"NVARCHAR2 'abc'", "abc", 0, false},
		{"VARCHAR2 '12,5' (NLS decimal comma)", "12,5", 0, false},
		// go-ora's own NUMBER type, value and pointer.
		{"go_ora.Number 42", *mustNumber(t, "42"), 42, true},
		{"*go_ora.Number 12.5", mustNumber(t, "12.5"), 12.5, true},
		{"*go_ora.Number -7", mustNumber(t, "-7"), -7, true},
		{"*go_ora.Number 1e125 (Oracle's largest exponent)", mustNumber(t, "1e125"), 1e125, true},
		{"*go_ora.Number pi to 20 places", mustNumber(t, "3.14159265358979323846"), 3.141592653589793, true},
		{"nil *go_ora.Number", (*go_ora.Number)(nil), 0, false},
		{"empty go_ora.Number", go_ora.Number{}, 0, false},
		// Through sqlmetric.Number.
		{"int64", int64(9), 9, true},
		{"RAW bytes of a number", []byte("8"), 8, true},
		{"DATE", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), 0, false},
		{"BOOLEAN", true, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Convert(tt.in)
			if ok != tt.wantOK || (ok && got != tt.want) {
				t.Errorf("Convert(%T %v) = %v, %v; want %v, %v", tt.in, tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
	if got, ok := Convert("Infinity"); !ok || !math.IsInf(got, 1) {
		// go-ora prints NUMBER's infinity as "Infinity"; scalerkit refuses
		// ±Inf rather than sending it.
		t.Errorf(`Convert("Infinity") = %v, %v; want +Inf, true`, got, ok)
	}
	if got, ok := Convert(math.NaN()); !ok || !math.IsNaN(got) {
		t.Errorf("Convert(BINARY_DOUBLE NaN) = %v, %v; want NaN, true (scalerkit refuses it)", got, ok)
	}
}

// go-ora's NUMBER text is what the string case above relies on: check a
// round trip through go-ora's own encoder and decoder.
func TestGoOraNumberText(t *testing.T) {
	for _, s := range []string{"42", "12.5", "-0.001", "31.75", "1000000"} {
		got, err := mustNumber(t, s).String()
		if err != nil || got != s {
			t.Errorf("go_ora NUMBER %s prints as %q, %v", s, got, err)
		}
	}
	n, err := go_ora.NewNumberFromInt64(42)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := Convert(n); !ok || v != 42 {
		t.Errorf("Convert(NewNumberFromInt64(42)) = %v, %v", v, ok)
	}
}
