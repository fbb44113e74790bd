package cli

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/kedascalers/kedascalers/tools/scalerctl/hpa"
	"github.com/kedascalers/kedascalers/tools/scalerctl/internal/metadata"
)

func (a *app) printHeader(r *checkReport) {
	w := a.stdout
	fmt.Fprintf(w, "%-13s %s (%s)\n", "scaler", r.Addr, r.Transport)
	fmt.Fprintf(w, "%-13s %s/%s\n", "scaledObject", r.Ref.Namespace, r.Ref.Name)
	meta := metadata.Format(r.Ref.ScalerMetadata)
	if meta == "" {
		meta = "(none)"
	}
	fmt.Fprintf(w, "%-13s %s\n\n", "metadata", meta)
}

func (a *app) printSpec(r *checkReport, target hpa.Quantity) {
	w, s := a.stdout, r.MetricSpec
	n := 1 + len(r.IgnoredSpecs)
	plural := "s"
	if n == 1 {
		plural = ""
	}
	fmt.Fprintf(w, "GetMetricSpec  took %s  %d metric spec%s\n", fmtDur(r.Durations["GetMetricSpec"]), n, plural)
	fmt.Fprintf(w, "  %-16s %q  (HPA metric name %s)\n", "metricName", s.MetricName, s.HPAMetricName)
	fmt.Fprintf(w, "  %-16s %d\n", "targetSize", s.TargetSize)
	fmt.Fprintf(w, "  %-16s %s\n", "targetSizeFloat", fmtRaw(float64(s.TargetSizeFloat)))
	fmt.Fprintf(w, "  %-16s %s  (%s)\n", "target", target, explainSource(target, "targetSize"))
	for _, o := range r.IgnoredSpecs {
		fmt.Fprintf(w, "  %-16s metricName=%q targetSize=%d targetSizeFloat=%s (not checked)\n", "also", o.MetricName, o.TargetSize, fmtRaw(float64(o.TargetSizeFloat)))
	}
	fmt.Fprintln(w)
}

func (a *app) printValues(r *checkReport, name string, sum int64) {
	w := a.stdout
	fmt.Fprintf(w, "GetMetrics  took %s  metricName=%q\n", fmtDur(r.Durations["GetMetrics"]), name)
	for i, v := range r.MetricValues {
		q := hpa.Normalize(float64(v.MetricValueFloat), v.MetricValue)
		fmt.Fprintf(w, "  [%d] metricName=%q metricValue=%d metricValueFloat=%s → %s (%s)\n",
			i, v.MetricName, v.MetricValue, fmtRaw(float64(v.MetricValueFloat)), q, explainSource(q, "metricValue"))
	}
	fmt.Fprintf(w, "  %-16s %s\n\n", "value", hpa.FormatMilli(sum))
}

func (a *app) printDecision(d hpa.Decision) {
	w := a.stdout
	switch h := d.HPA; {
	case h != nil:
		from := ""
		if d.Action == hpa.ActionScaleFromZero || d.Action == hpa.ActionScaleToMin {
			from = " (after KEDA's scaling)"
		}
		fmt.Fprintf(w, "HPA  %s, currentReplicas %d%s, minReplicas %d, maxReplicas %d, tolerance %g\n",
			h.Type, h.CurrentReplicas, from, h.MinReplicas, h.MaxReplicas, hpa.Tolerance)
		ratio, desired := h.Formula()
		fmt.Fprintf(w, "  %-16s %s\n", "ratio", ratio)
		fmt.Fprintf(w, "  %-16s %s\n", "desired", desired)
		fmt.Fprintf(w, "  %-16s %d  (%s)\n\n", "replicas", h.Replicas, h.Explain())
	case d.HPAErr != nil:
		fmt.Fprintf(w, "HPA  cannot compute: %v\n\n", d.HPAErr)
	default:
		fmt.Fprintf(w, "HPA  not involved\n\n")
	}
	fmt.Fprintf(w, "KEDA  %s\n", d.Reason)
	switch {
	case d.AfterCooldown && d.HPA != nil:
		fmt.Fprintf(w, "  %-16s %s after cooldownPeriod (HPA meanwhile: %d)\n", "decision", hpa.Replicas(d.Replicas), d.HPA.Replicas)
	case d.AfterCooldown:
		fmt.Fprintf(w, "  %-16s %s after cooldownPeriod\n", "decision", hpa.Replicas(d.Replicas))
	default:
		fmt.Fprintf(w, "  %-16s %s\n", "decision", hpa.Replicas(d.Replicas))
	}
}

func explainSource(q hpa.Quantity, intField string) string {
	s := intField + "Float > 0"
	if !q.FromFloat {
		s = intField + "Float not > 0, " + intField + " used"
	}
	if q.Note != "" {
		s += "; " + q.Note
	}
	return s
}

func fmtRaw(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func fmtDur(msec float64) string {
	return time.Duration(msec * float64(time.Millisecond)).Round(10 * time.Microsecond).String()
}

func satAdd(a, b int64) int64 {
	if b > math.MaxInt64-a {
		return math.MaxInt64
	}
	return a + b
}
