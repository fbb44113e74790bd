package oraclequery

import (
	"strconv"

	go_ora "github.com/sijms/go-ora/v2"

	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
)

// Convert is the sqlmetric.Converter of the values go-ora hands
// database/sql: NUMBER as its exact decimal text, BINARY_DOUBLE and
// BINARY_FLOAT as floats, character types and CLOB as text (a number when
// they parse as one), go_ora.Number through its exact text; anything else
// (dates, RAW, BOOLEAN) goes to sqlmetric.Number, and one such row counts
// as 1.
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
