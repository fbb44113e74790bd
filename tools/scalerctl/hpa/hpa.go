// Package hpa reproduces the arithmetic that KEDA and the Kubernetes
// HorizontalPodAutoscaler (autoscaling/v2, external metrics) apply to what an
// external scaler returns: how KEDA turns the int64/float pair of a target or
// a value into a quantity with three decimals, the HPA's usage ratio,
// tolerance and clamping, and KEDA's own activation rules around zero.
//
// All quantities are carried in thousandths (milli-units), as KEDA hands them
// to the HPA, so that the computations match theirs exactly.
package hpa

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Tolerance is the HPA's default tolerance: a usage ratio r with
// |r − 1| ≤ Tolerance leaves the replica count unchanged.
const Tolerance = 0.1

// DefaultMaxReplicas is KEDA's default maxReplicaCount.
const DefaultMaxReplicas = 100

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

var (
	// ErrNoMetrics means the scaler returned no metric value: the external
	// metrics API then answers with no metrics and the HPA cannot compute.
	ErrNoMetrics = errors.New("no metric value: the HPA cannot compute a replica count and keeps the current one")
	// ErrZeroTarget means the target is 0 after KEDA's conversion: Kubernetes
	// rejects an HPA with a non-positive target.
	ErrZeroTarget = errors.New("target is 0 after KEDA's conversion: Kubernetes rejects an HPA whose target is not positive")
	// ErrScalingDisabled means the workload has 0 replicas: the HPA does not
	// act then, KEDA alone moves it between 0 and 1.
	ErrScalingDisabled = errors.New("the workload has 0 replicas: the HPA is disabled, KEDA alone scales from zero")
)

// HPAResult is one replica computation of the HPA for an external metric.
type HPAResult struct {
	// Type is the target type.
	Type MetricType
	// TargetMilli is the target in thousandths.
	TargetMilli int64
	// ValueMilli is the metric in thousandths: the sum of all values returned.
	ValueMilli int64
	// CurrentReplicas is the replica count the HPA computes from.
	CurrentReplicas int32
	// MinReplicas is the HPA's minReplicas, max(1, minReplicaCount): KEDA never
	// gives the HPA a minimum of 0.
	MinReplicas int32
	// MaxReplicas is the HPA's maxReplicas.
	MaxReplicas int32
	// Ratio is the HPA's usage ratio: (value/currentReplicas)/target for
	// AverageValue, value/target for Value.
	Ratio float64
	// WithinTolerance reports |Ratio − 1| ≤ Tolerance: the HPA keeps CurrentReplicas.
	WithinTolerance bool
	// Desired is the replica count the formula gives before tolerance and
	// clamping: ceil(value/target) for AverageValue, ceil(currentReplicas ×
	// value/target) for Value (capped at math.MaxInt32).
	Desired int64
	// Replicas is the HPA's result, after tolerance and clamping.
	Replicas int32
	// Limit names the bound that clamped the result ("minReplicas" or
	// "maxReplicas"), or is empty.
	Limit string
}

// ComputeHPA computes the replica count the HPA chooses for an external
// metric with target targetMilli and the values valuesMilli (the HPA sums
// them), starting from current replicas, with KEDA's minReplicaCount and
// maxReplicaCount.
func ComputeHPA(t MetricType, targetMilli int64, valuesMilli []int64, current, minReplicas, maxReplicas int32) (HPAResult, error) {
	r := HPAResult{
		Type:            t,
		TargetMilli:     targetMilli,
		CurrentReplicas: current,
		MinReplicas:     max(1, minReplicas),
		MaxReplicas:     maxReplicas,
	}
	if t != AverageValue && t != Value {
		return r, fmt.Errorf("unknown metric type %q", t)
	}
	for _, v := range valuesMilli {
		if v > math.MaxInt64-r.ValueMilli {
			r.ValueMilli = math.MaxInt64
			break
		}
		r.ValueMilli += v
	}
	switch {
	case len(valuesMilli) == 0:
		return r, ErrNoMetrics
	case targetMilli <= 0:
		return r, ErrZeroTarget
	case current <= 0:
		return r, ErrScalingDisabled
	}
	value, target, cur := float64(r.ValueMilli), float64(targetMilli), float64(current)
	var desired float64
	if t == AverageValue {
		r.Ratio = value / (target * cur)
		desired = math.Ceil(value / target)
	} else {
		r.Ratio = value / target
		desired = math.Ceil(r.Ratio * cur)
	}
	r.Desired = int64(min(desired, math.MaxInt32))
	r.WithinTolerance = math.Abs(1-r.Ratio) <= Tolerance
	r.Replicas = current
	if !r.WithinTolerance {
		r.Replicas = int32(r.Desired)
	}
	switch {
	case r.Replicas < r.MinReplicas:
		r.Replicas, r.Limit = r.MinReplicas, "minReplicas"
	case r.Replicas > r.MaxReplicas:
		r.Replicas, r.Limit = r.MaxReplicas, "maxReplicas"
	}
	return r, nil
}

