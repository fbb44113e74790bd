package scaler

import (
	"hash/maphash"
	"maps"
	"sync"
)

// parsed is what one distinct trigger metadata parses to, kept so that a
// poll parses nothing: the Trigger (nil when rejected) with the cache keys
// of its probes, its warnings, or the status that rejects it. It is shared
// by concurrent calls and never changed.
type parsed struct {
	*Trigger
	valueKey  string // kindValue.key(Probe)
	targetKey string // kindTarget.key(TargetProbe), when there is one
	warnings  []string
	err       error

	md   map[string]string // a copy of what it was parsed from: a hash match is checked against it
	size int               // bytes of md and of the cache keys, counted against the memo's byte bound
}

// triggerMemo keeps the parse of up to max distinct metadata, of at most
// maxBytes (their keys and values, and their cache keys) in all, by a hash
// of their entries; a new one at a bound drops arbitrary ones. A
// Backend's Parse depends on the metadata alone, so that a kept parse
// answers as a new one would.
type triggerMemo struct {
	seed          maphash.Seed
	max, maxBytes int
	evicted       func()
	held          func(n int)

	byHash sync.Map // uint64 -> *parsed; read without a lock by every call

	mu    sync.Mutex // serialises put
	n     int        // entries in byHash
	bytes int        // their sizes
}

func newTriggerMemo(max, maxBytes int, evicted func(), held func(int)) *triggerMemo {
	return &triggerMemo{seed: maphash.MakeSeed(), max: max, maxBytes: maxBytes, evicted: evicted, held: held}
}

// measure returns md's size (keys and values, in bytes) and a hash of it
// that does not depend on the order of its entries, in one pass.
func (m *triggerMemo) measure(md map[string]string) (size int, hash uint64) {
	for k, v := range md {
		size += len(k) + len(v)
		hk, hv := maphash.String(m.seed, k), maphash.String(m.seed, v)
		hash += hk ^ (hv*0x9e3779b97f4a7c15 + hv>>29) // commutative sum of mixed entries
	}
	return size, hash
}

// get returns the parse of md, or nil.
func (m *triggerMemo) get(hash uint64, md map[string]string) *parsed {
	v, ok := m.byHash.Load(hash)
	if !ok {
		return nil
	}
	if p := v.(*parsed); maps.Equal(p.md, md) {
		return p
	}
	return nil
}

// put keeps p under hash, in place of whatever had the same hash.
func (m *triggerMemo) put(hash uint64, p *parsed) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bytes += p.size
	if old, loaded := m.byHash.Swap(hash, p); loaded {
		m.bytes -= old.(*parsed).size
	} else {
		m.n++
	}
	if m.n > m.max || m.bytes > m.maxBytes {
		m.byHash.Range(func(h, v any) bool { // a miss only: arbitrary is good enough
			if h.(uint64) == hash {
				return true
			}
			m.byHash.Delete(h)
			m.n--
			m.bytes -= v.(*parsed).size
			m.evicted()
			return m.n > m.max || m.bytes > m.maxBytes
		})
	}
	m.held(m.n)
}
