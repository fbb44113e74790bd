package hpa

import "fmt"

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
