package hpa

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MetricType is the metricType of a KEDA trigger, i.e. the HPA target type.
type MetricType string

const (
	// AverageValue divides the metric by the number of replicas (KEDA's default).
	AverageValue MetricType = "AverageValue"
	// Value compares the metric as a whole with the target.
	Value MetricType = "Value"
)

// ParseMetricType parses a trigger's metricType; the empty string means
// AverageValue, as in KEDA. Utilization is rejected, as KEDA rejects it for
// external metrics.
func ParseMetricType(s string) (MetricType, error) {
	switch s {
	case "", string(AverageValue):
		return AverageValue, nil
	case string(Value):
		return Value, nil
	case "Utilization":
		return "", errors.New(`metric type "Utilization" is not supported for external metrics: use AverageValue or Value`)
	default:
		return "", fmt.Errorf("unknown metric type %q: use AverageValue or Value", s)
	}
}

// Quantity is a target or a metric value as KEDA passes it to the HPA.
type Quantity struct {
	// Milli is the quantity in thousandths.
	Milli int64
	// FromFloat reports whether KEDA took the float field (it does when the
	// float is > 0) rather than the int64 one.
	FromFloat bool
	// Note explains why the quantity differs from the field it came from
	// (NaN, infinity, negative, more than three decimals, overflow); empty
	// when the field was taken as it is.
	Note string
}

// Float returns the quantity as a float64.
func (q Quantity) Float() float64 { return float64(q.Milli) / 1000 }

// String formats the quantity with at most three decimals.
func (q Quantity) String() string { return FormatMilli(q.Milli) }

// Normalize converts the float and int64 fields of a MetricSpec target or a
// MetricValue the way KEDA does: the float field is used when it is > 0,
// otherwise the int64 one; NaN, ±Inf and negative numbers become 0; three
// decimals are kept (the rest is truncated, as KEDA's int64(v*1000) does).
func Normalize(f float64, i int64) Quantity {
	if f > 0 { // false for NaN, -Inf and negatives: KEDA falls back to the int64 field
		q := Quantity{FromFloat: true}
		switch {
		case math.IsInf(f, 1):
			q.Note = "+Inf becomes 0"
		case f*1000 >= math.MaxInt64:
			q.Milli = math.MaxInt64
			q.Note = fmt.Sprintf("%s is too large, capped at %s", fmtFloat(f), FormatMilli(q.Milli))
		default:
			q.Milli = int64(f * 1000)
			if got := FormatMilli(q.Milli); got != fmtFloat(f) {
				q.Note = fmt.Sprintf("KEDA keeps three decimals: %s becomes %s", fmtFloat(f), got)
			}
		}
		return q
	}
	var q Quantity
	if f != 0 {
		q.Note = fmt.Sprintf("float field %s is not > 0, so KEDA uses the int64 field", fmtFloat(f))
	}
	switch {
	case i < 0:
		q.Note = joinNotes(q.Note, fmt.Sprintf("negative %d becomes 0", i))
	case i > math.MaxInt64/1000:
		q.Milli = math.MaxInt64
		q.Note = joinNotes(q.Note, fmt.Sprintf("%d is too large, capped at %s", i, FormatMilli(q.Milli)))
	default:
		q.Milli = i * 1000
	}
	return q
}

func joinNotes(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// FormatMilli formats a quantity given in thousandths as a decimal number
// with at most three decimals and no trailing zeros.
func FormatMilli(m int64) string {
	sign := ""
	u := uint64(m)
	if m < 0 {
		sign = "-"
		u = uint64(-(m + 1)) + 1
	}
	s := sign + strconv.FormatUint(u/1000, 10)
	if frac := u % 1000; frac != 0 {
		s += "." + strings.TrimRight(fmt.Sprintf("%03d", frac), "0")
	}
	return s
}

func fmtFloat(f float64) string {
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// FormatRatio formats a usage ratio with at most four decimals.
func FormatRatio(r float64) string {
	if math.IsInf(r, 0) || math.IsNaN(r) {
		return strconv.FormatFloat(r, 'f', -1, 64)
	}
	s := strconv.FormatFloat(r, 'f', 4, 64)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
