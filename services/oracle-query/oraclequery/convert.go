package oraclequery

import (
	"strconv"

	go_ora "github.com/sijms/go-ora/v2"

	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
)

// Convert is the sqlmetric.Converter for the values go-ora v2 hands
// database/sql when a column is scanned into an *any. It knows these
// (learned from go-ora v2.8.24's source):
//
//   - NUMBER, whatever its precision and scale (COUNT(*), NUMBER(10,2),
//     NUMBER(38)): a string holding the exact decimal, such as "42",
//     "12.5" or "-0.001", independent of NLS settings. Learned from
//     parameter.go, ParameterInfo.decodePrimValue, case NUMBER, which
//     stores Number.String() (number.go) as the column value.
//   - BINARY_DOUBLE: float64 (converters/other_types.go,
//     ConvertBinaryDouble).
//   - BINARY_FLOAT: float64 as well, the float32 rounded to its shortest
//     decimal (converters/other_types.go, ConvertBinaryFloat); data_set.go
//     ColumnTypeScanType names float32 for it, so float32 is accepted too.
//   - VARCHAR2, CHAR, NVARCHAR2, NCHAR, LONG, CLOB: string
//     (parameter.go, decodePrimValue, case NCHAR/CHAR/LONG, and
//     command.go, decodePrim, for CLOBs); text that parses as a number
//     counts as that number.
//   - NULL: nil, for every type (decodePrimValue leaves the value nil
//     when the server sends none); the value rule makes it 0 before a
//     converter is asked.
//   - go-ora's own go_ora.Number (number.go), should it reach a row:
//     through its String method (exact decimal text, then the nearest
//     float64) rather than its Float64 method, which rounds through powers
//     of ten and can miss the last digit (1e125 gives
//     1.0000000000000001e125).
//
// Anything else (DATE and TIMESTAMP as time.Time, RAW as []byte, BOOLEAN
// as bool) goes to sqlmetric.Number, which makes a time or a bool not a
// number: one such row counts as 1.
func Convert(v any) (float64, bool) {
	switch n := v.(type) {
	case string:
		return sqlmetric.Number(n)
	case float64:
		return n, true
	case float32:
		// Through its shortest decimal, as go-ora does: BINARY_FLOAT 0.1
		// is 0.1, not 0.10000000149011612.
		f, err := strconv.ParseFloat(strconv.FormatFloat(float64(n), 'g', -1, 32), 64)
		return f, err == nil
	case go_ora.Number:
		return oraNumber(&n)
	case *go_ora.Number:
		if n == nil {
			return 0, false
		}
		return oraNumber(n)
	}
	return sqlmetric.Number(v)
}

// oraNumber converts go-ora's NUMBER through its exact decimal text.
func oraNumber(n *go_ora.Number) (float64, bool) {
	s, err := n.String()
	if err != nil {
		return 0, false
	}
	return sqlmetric.Number(s)
}
