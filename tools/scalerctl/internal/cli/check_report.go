package cli

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
	"github.com/kedascalers/kedascalers/tools/scalerctl/hpa"
)

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
