package postgresquery

import (
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
)

// Convert is the sqlmetric.Converter of the values pgx returns: int2,
// int4 and int8 (count(*), and sum of integers) arrive as int16, int32
// and int64; float4 and float8 as float32 and float64; numeric (sum of
// bigint, avg, any numeric(p,s)) as pgtype.Numeric; text, varchar and
// types pgx does not know, such as money ("$10.00"), as string. Numbers
// and text that parses as a number are numbers; anything else (bool,
// money, timestamps, ...) is not, and the query's value is then its row
// count.
//
// NaN and ±Infinity (numeric and float) convert to NaN and ±Inf, which
// scalerkit refuses (OutOfRange) rather than send to KEDA.
func Convert(v any) (float64, bool) {
	switch n := v.(type) {
	case pgtype.Numeric:
		return numeric(n)
	case bool:
		return 0, false
	}
	return sqlmetric.Number(v)
}

// numeric converts a numeric of any size: beyond float64's range it is
// ±Inf (refused), below it 0.
func numeric(n pgtype.Numeric) (float64, bool) {
	if !n.Valid {
		return 0, true // NULL: the value rule's 0
	}
	f, err := n.Float64Value()
	if err == nil {
		return f.Float64, true
	}
	// Out of float64's range: parse the decimal text, which sqlmetric.Number
	// turns into ±Inf.
	text, err := n.MarshalJSON()
	if err != nil {
		return 0, false
	}
	return sqlmetric.Number(string(text))
}
