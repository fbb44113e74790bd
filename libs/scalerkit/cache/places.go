package cache

import (
	"github.com/kedascalers/kedascalers/libs/scalerkit/share"
)

// flight is a call in flight: its place (nil without MaxEntries), which
// cancels the call once taken for another namespace, until stop undoes
// that.
type flight struct {
	place *share.Place
	stop  func() bool
}

// lost reports whether pl was taken for another namespace.
func lost(pl *share.Place) bool {
	select {
	case <-pl.Lost():
		return true
	default:
		return false
	}
}
