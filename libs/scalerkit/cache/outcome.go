package cache

// Outcome says how a Get was answered.
type Outcome int

const (
	// Hit was answered from a value kept within its TTL.
	Hit Outcome = iota
	// Shared joined a call already in flight for the same key.
	Shared
	// Miss started a new call.
	Miss
)

// String returns "hit", "shared" or "miss".
func (o Outcome) String() string {
	switch o {
	case Hit:
		return "hit"
	case Shared:
		return "shared"
	default:
		return "miss"
	}
}
