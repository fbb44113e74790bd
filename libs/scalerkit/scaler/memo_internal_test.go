package scaler

import (
	"maps"
	"testing"
)

func TestTriggerMemo(t *testing.T) {
	var evicted, held int
	m := newTriggerMemo(2, func() { evicted++ }, func(n int) { held = n })
	a := map[string]string{"k": "v", "x": "y"}
	aSwapped := map[string]string{"x": "y", "k": "v"}
	b := map[string]string{"k": "y", "x": "v"} // the same keys and values, paired otherwise

	sizeA, hashA := m.measure(a)
	if _, h := m.measure(aSwapped); h != hashA {
		t.Error("the hash depends on the order of the entries")
	}
	if sizeA != 4 {
		t.Errorf("size = %d, want 4", sizeA)
	}
	if _, h := m.measure(b); h == hashA {
		t.Error("entries paired otherwise hash the same")
	}

	pa := &parsed{md: a}
	m.put(hashA, pa)
	if got := m.get(hashA, aSwapped); got != pa {
		t.Errorf("get of equal metadata = %v, want the kept parse", got)
	}
	if got := m.get(hashA, b); got != nil {
		t.Error("a hash match with other metadata answered: it must be checked")
	}

	for i, md := range []map[string]string{{"n": "1"}, {"n": "2"}, {"n": "3"}} {
		_, h := m.measure(md)
		m.put(h, &parsed{md: maps.Clone(md)})
		if held > 2 {
			t.Fatalf("after put %d: held %d, want <= 2", i, held)
		}
		if got := m.get(h, md); got == nil {
			t.Fatalf("after put %d: the newest parse was dropped", i)
		}
	}
	if held != 2 || evicted != 2 {
		t.Errorf("held %d, evicted %d; want 2 and 2", held, evicted)
	}
}
