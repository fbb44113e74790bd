package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"time"

	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
	"github.com/kedascalers/kedascalers/tools/scalerctl/hpa"
)

const checkSynopsis = `Performs exactly what KEDA does on one poll of a ScaledObject with this
external trigger: GetMetricSpec; then, for the first metric spec, GetMetrics
with that spec's metricName followed by a separate IsActive. Prints the spec,
the value and the activity as KEDA reads them (float field when > 0, else the
int64 one; NaN, Inf and negatives as 0; three decimals), then the replicas the
HPA computes (AverageValue: ceil(value/target); Value: ceil(currentReplicas ×
value/target); tolerance 0.1; clamped to [max(1, min), max]) and what KEDA
decides around zero (inactive: minReplicaCount after cooldownPeriod; active at
0 replicas: max(1, minReplicaCount), then the HPA).
`

type checkFlags struct {
	commonFlags
	metricType string
	current    int
	min        int
	max        int
	timeout    time.Duration
}

func (a *app) check(ctx context.Context, args []string) int {
	var f checkFlags
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	f.register(fs)
	fs.StringVar(&f.metricType, "metric-type", string(hpa.AverageValue), "the trigger's metricType: `AverageValue` or Value")
	fs.IntVar(&f.current, "current-replicas", 1, "the workload's current replica `count`")
	fs.IntVar(&f.min, "min-replicas", 0, "the ScaledObject's minReplicaCount")
	fs.IntVar(&f.max, "max-replicas", hpa.DefaultMaxReplicas, "the ScaledObject's maxReplicaCount")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "deadline for the three RPCs together (0: none, as in KEDA)")
	if code, done := a.parse(fs, args, checkSynopsis); done {
		return code
	}

	mt, err := hpa.ParseMetricType(f.metricType)
	if err != nil {
		return a.usageErr("check", err)
	}
	for _, n := range []struct {
		flag string
		v    int
	}{{"--current-replicas", f.current}, {"--min-replicas", f.min}, {"--max-replicas", f.max}} {
		if n.v < 0 || n.v > math.MaxInt32 {
			return a.usageErr("check", fmt.Errorf("%s %d is out of range", n.flag, n.v))
		}
	}
	bounds := hpa.Input{Type: mt, CurrentReplicas: int32(f.current), MinReplicas: int32(f.min), MaxReplicas: int32(f.max)}
	if err := bounds.Validate(); err != nil {
		return a.usageErr("check", err)
	}
	if f.timeout < 0 {
		return a.usageErr("check", fmt.Errorf("--timeout %v is negative", f.timeout))
	}
	sc, err := a.connect(&f.commonFlags)
	if err != nil {
		return a.usageErr("check", err)
	}
	defer sc.conn.Close()
	client, ref := sc.client, sc.ref

	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}

	rep := &checkReport{
		Addr:       f.dial.Addr,
		Transport:  connDesc(f.dial),
		Ref:        refJSON{Name: ref.Name, Namespace: ref.Namespace, ScalerMetadata: ref.ScalerMetadata},
		MetricType: string(mt),
		Replicas:   replicasJSON{Current: bounds.CurrentReplicas, Min: bounds.MinReplicas, Max: bounds.MaxReplicas},
		Durations:  map[string]float64{},
	}
	text := !f.json
	if text {
		a.printHeader(rep)
	}

	var sw scalerWarnings
	defer func() { // also after a failed RPC: a warning may say why
		if text && len(sw.list) > 0 {
			fmt.Fprint(a.stdout, sw.text())
		}
	}()

	start := a.now()
	specResp, err := client.GetMetricSpec(ctx, ref, sw.opts()...)
	rep.Durations["GetMetricSpec"] = ms(a.now().Sub(start))
	sw.collect()
	if err != nil {
		return a.rpcFailed("GetMetricSpec", err)
	}
	specs := specResp.GetMetricSpecs()
	if len(specs) == 0 {
		fmt.Fprintln(a.stderr, "scalerctl: GetMetricSpec: returned no metric specs: KEDA would give the HPA no metric for this trigger")
		return ExitFailure
	}
	for i, s := range specs {
		sj := specFromProto(s, 0)
		if i == 0 {
			rep.MetricSpec = sj
			continue
		}
		rep.IgnoredSpecs = append(rep.IgnoredSpecs, sj)
	}
	target := hpa.Normalize(specs[0].GetTargetSizeFloat(), specs[0].GetTargetSize())
	rep.warnSpec(specs[0], target)
	if text {
		a.printSpec(rep, target)
	}

	start = a.now()
	metricsResp, err := client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: specs[0].GetMetricName()}, sw.opts()...)
	rep.Durations["GetMetrics"] = ms(a.now().Sub(start))
	sw.collect()
	if err != nil {
		return a.rpcFailed("GetMetrics", err)
	}
	var valuesMilli []int64
	var sum int64
	rep.MetricValues = []valueJSON{}
	for _, v := range metricsResp.GetMetricValues() {
		q := hpa.Normalize(v.GetMetricValueFloat(), v.GetMetricValue())
		valuesMilli = append(valuesMilli, q.Milli)
		sum = satAdd(sum, q.Milli)
		rep.MetricValues = append(rep.MetricValues, valueJSON{
			MetricName:       v.GetMetricName(),
			MetricValue:      v.GetMetricValue(),
			MetricValueFloat: jsonFloat(v.GetMetricValueFloat()),
			Value:            q.Float(),
			Source:           source(q, "metricValue"),
			Note:             q.Note,
		})
		rep.warnValue(v, q)
	}
	if n := len(valuesMilli); n != 1 {
		rep.warn(fmt.Sprintf("GetMetrics returned %d metric values: KEDA hands each to the HPA, which sums them; return exactly one", n))
	}
	rep.Value = float64(sum) / 1000
	if text {
		a.printValues(rep, specs[0].GetMetricName(), sum)
	}

	start = a.now()
	activeResp, err := client.IsActive(ctx, ref, sw.opts()...)
	rep.Durations["IsActive"] = ms(a.now().Sub(start))
	sw.collect()
	if err != nil {
		return a.rpcFailed("IsActive", err)
	}
	rep.Active = activeResp.GetResult()
	if text {
		fmt.Fprintf(a.stdout, "IsActive  took %s\n  %-16s %t\n\n", fmtDur(rep.Durations["IsActive"]), "result", rep.Active)
	}

	in := bounds
	in.TargetMilli, in.ValuesMilli, in.Active = target.Milli, valuesMilli, rep.Active
	d, err := hpa.Decide(in)
	if err != nil { // bounds were validated above
		fmt.Fprintf(a.stderr, "scalerctl: %v\n", err)
		return ExitFailure
	}
	rep.setDecision(d)
	if text {
		a.printDecision(d)
		for _, w := range rep.Warnings {
			fmt.Fprintf(a.stdout, "warning: %s\n", w)
		}
		return ExitOK
	}
	if rep.Warnings == nil {
		rep.Warnings = []string{}
	}
	rep.ScalerWarnings = append([]string{}, sw.list...)
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		fmt.Fprintf(a.stderr, "scalerctl: %v\n", err)
		return ExitFailure
	}
	return ExitOK
}
