package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	grpcmd "google.golang.org/grpc/metadata"

	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
	"github.com/kedascalers/kedascalers/tools/scalerctl/hpa"
	"github.com/kedascalers/kedascalers/tools/scalerctl/internal/dial"
	"github.com/kedascalers/kedascalers/tools/scalerctl/internal/metadata"
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
	if err := f.dial.Check(); err != nil {
		return a.usageErr("check", err)
	}
	ref, err := f.ref()
	if err != nil {
		return a.usageErr("check", err)
	}
	conn, err := dial.Dial(f.dial)
	if err != nil {
		return a.usageErr("check", err)
	}
	a.target = f.dial.Addr
	defer conn.Close()
	client := pb.NewExternalScalerClient(conn)

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

// WarningKey is the gRPC metadata key (header or trailer) a kedascalers
// scaler sends its warnings about a trigger under, one value each; KEDA
// ignores it.
const WarningKey = "kedascalers-warning"

// scalerWarnings gathers the distinct warnings a scaler sends over the
// RPCs of one check, in the order they first came.
type scalerWarnings struct {
	header, trailer grpcmd.MD
	list            []string
	seen            map[string]bool
}

// opts returns the call options that capture the next RPC's metadata.
func (w *scalerWarnings) opts() []grpc.CallOption {
	w.header, w.trailer = nil, nil
	return []grpc.CallOption{grpc.Header(&w.header), grpc.Trailer(&w.trailer)}
}

// collect takes the warnings of the RPC just made.
func (w *scalerWarnings) collect() {
	if w.seen == nil {
		w.seen = map[string]bool{}
	}
	for _, v := range append(w.header.Get(WarningKey), w.trailer.Get(WarningKey)...) {
		if !w.seen[v] {
			w.seen[v] = true
			w.list = append(w.list, v)
		}
	}
}

func (w *scalerWarnings) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nwarnings: (from the scaler, %s)\n", WarningKey)
	for _, v := range w.list {
		fmt.Fprintf(&b, "  %s\n", v)
	}
	return b.String()
}

// checkReport is check's result; --json prints it as it is.
type checkReport struct {
	Addr         string       `json:"addr"`
	Transport    string       `json:"transport"`
	Ref          refJSON      `json:"scaledObjectRef"`
	MetricType   string       `json:"metricType"`
	MetricSpec   specJSON     `json:"metricSpec"`
	IgnoredSpecs []specJSON   `json:"ignoredMetricSpecs,omitempty"`
	MetricValues []valueJSON  `json:"metricValues"`
	Value        float64      `json:"value"`
	Active       bool         `json:"active"`
	Replicas     replicasJSON `json:"replicas"`
	HPA          *hpaJSON     `json:"hpa"`
	KEDA         kedaJSON     `json:"keda"`
	Warnings     []string     `json:"warnings"`
	// ScalerWarnings are the scaler's own warnings about the trigger,
	// sent as kedascalers-warning header or trailer values.
	ScalerWarnings []string           `json:"scalerWarnings"`
	Durations      map[string]float64 `json:"durationsMs"`
}

type refJSON struct {
	Name           string            `json:"name"`
	Namespace      string            `json:"namespace"`
	ScalerMetadata map[string]string `json:"scalerMetadata"`
}

type specJSON struct {
	MetricName      string    `json:"metricName"`
	HPAMetricName   string    `json:"hpaMetricName,omitempty"`
	TargetSize      int64     `json:"targetSize"`
	TargetSizeFloat jsonFloat `json:"targetSizeFloat"`
	Target          *float64  `json:"target,omitempty"`
	TargetSource    string    `json:"targetSource,omitempty"`
	Note            string    `json:"note,omitempty"`
}

type valueJSON struct {
	MetricName       string    `json:"metricName"`
	MetricValue      int64     `json:"metricValue"`
	MetricValueFloat jsonFloat `json:"metricValueFloat"`
	Value            float64   `json:"value"`
	Source           string    `json:"source"`
	Note             string    `json:"note,omitempty"`
}

type replicasJSON struct {
	Current int32 `json:"current"`
	Min     int32 `json:"min"`
	Max     int32 `json:"max"`
}

type hpaJSON struct {
	CurrentReplicas int32     `json:"currentReplicas"`
	MinReplicas     int32     `json:"minReplicas"`
	MaxReplicas     int32     `json:"maxReplicas"`
	Ratio           jsonFloat `json:"ratio"`
	Tolerance       float64   `json:"tolerance"`
	WithinTolerance bool      `json:"withinTolerance"`
	Desired         int64     `json:"desired"`
	Replicas        int32     `json:"replicas"`
	Limit           string    `json:"limit,omitempty"`
	RatioFormula    string    `json:"ratioFormula"`
	DesiredFormula  string    `json:"desiredFormula"`
}

