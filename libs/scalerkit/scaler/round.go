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