// Formula returns the HPA's computation as two human-readable lines: the
// usage ratio and the desired replica count.
func (r HPAResult) Formula() (ratio, desired string) {
	v, tg := FormatMilli(r.ValueMilli), FormatMilli(r.TargetMilli)
	if r.Type == Value {
		ratio = fmt.Sprintf("value / target = %s / %s = %s", v, tg, FormatRatio(r.Ratio))
		desired = fmt.Sprintf("ceil(currentReplicas × ratio) = ceil(%d × %s) = %d", r.CurrentReplicas, FormatRatio(r.Ratio), r.Desired)
		return ratio, desired
	}
	ratio = fmt.Sprintf("(value / currentReplicas) / target = (%s / %d) / %s = %s", v, r.CurrentReplicas, tg, FormatRatio(r.Ratio))
	desired = fmt.Sprintf("ceil(value / target) = ceil(%s / %s) = %d", v, tg, r.Desired)
	return ratio, desired
}

// Explain says in words how Replicas follows from Desired.
func (r HPAResult) Explain() string {
	var s string
	if r.WithinTolerance {
		s = fmt.Sprintf("|ratio − 1| ≤ %g: within tolerance, keeps currentReplicas %d", Tolerance, r.CurrentReplicas)
	} else {
		s = fmt.Sprintf("|ratio − 1| > %g: takes desired %d", Tolerance, r.Desired)
	}
	switch r.Limit {
	case "minReplicas":
		s += fmt.Sprintf(", raised to minReplicas %d", r.MinReplicas)
	case "maxReplicas":
		s += fmt.Sprintf(", capped at maxReplicas %d", r.MaxReplicas)
	}
	return s
}

// Input is what one poll of a ScaledObject with a single external trigger
// gives KEDA, plus the workload's state and the ScaledObject's bounds.
type Input struct {
	// Type is the trigger's metricType.
	Type MetricType
	// TargetMilli is the normalized target, in thousandths.
	TargetMilli int64
	// ValuesMilli are the normalized metric values, in thousandths.
	ValuesMilli []int64
	// Active is IsActive's result.
	Active bool
	// CurrentReplicas is the workload's current replica count.
	CurrentReplicas int32
	// MinReplicas is the ScaledObject's minReplicaCount (0 allowed).
	MinReplicas int32
	// MaxReplicas is the ScaledObject's maxReplicaCount.
	MaxReplicas int32
}

// Action is what moves the replica count after a poll.
type Action string

const (
	// ActionStayAtZero: inactive at 0 replicas with minReplicaCount 0; nothing happens.
	ActionStayAtZero Action = "stay-at-zero"
	// ActionScaleToZero: inactive with minReplicaCount 0; KEDA scales to 0
	// once cooldownPeriod has passed since the trigger was last active.
	ActionScaleToZero Action = "scale-to-zero-after-cooldown"
	// ActionScaleFromZero: active at 0 replicas; KEDA scales to
	// max(1, minReplicaCount) at once and hands over to the HPA.
	ActionScaleFromZero Action = "scale-from-zero"
	// ActionScaleToMin: fewer replicas than minReplicaCount; KEDA scales to
	// minReplicaCount at once and hands over to the HPA.
	ActionScaleToMin Action = "scale-to-min"
	// ActionHPA: the HPA alone is in control.
	ActionHPA Action = "hpa"
)

