package scaler

import (
	"context"

	"github.com/kedascalers/kedascalers/libs/scalerkit/stream"
)

// source adapts a Probe to a push feed that reads through the service's
// cache, so feeds and polls share readings.
type source struct {
	s    *Service
	kind string
	p    Probe
}

func (src source) Key() string { return src.kind + ":" + src.p.Key() }

func (src source) Read(ctx context.Context) (Reading, error) {
	return src.s.read(ctx, src.kind, src.p)
}

// watchingSource is a source whose probe can signal changes. A signal drops
// the cached reading, so the feed's next read asks the backend.
type watchingSource struct {
	source
	w stream.Watcher
}

func (src watchingSource) Watch(ctx context.Context, changed func()) error {
	return src.w.Watch(ctx, func() {
		src.s.cache.Forget(src.Key())
		changed()
	})
}

func (s *Service) source(kind string, p Probe) stream.Source[Reading] {
	src := source{s: s, kind: kind, p: p}
	if w, ok := p.(stream.Watcher); ok {
		return watchingSource{source: src, w: w}
	}
	return src
}
