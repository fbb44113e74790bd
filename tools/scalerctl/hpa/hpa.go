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
)

// Tolerance is the HPA's default tolerance: a usage ratio r with
// |r − 1| ≤ Tolerance leaves the replica count unchanged.
const Tolerance = 0.1

// DefaultMaxReplicas is KEDA's default maxReplicaCount.
const DefaultMaxReplicas = 100

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
