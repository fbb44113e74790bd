package sqlmetric

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ValueBytes is the size of a text or binary value, 0 for anything else.
func ValueBytes(v any) int {
	switch s := v.(type) {
	case string:
		return len(s)
	case []byte:
		return len(s)
	}
	return 0
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
	return f, true // out of range is ±Inf, which scalerkit refuses
}
