package hpa

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestParseMetricType(t *testing.T) {
	tests := []struct {
		in      string
		want    MetricType
		wantErr string
	}{
		{in: "", want: AverageValue},
		{in: "AverageValue", want: AverageValue},
		{in: "Value", want: Value},
		{in: "Utilization", wantErr: "not supported"},
		{in: "value", wantErr: "unknown metric type"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMetricType(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseMetricType(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseMetricType(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name      string
		f         float64
		i         int64
		wantMilli int64
		fromFloat bool
		note      string // substring; "" means no note
	}{
		{name: "float used when > 0", f: 12.5, i: 13, wantMilli: 12500, fromFloat: true},
		{name: "int used when float is 0", f: 0, i: 7, wantMilli: 7000},
		{name: "both zero", f: 0, i: 0, wantMilli: 0},
		{name: "three decimals kept", f: 0.125, i: 1, wantMilli: 125, fromFloat: true},
		{name: "fourth decimal truncated", f: 0.0004, i: 1, wantMilli: 0, fromFloat: true, note: "0.0004 becomes 0"},
		{name: "truncation not rounding", f: 2.9999, wantMilli: 2999, fromFloat: true, note: "2.9999 becomes 2.999"},
		{name: "float noise is not a note", f: 1.1, wantMilli: 1100, fromFloat: true},
		{name: "NaN falls back to int", f: math.NaN(), i: 4, wantMilli: 4000, note: "NaN is not > 0"},
		{name: "negative float falls back to int", f: -3, i: 4, wantMilli: 4000, note: "-3 is not > 0"},
		{name: "-Inf falls back to int", f: math.Inf(-1), i: 2, wantMilli: 2000, note: "-Inf is not > 0"},
		{name: "+Inf becomes 0", f: math.Inf(1), i: 9, wantMilli: 0, fromFloat: true, note: "+Inf becomes 0"},
		{name: "negative int becomes 0", f: 0, i: -5, wantMilli: 0, note: "negative -5 becomes 0"},
		{name: "NaN and negative int", f: math.NaN(), i: -1, wantMilli: 0, note: "NaN is not > 0, so KEDA uses the int64 field; negative -1 becomes 0"},
		{name: "huge int capped", i: math.MaxInt64, wantMilli: math.MaxInt64, note: "too large"},
		{name: "huge float capped", f: 1e300, wantMilli: math.MaxInt64, fromFloat: true, note: "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := Normalize(tt.f, tt.i)
			if q.Milli != tt.wantMilli || q.FromFloat != tt.fromFloat {
				t.Errorf("Normalize(%v, %d) = %+v; want milli %d fromFloat %v", tt.f, tt.i, q, tt.wantMilli, tt.fromFloat)
			}
			switch {
			case tt.note == "" && q.Note != "":
				t.Errorf("Normalize(%v, %d) note = %q, want none", tt.f, tt.i, q.Note)
			case tt.note != "" && !strings.Contains(q.Note, tt.note):
				t.Errorf("Normalize(%v, %d) note = %q, want it to contain %q", tt.f, tt.i, q.Note, tt.note)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	milli := map[int64]string{0: "0", 1: "0.001", 10: "0.01", 1500: "1.5", 12345: "12.345", -2500: "-2.5", math.MinInt64: "-9223372036854775.808"}
	for in, want := range milli {
		if got := FormatMilli(in); got != want {
			t.Errorf("FormatMilli(%d) = %q, want %q", in, got, want)
		}
	}
	ratios := map[float64]string{1: "1", 1.25: "1.25", 2.0 / 3: "0.6667", math.Inf(1): "+Inf"}
	for in, want := range ratios {
		if got := FormatRatio(in); got != want {
			t.Errorf("FormatRatio(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestComputeHPA(t *testing.T) {
	tests := []struct {
		name          string
		typ           MetricType
		target        int64
		values        []int64
		cur, lo, hi   int32
		wantRatio     float64
		wantDesired   int64
		wantReplicas  int32
		wantTolerance bool
		wantLimit     string
		wantErr       error
	}{
		{name: "average: ceil(value/target)", typ: AverageValue, target: 5000, values: []int64{12000}, cur: 1, lo: 0, hi: 100,
			wantRatio: 2.4, wantDesired: 3, wantReplicas: 3},
		{name: "average: ratio is per replica", typ: AverageValue, target: 5000, values: []int64{12000}, cur: 4, lo: 0, hi: 100,
			wantRatio: 0.6, wantDesired: 3, wantReplicas: 3},
		{name: "average: exact multiple", typ: AverageValue, target: 10000, values: []int64{30000}, cur: 1, lo: 1, hi: 100,
			wantRatio: 3, wantDesired: 3, wantReplicas: 3},
		{name: "average: within tolerance above keeps current", typ: AverageValue, target: 10000, values: []int64{32000}, cur: 3, lo: 1, hi: 100,
			wantRatio: 32.0 / 30, wantDesired: 4, wantReplicas: 3, wantTolerance: true},
		{name: "average: within tolerance below keeps current", typ: AverageValue, target: 10000, values: []int64{27500}, cur: 3, lo: 1, hi: 100,
			wantRatio: 27.5 / 30, wantDesired: 3, wantReplicas: 3, wantTolerance: true},
		// 1 − 1.1 is −0.10000000000000009 in float64: the HPA scales, and so do we.
		{name: "average: ratio 1.1 is just past tolerance in float64", typ: AverageValue, target: 1000, values: []int64{1100}, cur: 1, lo: 1, hi: 100,
			wantRatio: 1.1, wantDesired: 2, wantReplicas: 2},
		{name: "average: ratio 0.9 is at the lower tolerance edge", typ: AverageValue, target: 1000, values: []int64{2700}, cur: 3, lo: 1, hi: 100,
			wantRatio: 0.9, wantDesired: 3, wantReplicas: 3, wantTolerance: true},
		{name: "value: ratio 0.95 within tolerance keeps current", typ: Value, target: 2000, values: []int64{1900}, cur: 6, lo: 1, hi: 100,
			wantRatio: 0.95, wantDesired: 6, wantReplicas: 6, wantTolerance: true},
		{name: "average: just past tolerance", typ: AverageValue, target: 1000, values: []int64{1101}, cur: 1, lo: 1, hi: 100,
			wantRatio: 1.101, wantDesired: 2, wantReplicas: 2},
		{name: "average: sums several values", typ: AverageValue, target: 2000, values: []int64{3000, 3000}, cur: 1, lo: 1, hi: 100,
			wantRatio: 3, wantDesired: 3, wantReplicas: 3},
		{name: "average: fractional target", typ: AverageValue, target: 500, values: []int64{1250}, cur: 1, lo: 1, hi: 100,
			wantRatio: 2.5, wantDesired: 3, wantReplicas: 3},
		{name: "value: ceil(current × value/target)", typ: Value, target: 10000, values: []int64{25000}, cur: 2, lo: 1, hi: 100,
			wantRatio: 2.5, wantDesired: 5, wantReplicas: 5},
		{name: "value: scales down", typ: Value, target: 10000, values: []int64{5000}, cur: 4, lo: 1, hi: 100,
			wantRatio: 0.5, wantDesired: 2, wantReplicas: 2},
		{name: "value: within tolerance", typ: Value, target: 10000, values: []int64{10500}, cur: 7, lo: 1, hi: 100,
			wantRatio: 1.05, wantDesired: 8, wantReplicas: 7, wantTolerance: true},
		{name: "clamped to max", typ: AverageValue, target: 1000, values: []int64{500000}, cur: 1, lo: 0, hi: 10,
			wantRatio: 500, wantDesired: 500, wantReplicas: 10, wantLimit: "maxReplicas"},
		{name: "clamped to min", typ: AverageValue, target: 1000, values: []int64{0}, cur: 5, lo: 3, hi: 10,
			wantRatio: 0, wantDesired: 0, wantReplicas: 3, wantLimit: "minReplicas"},
		{name: "HPA minimum is 1 even with minReplicaCount 0", typ: Value, target: 1000, values: []int64{0}, cur: 5, lo: 0, hi: 10,
			wantRatio: 0, wantDesired: 0, wantReplicas: 1, wantLimit: "minReplicas"},
		{name: "within tolerance but above max is clamped", typ: AverageValue, target: 1000, values: []int64{20000}, cur: 20, lo: 1, hi: 10,
			wantRatio: 1, wantDesired: 20, wantReplicas: 10, wantTolerance: true, wantLimit: "maxReplicas"},
		{name: "huge desired capped", typ: AverageValue, target: 1, values: []int64{math.MaxInt64}, cur: 1, lo: 1, hi: 100,
			wantRatio: math.MaxInt64, wantDesired: math.MaxInt32, wantReplicas: 100, wantLimit: "maxReplicas"},
		{name: "zero target", typ: AverageValue, target: 0, values: []int64{1000}, cur: 1, lo: 0, hi: 100, wantErr: ErrZeroTarget},
		{name: "no values", typ: AverageValue, target: 1000, values: nil, cur: 1, lo: 0, hi: 100, wantErr: ErrNoMetrics},
		{name: "zero replicas", typ: Value, target: 1000, values: []int64{1000}, cur: 0, lo: 0, hi: 100, wantErr: ErrScalingDisabled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ComputeHPA(tt.typ, tt.target, tt.values, tt.cur, tt.lo, tt.hi)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ComputeHPA error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ComputeHPA: %v", err)
			}
			if math.Abs(r.Ratio-tt.wantRatio) > 1e-9*max(1, tt.wantRatio) {
				t.Errorf("Ratio = %v, want %v", r.Ratio, tt.wantRatio)
			}
			if r.Desired != tt.wantDesired || r.Replicas != tt.wantReplicas || r.WithinTolerance != tt.wantTolerance || r.Limit != tt.wantLimit {
				t.Errorf("got desired %d replicas %d withinTolerance %v limit %q; want %d %d %v %q",
					r.Desired, r.Replicas, r.WithinTolerance, r.Limit, tt.wantDesired, tt.wantReplicas, tt.wantTolerance, tt.wantLimit)
			}
		})
	}
}

func TestFormula(t *testing.T) {
	tests := []struct {
		name                         string
		typ                          MetricType
		target, value                int64
		cur                          int32
		wantRatio, wantDesired, want string
	}{
		{name: "AverageValue", typ: AverageValue, target: 5000, value: 12400, cur: 2,
			wantRatio:   "(value / currentReplicas) / target = (12.4 / 2) / 5 = 1.24",
			wantDesired: "ceil(value / target) = ceil(12.4 / 5) = 3",
			want:        "|ratio − 1| > 0.1: takes desired 3"},
		{name: "Value", typ: Value, target: 10000, value: 10500, cur: 3,
			wantRatio:   "value / target = 10.5 / 10 = 1.05",
			wantDesired: "ceil(currentReplicas × ratio) = ceil(3 × 1.05) = 4",
			want:        "|ratio − 1| ≤ 0.1: within tolerance, keeps currentReplicas 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ComputeHPA(tt.typ, tt.target, []int64{tt.value}, tt.cur, 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			ratio, desired := r.Formula()
			if ratio != tt.wantRatio || desired != tt.wantDesired {
				t.Errorf("Formula() =\n%q\n%q\nwant\n%q\n%q", ratio, desired, tt.wantRatio, tt.wantDesired)
			}
			if got := r.Explain(); got != tt.want {
				t.Errorf("Explain() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name         string
		in           Input
		wantAction   Action
		wantKEDA     int32
		wantReplicas int32
		wantCooldown bool
		wantHPAFrom  int32 // 0: no HPA result expected
		wantHPAErr   error
		wantErr      string
	}{
		{name: "inactive at zero stays at zero",
			in:         Input{Type: AverageValue, TargetMilli: 1000, ValuesMilli: []int64{0}, CurrentReplicas: 0, MinReplicas: 0, MaxReplicas: 10},
			wantAction: ActionStayAtZero, wantKEDA: 0, wantReplicas: 0},
		{name: "inactive with replicas scales to zero after cooldown",
			in:         Input{Type: AverageValue, TargetMilli: 1000, ValuesMilli: []int64{0}, CurrentReplicas: 3, MinReplicas: 0, MaxReplicas: 10},
			wantAction: ActionScaleToZero, wantKEDA: 0, wantReplicas: 0, wantCooldown: true, wantHPAFrom: 3},
		{name: "active at zero scales to one then HPA",
			in:         Input{Type: AverageValue, TargetMilli: 5000, ValuesMilli: []int64{12000}, Active: true, CurrentReplicas: 0, MinReplicas: 0, MaxReplicas: 10},
			wantAction: ActionScaleFromZero, wantKEDA: 1, wantReplicas: 3, wantHPAFrom: 1},
		{name: "active at zero scales to min then HPA",
			in:         Input{Type: Value, TargetMilli: 5000, ValuesMilli: []int64{5000}, Active: true, CurrentReplicas: 0, MinReplicas: 2, MaxReplicas: 10},
			wantAction: ActionScaleFromZero, wantKEDA: 2, wantReplicas: 2, wantHPAFrom: 2},
		{name: "inactive below min scales to min",
			in:         Input{Type: AverageValue, TargetMilli: 1000, ValuesMilli: []int64{0}, CurrentReplicas: 0, MinReplicas: 2, MaxReplicas: 10},
			wantAction: ActionScaleToMin, wantKEDA: 2, wantReplicas: 2, wantHPAFrom: 2},
		{name: "active below min scales to min then HPA up",
			in:         Input{Type: AverageValue, TargetMilli: 1000, ValuesMilli: []int64{8000}, Active: true, CurrentReplicas: 1, MinReplicas: 2, MaxReplicas: 10},
			wantAction: ActionScaleToMin, wantKEDA: 2, wantReplicas: 8, wantHPAFrom: 2},
		{name: "inactive above positive min leaves HPA in control",
			in:         Input{Type: AverageValue, TargetMilli: 1000, ValuesMilli: []int64{0}, CurrentReplicas: 5, MinReplicas: 2, MaxReplicas: 10},
			wantAction: ActionHPA, wantKEDA: 5, wantReplicas: 2, wantHPAFrom: 5},
		{name: "active HPA in control",
			in:         Input{Type: Value, TargetMilli: 10000, ValuesMilli: []int64{25000}, Active: true, CurrentReplicas: 2, MinReplicas: 0, MaxReplicas: 100},
			wantAction: ActionHPA, wantKEDA: 2, wantReplicas: 5, wantHPAFrom: 2},
		{name: "active HPA clamped to max",
			in:         Input{Type: AverageValue, TargetMilli: 1000, ValuesMilli: []int64{1000000}, Active: true, CurrentReplicas: 2, MinReplicas: 0, MaxReplicas: 100},
			wantAction: ActionHPA, wantKEDA: 2, wantReplicas: 100, wantHPAFrom: 2},
		{name: "active with zero target: HPA cannot compute, keeps current",
			in:         Input{Type: AverageValue, TargetMilli: 0, ValuesMilli: []int64{1000}, Active: true, CurrentReplicas: 4, MinReplicas: 0, MaxReplicas: 100},
			wantAction: ActionHPA, wantKEDA: 4, wantReplicas: 4, wantHPAErr: ErrZeroTarget},
		{name: "active at zero without values: KEDA scales to one, HPA cannot compute",
			in:         Input{Type: AverageValue, TargetMilli: 1000, Active: true, CurrentReplicas: 0, MinReplicas: 0, MaxReplicas: 100},
			wantAction: ActionScaleFromZero, wantKEDA: 1, wantReplicas: 1, wantHPAErr: ErrNoMetrics},
		{name: "min above max", in: Input{Type: AverageValue, MinReplicas: 5, MaxReplicas: 4}, wantErr: "greater than maxReplicaCount"},
		{name: "max zero", in: Input{Type: AverageValue, MaxReplicas: 0}, wantErr: "at least 1"},
		{name: "negative current", in: Input{Type: AverageValue, CurrentReplicas: -1, MaxReplicas: 4}, wantErr: "negative"},
		{name: "bad type", in: Input{Type: "Utilization", MaxReplicas: 4}, wantErr: "unknown metric type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Decide(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Decide error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if d.Action != tt.wantAction || d.KEDAReplicas != tt.wantKEDA || d.Replicas != tt.wantReplicas || d.AfterCooldown != tt.wantCooldown {
				t.Errorf("Decide = action %q keda %d replicas %d cooldown %v; want %q %d %d %v",
					d.Action, d.KEDAReplicas, d.Replicas, d.AfterCooldown, tt.wantAction, tt.wantKEDA, tt.wantReplicas, tt.wantCooldown)
			}
			if !errors.Is(d.HPAErr, tt.wantHPAErr) {
				t.Errorf("HPAErr = %v, want %v", d.HPAErr, tt.wantHPAErr)
			}
			switch {
			case tt.wantHPAFrom == 0 && d.HPA != nil:
				t.Errorf("HPA = %+v, want none", *d.HPA)
			case tt.wantHPAFrom != 0 && (d.HPA == nil || d.HPA.CurrentReplicas != tt.wantHPAFrom):
				t.Errorf("HPA = %+v, want a computation from %d replicas", d.HPA, tt.wantHPAFrom)
			}
			if d.Reason == "" {
				t.Error("Reason is empty")
			}
		})
	}
}

func TestReplicas(t *testing.T) {
	for n, want := range map[int32]string{0: "0 replicas", 1: "1 replica", 2: "2 replicas", 100: "100 replicas"} {
		if got := Replicas(n); got != want {
			t.Errorf("Replicas(%d) = %q, want %q", n, got, want)
		}
	}
}
