package scaler

import (
	"github.com/kedascalers/kedascalers/libs/scalerkit/metrics"
	"github.com/kedascalers/kedascalers/libs/scalerkit/share"
)

// calls bounds the backend calls in flight: MAX_BACKEND_CALLS at once in
// all, at most MAX_CALLS_PER_NAMESPACE of one namespace, and at most
// MAX_WAITING_PER_NAMESPACE of one namespace waiting. Value and target
// reads have queues of their own, as a backend may have pools of its own
// for them: a slow target read never holds up a value read. Namespaces
// waiting take turns (share.Queue), so that one namespace's burst waits
// behind its own calls, never in front of another namespace's. Hits and
// calls joined in flight take no place: only a call that reaches the
// backend does.
type calls struct {
	value, target *share.Queue
}

// callShares divides MAX_BACKEND_CALLS (at least 2) between value and
// target reads: a fifth, at least 1, for targets (read in the background,
// each every PUSH_INTERVAL), the rest for values.
func callShares(total int) (values, targets int) {
	targets = max(total/5, 1)
	return max(total-targets, 1), targets
}

// perNamespace is what one namespace may run of a queue of capacity
// places: MAX_CALLS_PER_NAMESPACE, and at most half of them (at least 1),
// so that one namespace's slow calls never hold every place.
func perNamespace(o Options, capacity int) int {
	return max(min(o.MaxCallsPerNamespace, capacity/2), 1)
}

func newCalls(o Options, m *metrics.Metrics) *calls {
	values, targets := callShares(o.MaxBackendCalls)
	return &calls{
		value: share.NewQueueWith(values, perNamespace(o, values), o.MaxWaitingPerNamespace,
			m.Queued("backend_calls", values)),
		target: share.NewQueueWith(targets, perNamespace(o, targets), o.MaxWaitingPerNamespace,
			m.Queued("target_calls", targets)),
	}
}

// of returns the queue of k's reads.
func (c *calls) of(k kind) *share.Queue {
	if k == kindTarget {
		return c.target
	}
	return c.value
}
