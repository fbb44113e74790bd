package scaler

import (
	"math"

	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// specResponse is the one metric spec of a trigger. The deprecated int64
// target is rounded up, so that an int-only client never scales out more
// than asked.
func specResponse(name string, target float64) *pb.GetMetricSpecResponse {
	return &pb.GetMetricSpecResponse{MetricSpecs: []*pb.MetricSpec{{
		MetricName:      name,
		TargetSize:      clampInt64(math.Ceil(target)),
		TargetSizeFloat: target,
	}}}
}

// isActive holds the two IsActive answers, shared by every call: a
// message is only read once returned (marshalling it concurrently is
// safe), so a poll allocates none.
var isActive = [2]*pb.IsActiveResponse{{Result: false}, {Result: true}}

func isActiveResponse(active bool) *pb.IsActiveResponse {
	if active {
		return isActive[1]
	}
	return isActive[0]
}

// metricsResponse is GetMetrics' one value, in one allocation instead of
// three.
func metricsResponse(name string, v float64) *pb.GetMetricsResponse {
	m := &struct {
		resp pb.GetMetricsResponse
		vals [1]*pb.MetricValue
		val  pb.MetricValue
	}{}
	m.val.MetricName, m.val.MetricValue, m.val.MetricValueFloat = name, roundValue(v), v
	m.vals[0] = &m.val
	m.resp.MetricValues = m.vals[:]
	return &m.resp
}

// roundValue is the deprecated int64 of a value: rounded half away from
// zero.
func roundValue(v float64) int64 { return clampInt64(math.Round(v)) }

func clampInt64(v float64) int64 {
	switch {
	case v >= math.MaxInt64:
		return math.MaxInt64
	case v <= math.MinInt64:
		return math.MinInt64
	}
	return int64(v)
}
