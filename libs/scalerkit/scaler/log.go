package scaler

import (
	"context"
	"log/slog"
	"time"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// How often the warnings of one ScaledObject are logged, how often one
// kind of failed read of one ScaledObject is, and how many ScaledObjects
// the rate limits remember.
const (
	warnEvery   = time.Minute
	failEvery   = 10 * time.Second
	warnMaxKeys = 4096
)

type refKey struct{}

// logger returns the service logger with the ScaledObject carried by ctx.
func (s *Service) logger(ctx context.Context) *slog.Logger {
	ref := refOf(ctx)
	if ref == nil {
		return s.log
	}
	// Clipped: any client may send a name, not only KEDA.
	return s.log.With(slog.Group("scaledObject",
		slog.String("namespace", metadata.Clip(ref.GetNamespace())), slog.String("name", metadata.Clip(ref.GetName()))))
}

// objectKey names the ScaledObject of ref in the rate limits of the logs.
func objectKey(ref *pb.ScaledObjectRef) string {
	return metadata.Clip(ref.GetNamespace()) + "/" + metadata.Clip(ref.GetName())
}

// refOf returns the ScaledObject ctx carries (see parse), or nil.
func refOf(ctx context.Context) *pb.ScaledObjectRef {
	ref, _ := ctx.Value(refKey{}).(*pb.ScaledObjectRef)
	return ref
}

// Namespace returns the namespace of the ScaledObject on whose behalf a
// Probe's Read or Watch runs: the tenant that pays for it in the
// backend's fair shares (see package share). It is "" outside one.
func Namespace(ctx context.Context) string { return refOf(ctx).GetNamespace() }