// Decision is what KEDA and the HPA do with one poll's result.
type Decision struct {
	// Action is what moves the replica count.
	Action Action
	// KEDAReplicas is the replica count KEDA sets itself for the
	// scale-to-zero, scale-from-zero and scale-to-min actions; otherwise the
	// current count.
	KEDAReplicas int32
	// AfterCooldown reports that KEDA's change waits for cooldownPeriod.
	AfterCooldown bool
	// HPA is the HPA's computation that applies (from KEDAReplicas after a
	// scale-from-zero or scale-to-min, from the current count otherwise; for
	// scale-to-zero, what the HPA does until the cooldown ends); nil when the
	// HPA is not involved or cannot compute (see HPAErr).
	HPA *HPAResult
	// HPAErr says why the HPA cannot compute, if it is involved but cannot.
	HPAErr error
	// Replicas is the replica count the workload ends up with.
	Replicas int32
	// Reason explains the decision in one sentence.
	Reason string
}

// Validate checks the replica bounds the way KEDA's admission does.
func (in Input) Validate() error {
	switch {
	case in.Type != AverageValue && in.Type != Value:
		return fmt.Errorf("unknown metric type %q", in.Type)
	case in.CurrentReplicas < 0:
		return fmt.Errorf("current replicas %d is negative", in.CurrentReplicas)
	case in.MinReplicas < 0:
		return fmt.Errorf("minReplicaCount %d is negative", in.MinReplicas)
	case in.MaxReplicas < 1:
		return fmt.Errorf("maxReplicaCount %d must be at least 1", in.MaxReplicas)
	case in.MinReplicas > in.MaxReplicas:
		return fmt.Errorf("minReplicaCount %d is greater than maxReplicaCount %d", in.MinReplicas, in.MaxReplicas)
	}
	return nil
}

// Replicas says n replicas in English: "1 replica", "0 replicas", "2 replicas".
func Replicas(n int32) string {
	if n == 1 {
		return "1 replica"
	}
	return fmt.Sprintf("%d replicas", n)
}

// Decide applies KEDA's activation rules and the HPA's arithmetic to one poll.
func Decide(in Input) (Decision, error) {
	if err := in.Validate(); err != nil {
		return Decision{}, err
	}
	d := Decision{KEDAReplicas: in.CurrentReplicas}
	hpaFrom := func(current int32) {
		r, err := ComputeHPA(in.Type, in.TargetMilli, in.ValuesMilli, current, in.MinReplicas, in.MaxReplicas)
		if err != nil {
			d.HPAErr = err
			d.Replicas = current
			return
		}
		d.HPA = &r
		d.Replicas = r.Replicas
	}
	cur, lo := in.CurrentReplicas, in.MinReplicas
	switch {
	case !in.Active && cur == 0 && lo == 0:
		d.Action = ActionStayAtZero
		d.Reason = "inactive at 0 replicas: stays at 0 (the HPA is off at 0 replicas)"
	case !in.Active && cur > 0 && lo == 0:
		d.Action, d.KEDAReplicas, d.AfterCooldown = ActionScaleToZero, 0, true
		hpaFrom(cur)
		d.Replicas = 0
		d.Reason = fmt.Sprintf("inactive: KEDA scales to minReplicaCount 0 once cooldownPeriod (default 300 s) has passed since the trigger was last active; until then the HPA acts from %s", Replicas(cur))
	case in.Active && cur == 0:
		d.Action, d.KEDAReplicas = ActionScaleFromZero, max(1, lo)
		hpaFrom(d.KEDAReplicas)
		d.Reason = fmt.Sprintf("active at 0 replicas: KEDA scales to max(1, minReplicaCount) = %d at once, then the HPA takes over", d.KEDAReplicas)
	case cur < lo:
		d.Action, d.KEDAReplicas = ActionScaleToMin, lo
		hpaFrom(lo)
		d.Reason = fmt.Sprintf("%s is below minReplicaCount: KEDA scales to %d at once, then the HPA takes over", Replicas(cur), lo)
	case !in.Active:
		d.Action = ActionHPA
		hpaFrom(cur)
		d.Reason = fmt.Sprintf("inactive, but minReplicaCount is %d: KEDA does not scale below it and leaves the HPA in control", lo)
	default:
		d.Action = ActionHPA
		hpaFrom(cur)
		d.Reason = fmt.Sprintf("active with %s: the HPA is in control", Replicas(cur))
	}
	return d, nil
}
