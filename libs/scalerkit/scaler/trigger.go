package scaler

import (
	"context"
	"fmt"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/stream"
)

// Backend is what a scaler's backend provides: it turns a trigger's
// metadata into a Trigger. Parse is called once per distinct metadata and
// its result kept (bounded by MaxQuestions), so it must depend on the
// metadata alone and do no I/O; connections belong to the backend, built
// once.
// A service states that its type is one with
//
//	var _ scaler.Backend = (*Backend)(nil)
type Backend interface {
	// Parse reads the trigger's metadata through p and returns the trigger
	// it describes. A bad key is reported as a *metadata.Error
	// (InvalidArgument naming the key). Every key a backend reads must be
	// read through p: keys p was never asked about are checked for typos
	// afterwards (metadata.Parser.CheckKeys).
	Parse(p *metadata.Parser) (*Trigger, error)
	// Close releases the backend's connections; scalerkit.Run calls it
	// once the server has stopped.
	Close() error
}

// Trigger is one parsed ScaledObject trigger.
type Trigger struct {
	// MetricName is the metric's name in GetMetricSpec and GetMetrics:
	// lowercase and stable (KEDA prefixes it with s<index>- for the HPA).
	MetricName string
	// Target is the value one replica should handle. With a TargetProbe it
	// is the fallback served until the probe's first successful reading.
	Target float64
	// TargetProbe, when set, reads the target from the backend. It is read
	// in the background, never on GetMetricSpec's request path.
	TargetProbe Probe
	// Activation is the activation threshold: the trigger is active when the
	// value is greater than it (KEDA's convention), unless the reading's
	// Switch decides.
	Activation float64
	// Probe reads the metric value.
	Probe Probe
	// OnError says what a failed read means.
	OnError ErrorPolicy
}

// Probe reads one value from a backend.
type Probe interface {
	// Key identifies the question asked: probes with equal keys share one
	// backend call, cached reading and push feed, so the key must cover
	// everything the reading depends on.
	Key() string
	// Read asks the backend. ctx carries the backend timeout.
	Read(ctx context.Context) (Reading, error)
	// Watch calls changed once its watch is in place (the feed's first
	// read came before it: a change in between was not seen), then
	// whenever the reading may have changed (the backend's change
	// notifications), until ctx ends or watching
	// fails, so that push streams hear of a change before their next
	// interval. It returns ctx.Err() once ctx ends, or the reason
	// watching failed (the feed polls and tries again later). A probe
	// with no change signals embeds NoChanges.
	Watch(ctx context.Context, changed func()) error
}

// NoChanges is embedded by a Probe that has no change signals: its Watch
// returns ErrNoChanges at once, and push feeds of the probe poll only.
type NoChanges = stream.NoChanges

// ErrNoChanges is what the Watch of a probe without change signals
// returns.
var ErrNoChanges = stream.ErrNoChanges

// Reading is what a Probe read.
type Reading struct {
	// Value is the metric value (or the target, for a target probe).
	Value float64
	// Switch, when not SwitchUnset, decides activity in place of the
	// activation threshold.
	Switch Switch
	// Note, when set, is a remark on a value that is right but may not be
	// what the trigger's author meant (the key read does not exist, say):
	// GetMetrics sends it to the caller as a warning (WarningHeader),
	// which scalerctl prints and KEDA ignores.
	Note string
}

// Switch is an activity decided by the backend itself, e.g. a key an
// application sets to say "on".
type Switch int

const (
	// SwitchUnset leaves activity to the activation threshold.
	SwitchUnset Switch = iota
	// SwitchOn makes the trigger active.
	SwitchOn
	// SwitchOff makes the trigger inactive.
	SwitchOff
)

// Active reports whether r makes t active.
func (t *Trigger) Active(r Reading) bool {
	switch r.Switch {
	case SwitchOn:
		return true
	case SwitchOff:
		return false
	}
	return r.Value > t.Activation
}

// ErrorPolicy says what a failed backend read means.
type ErrorPolicy int

const (
	// ErrorFail reports the failure (Unavailable), so that KEDA keeps the
	// replicas or applies the ScaledObject's fallback. The default.
	ErrorFail ErrorPolicy = iota
	// ErrorInactive reports value 0 and inactive, so that the workload falls
	// to minReplicaCount.
	ErrorInactive
)

// ParseOnError reads the metadata key "onError": "error" (the default) or
// "inactive".
func ParseOnError(p *metadata.Parser) ErrorPolicy {
	if p.OneOf("onError", "error", "error", "inactive") == "inactive" {
		return ErrorInactive
	}
	return ErrorFail
}

// maxMetricName is the longest metric name accepted.
const maxMetricName = 192

// validMetricName reports whether name is 1 to maxMetricName lowercase
// letters, digits, '_', '.' or '-', starting and ending with a letter or
// digit.
func validMetricName(name string) bool {
	if len(name) == 0 || len(name) > maxMetricName {
		return false
	}
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
	for i := range len(name) {
		c := name[i]
		if !alnum(c) && ((i == 0 || i == len(name)-1) || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return true
}

// ParseMetricName reads the metadata key "metricName", def when absent. A
// name must be lowercase letters, digits, '_', '.' or '-', starting and
// ending with a letter or digit: the HPA and KEDA need it stable.
func ParseMetricName(p *metadata.Parser, def string) string {
	name := p.String("metricName", def)
	if !validMetricName(name) {
		p.Fail(&metadata.Error{Key: "metricName", Value: name,
			Want: "lowercase letters, digits, '_', '.' or '-', starting and ending with a letter or digit"})
		return def
	}
	return name
}

// Validate reports a trigger a backend built wrongly: a programming error,
// not a user's.
func (t *Trigger) Validate() error {
	switch {
	case t.Probe == nil:
		return fmt.Errorf("trigger %q has no probe", t.MetricName)
	case !(t.Target > 0):
		return fmt.Errorf("trigger %q has target %v, want > 0", t.MetricName, t.Target)
	case t.MetricName == "":
		return fmt.Errorf("trigger has no metric name")
	}
	return nil
}
