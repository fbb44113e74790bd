package scaler

import (
	"context"
	"fmt"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
)

// limit is one of the service's bounds on what triggers make it hold.
type limit uint8

const (
	limitQuestions limit = iota
	limitMetadata
	limitNamespace
	limitWaiting
	limitStreams
	limitStreamsPerNamespace
)

// limitSpec is how a limit is named (its variable, in status messages,
// logs and metrics) and what a refusal by it says.
type limitSpec struct {
	variable string
	message  func(o *Options, ref string) string // ref: the clipped namespace of the caller
}

var limits = [...]limitSpec{
	limitQuestions: {"MAX_QUESTIONS", func(o *Options, ns string) string {
		return fmt.Sprintf("too many distinct questions held (%d, MAX_QUESTIONS): every one has a backend call in flight, and namespace %q holds its fair share of them; try again shortly", o.MaxQuestions, ns)
	}},
	limitMetadata: {"MAX_METADATA_BYTES", nil}, // refused by tooLarge, never by refuse
	limitNamespace: {"MAX_CALLS_PER_NAMESPACE", func(o *Options, ns string) string {
		return fmt.Sprintf("a backend call of namespace %q waited BACKEND_TIMEOUT (%v) for its turn: the backend answers too slowly for the calls asked (at once: %d per namespace, MAX_CALLS_PER_NAMESPACE; %d in all, MAX_BACKEND_CALLS); try again shortly",
			ns, o.BackendTimeout, o.MaxCallsPerNamespace, o.MaxBackendCalls)
	}},
	limitWaiting: {"MAX_WAITING_PER_NAMESPACE", func(o *Options, ns string) string {
		return fmt.Sprintf("too many backend calls of namespace %q waiting their turn (%d, MAX_WAITING_PER_NAMESPACE): other namespaces' calls go on; try again shortly",
			ns, o.MaxWaitingPerNamespace)
	}},
	limitStreams: {"MAX_PUSH_STREAMS", func(o *Options, ns string) string {
		return fmt.Sprintf("too many push streams open (%d, MAX_PUSH_STREAMS), and namespace %q holds its fair share of them: KEDA polls this ScaledObject meanwhile; try again later",
			o.MaxPushStreams, ns)
	}},
	limitStreamsPerNamespace: {"MAX_PUSH_STREAMS_PER_NAMESPACE", func(o *Options, ns string) string {
		return fmt.Sprintf("too many push streams of namespace %q (%d, MAX_PUSH_STREAMS_PER_NAMESPACE): KEDA polls this ScaledObject meanwhile",
			ns, o.MaxPushStreamsPerNamespace)
	}},
}

// String returns the limit's variable.
func (l limit) String() string { return limits[l].variable }

// refuse is the ResourceExhausted status of a limit reached, naming the
// limit and its variable. It counts the refusal and logs it, at most once a
// minute per limit: a hostile trigger repeats it at will.
func (s *Service) refuse(ctx context.Context, l limit) error {
	msg := limits[l].message(&s.opts, metadata.Clip(refOf(ctx).GetNamespace()))
	s.metrics.LimitRefusals.WithLabelValues(l.String()).Inc()
	s.limitLog.Log(ctx, s.logger(ctx), slog.LevelWarn, l.String(), "limit reached", slog.String("limit", l.String()), slog.String("error", msg))
	return status.Error(codes.ResourceExhausted, msg)
}

// tooLarge is the InvalidArgument status of metadata over MaxMetadataBytes
// (total bytes), naming its largest entry; it counts and logs the refusal.
func (s *Service) tooLarge(ctx context.Context, md map[string]string, total int) error {
	largest, largestSize := "", -1
	for k, v := range md {
		if len(k)+len(v) > largestSize {
			largest, largestSize = k, len(k)+len(v)
		}
	}
	l := limitMetadata.String()
	s.metrics.LimitRefusals.WithLabelValues(l).Inc()
	err := status.Errorf(codes.InvalidArgument,
		"trigger metadata is %d bytes (keys and values), over the limit of %d (%s); the largest entry is %q (%d bytes)",
		total, s.opts.MaxMetadataBytes, l, metadata.Clip(largest), largestSize)
	s.limitLog.Log(ctx, s.logger(ctx), slog.LevelWarn, l, "trigger metadata rejected",
		slog.String("limit", l), slog.String("error", status.Convert(err).Message()))
	return err
}
