package scaler

import "testing"

// TestCallShares: MAX_BACKEND_CALLS is divided between value and target
// reads, the two adding up to it, and one namespace runs at most half of
// a kind's places (at least 1).
func TestCallShares(t *testing.T) {
	tests := []struct {
		total, perNS                         int
		values, targets, valuesNS, targetsNS int
	}{
		{total: 10, perNS: 2, values: 8, targets: 2, valuesNS: 2, targetsNS: 1},
		{total: 2, perNS: 2, values: 1, targets: 1, valuesNS: 1, targetsNS: 1},
		{total: 5, perNS: 4, values: 4, targets: 1, valuesNS: 2, targetsNS: 1},
		{total: 100, perNS: 8, values: 80, targets: 20, valuesNS: 8, targetsNS: 8},
		{total: 100, perNS: 1, values: 80, targets: 20, valuesNS: 1, targetsNS: 1},
	}
	for _, tc := range tests {
		values, targets := callShares(tc.total)
		o := Options{MaxCallsPerNamespace: tc.perNS}
		if values != tc.values || targets != tc.targets || perNamespace(o, values) != tc.valuesNS || perNamespace(o, targets) != tc.targetsNS {
			t.Errorf("MAX_BACKEND_CALLS=%d, MAX_CALLS_PER_NAMESPACE=%d: values %d (%d per namespace), targets %d (%d); want %d (%d), %d (%d)",
				tc.total, tc.perNS, values, perNamespace(o, values), targets, perNamespace(o, targets), tc.values, tc.valuesNS, tc.targets, tc.targetsNS)
		}
	}
}
