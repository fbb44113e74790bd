package scaler

import (
	"context"
	"log/slog"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/stream"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// source adapts a Probe to a push feed that reads through the service's
// cache, so feeds and polls share readings and in-flight calls.
type source struct {
	s    *Service
	kind kind
	key  string // kind.key(p)
	p    Probe
	ref  *pb.ScaledObjectRef // the ScaledObject that asked: its namespace pays for the feed's reads
}

func (src source) Key() string { return src.key }

// Namespace is the namespace the feed's places are charged to: that of
// the ScaledObject that started it.
func (src source) Namespace() string { return src.ref.GetNamespace() }

// noWatch logs, at most once a minute per namespace, that a push feed
// polls for want of a watch place (MAX_FEEDS).
func (s *Service) noWatch(key, namespace string) {
	ns := metadata.Clip(namespace)
	s.warnLog.Log(context.Background(), s.log, slog.LevelWarn, "nowatch|"+ns,
		"push feed polls every PUSH_INTERVAL: its namespace holds its share of the watched feeds",
		slog.Group("scaledObject", slog.String("namespace", ns)),
		slog.String("limit", "MAX_FEEDS"), slog.Int("places", s.opts.MaxFeeds), slog.String("probe", metadata.Clip(key)))
}

// Read asks the backend afresh: a feed's reading must not be older than
// its interval, whatever CACHE_TTL is. The reading is kept, so polls in
// between share it, and a call already in flight is joined.
func (src source) Read(ctx context.Context) (Reading, error) {
	src.s.cache.Forget(src.Key())
	return src.s.read(context.WithValue(ctx, refKey{}, src.ref), src.kind, src.key, src.p)
}

// Watch watches the probe on behalf of the ScaledObject that started the
// feed (see Namespace). A signal drops the cached reading, so that the
// feed's next read asks the backend.
func (src source) Watch(ctx context.Context, changed func()) error {
	return src.p.Watch(context.WithValue(ctx, refKey{}, src.ref), func() {
		src.s.cache.Forget(src.Key())
		changed()
	})
}

// source returns the feed source of p read as k, whose key is k.key(p).
// The feed it starts, if any, reads on behalf of the ScaledObject ctx
// carries (see calls).
func (s *Service) source(ctx context.Context, k kind, key string, p Probe) stream.Source[Reading] {
	return source{s: s, kind: k, key: key, p: p, ref: refOf(ctx)}
}
