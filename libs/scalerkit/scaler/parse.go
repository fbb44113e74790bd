package scaler

import (
	"context"
	"log/slog"
	"maps"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// WarningHeader is the gRPC header metadata key that carries a trigger's
// warnings (an unknown metadata key, say), one value per warning. KEDA
// ignores it; scalerctl prints it.
const WarningHeader = "kedascalers-warning"

// parse returns the Trigger a request's metadata describes, and a context
// that carries the ScaledObject for the logs. Metadata seen before is not
// parsed again (see triggerMemo); its warnings and rejection are still
// reported on every call.
func (s *Service) parse(ctx context.Context, ref *pb.ScaledObjectRef) (*parsed, context.Context, error) {
	ctx = context.WithValue(ctx, refKey{}, ref)
	md := ref.GetScalerMetadata()
	total, hash := s.triggers.measure(md)
	if total > s.opts.MaxMetadataBytes {
		return nil, ctx, s.tooLarge(ctx, md, total)
	}
	t := s.triggers.get(hash, md)
	if t == nil {
		t = s.parseNew(md)
		t.size = total + len(t.valueKey) + len(t.targetKey)
		s.triggers.put(hash, t)
	}
	if t.err != nil {
		// The tenant's mistake, repeated at every poll: once per failEvery.
		st := status.Convert(t.err)
		s.failLog.Log(ctx, s.logger(ctx), slog.LevelWarn, objectKey(ref)+"|metadata|"+st.Code().String(),
			"trigger metadata rejected", slog.String("error", st.Message()))
		return nil, ctx, t.err
	}
	s.warn(ctx, ref, t.warnings)
	return t, ctx, nil
}

// parseNew parses md with the backend, checks its keys and derives what
// every call of the trigger needs. It keeps a copy of md: the caller owns
// its map and may reuse it.
func (s *Service) parseNew(md map[string]string) *parsed {
	md = maps.Clone(md)
	p := metadata.NewParser(md)
	t, err := s.backend.Parse(p)
	if err == nil {
		err = t.Validate()
	}
	warnings, keyErr := p.CheckKeys()
	if keyErr != nil {
		// A misspelt key explains a failure better than what it caused
		// (a required key missing), and must fail what it did not (a
		// default silently used in its place).
		err = keyErr
	}
	if err != nil {
		st, ok := status.FromError(err)
		if !ok {
			st = status.New(codes.InvalidArgument, err.Error())
		}
		return &parsed{md: md, err: st.Err()}
	}
	pt := &parsed{Trigger: t, md: md, warnings: warnings, valueKey: kindValue.key(t.Probe)}
	if t.TargetProbe != nil {
		pt.targetKey = kindTarget.key(t.TargetProbe)
	}
	return pt
}

// warn sends a trigger's warnings to the client as header metadata and to
// the log, at most once per warnEvery for one ScaledObject.
func (s *Service) warn(ctx context.Context, ref *pb.ScaledObjectRef, warnings []string) {
	if len(warnings) == 0 {
		return
	}
	// Fails only outside a gRPC call (a test calling the Service itself),
	// where there is no header to set.
	_ = grpc.SetHeader(ctx, grpcmd.MD{WarningHeader: warnings})
	s.warnLog.Log(ctx, s.logger(ctx), slog.LevelInfo, objectKey(ref),
		"trigger metadata has warnings", slog.Any("warnings", warnings))
}