type kedaJSON struct {
	Action        string `json:"action"`
	KEDAReplicas  int32  `json:"kedaReplicas"`
	AfterCooldown bool   `json:"afterCooldown"`
	Replicas      int32  `json:"replicas"`
	Reason        string `json:"reason"`
	HPAError      string `json:"hpaError,omitempty"`
}

// jsonFloat is a float64 that encodes NaN and ±Inf as the strings "NaN",
// "+Inf" and "-Inf", which encoding/json refuses otherwise.
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte(strconv.Quote(strconv.FormatFloat(v, 'f', -1, 64))), nil
	}
	return json.Marshal(v)
}

func specFromProto(s *pb.MetricSpec, triggerIndex int) specJSON {
	q := hpa.Normalize(s.GetTargetSizeFloat(), s.GetTargetSize())
	t := q.Float()
	return specJSON{
		MetricName:      s.GetMetricName(),
		HPAMetricName:   fmt.Sprintf("s%d-%s", triggerIndex, s.GetMetricName()),
		TargetSize:      s.GetTargetSize(),
		TargetSizeFloat: jsonFloat(s.GetTargetSizeFloat()),
		Target:          &t,
		TargetSource:    source(q, "targetSize"),
		Note:            q.Note,
	}
}

// source names the field KEDA took a quantity from.
func source(q hpa.Quantity, intField string) string {
	if q.FromFloat {
		return intField + "Float"
	}
	return intField
}

func (r *checkReport) warn(s string) { r.Warnings = append(r.Warnings, s) }

func (r *checkReport) warnSpec(s *pb.MetricSpec, q hpa.Quantity) {
	name := s.GetMetricName()
	switch {
	case name == "":
		r.warn("metricName is empty: KEDA would name the HPA metric \"s0-\"")
	case name != strings.ToLower(name):
		r.warn(fmt.Sprintf("metricName %q has upper-case letters: keep metric names lowercase and stable", name))
	}
	if q.Note != "" {
		r.warn("target: " + q.Note)
	}
	if f := s.GetTargetSizeFloat(); f > 0 && !math.IsInf(f, 1) && float64(s.GetTargetSize()) != math.Ceil(f) {
		r.warn(fmt.Sprintf("targetSize %d is not targetSizeFloat %s rounded up: KEDA uses targetSizeFloat, but fill both consistently", s.GetTargetSize(), fmtRaw(f)))
	}
	if q.Milli <= 0 {
		r.warn("target is 0 as KEDA reads it: Kubernetes rejects the HPA")
	}
	if n := len(r.IgnoredSpecs); n > 0 {
		r.warn(fmt.Sprintf("GetMetricSpec returned %d metric specs: scalerctl checks the first; KEDA gives the HPA one metric per spec", n+1))
	}
}

func (r *checkReport) warnValue(v *pb.MetricValue, q hpa.Quantity) {
	if q.Note != "" {
		r.warn(fmt.Sprintf("metric value %q: %s", v.GetMetricName(), q.Note))
	}
	if f := v.GetMetricValueFloat(); f > 0 && !math.IsInf(f, 1) && math.Abs(float64(v.GetMetricValue())-f) >= 1 {
		r.warn(fmt.Sprintf("metric value %q: metricValue %d and metricValueFloat %s disagree: KEDA uses metricValueFloat, but fill both consistently", v.GetMetricName(), v.GetMetricValue(), fmtRaw(f)))
	}
}

func (r *checkReport) setDecision(d hpa.Decision) {
	r.KEDA = kedaJSON{
		Action:        string(d.Action),
		KEDAReplicas:  d.KEDAReplicas,
		AfterCooldown: d.AfterCooldown,
		Replicas:      d.Replicas,
		Reason:        d.Reason,
	}
	if d.HPAErr != nil {
		r.KEDA.HPAError = d.HPAErr.Error()
	}
	if h := d.HPA; h != nil {
		ratio, desired := h.Formula()
		r.HPA = &hpaJSON{
			CurrentReplicas: h.CurrentReplicas,
			MinReplicas:     h.MinReplicas,
			MaxReplicas:     h.MaxReplicas,
			Ratio:           jsonFloat(h.Ratio),
			Tolerance:       hpa.Tolerance,
			WithinTolerance: h.WithinTolerance,
			Desired:         h.Desired,
			Replicas:        h.Replicas,
			Limit:           h.Limit,
			RatioFormula:    ratio,
			DesiredFormula:  desired,
		}
	}
}

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
