package cache

import (
	"context"

	"github.com/kedascalers/kedascalers/libs/scalerkit/share"
)

// flight is a call in flight: its place (nil without MaxEntries) and
// what cancels it when the place is taken.
type flight struct {
	place  *share.Place
	cancel context.CancelFunc
}

// cancelLostLocked cancels the calls whose place was just taken. It scans
// the calls in flight, but runs only when a place may have been taken:
// at the bound, with every key held in flight.
func (g *Group[V]) cancelLostLocked() {
	for _, f := range g.inflight {
		if f.cancel != nil && f.place != nil && lost(f.place) {
			f.cancel()
			f.cancel = nil // once
		}
	}
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
