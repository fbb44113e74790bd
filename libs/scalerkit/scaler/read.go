package scaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/cache"
	"github.com/kedascalers/kedascalers/libs/scalerkit/fault"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metrics"
	"github.com/kedascalers/kedascalers/libs/scalerkit/share"
)

// kind is what a read asks for: a trigger's value or its target. Each has
// its own cache keys, feeds, places per namespace and metric label.
type kind uint8

const (
	kindValue kind = iota
	kindTarget
)

// String returns "value" or "target", as in messages and metric labels.
func (k kind) String() string {
	if k == kindTarget {
		return "target"
	}
	return "value"
}

// key is the cache and feed key of a probe read as k.
func (k kind) key(p Probe) string { return k.String() + ":" + p.Key() }

// readValue reads t's value through the cache and applies its error
// policy.
func (s *Service) readValue(ctx context.Context, t *parsed) (Reading, error) {
	r, err := s.read(ctx, kindValue, t.valueKey, t.Probe)
	if err != nil && t.OnError == ErrorInactive && ctx.Err() == nil && backendFailure(err) {
		return Reading{Switch: SwitchOff}, nil
	}
	return r, err
}

// target returns t's current target, from memory: the newest reading of
// its target probe, or t.Target until there is one. When no reader can
// start for the probe (its namespace holds its share of
// MAX_TARGET_READERS), it is t.Target too, the trigger's own fallback,
// with a note saying so: a refusal would leave KEDA without an HPA, and
// the reader starts on a later call once a place frees.
func (s *Service) target(ctx context.Context, t *parsed) (target float64, note string) {
	if t.TargetProbe == nil {
		return t.Target, ""
	}
	r, ok, err := s.targets.Latest(s.source(ctx, kindTarget, t.targetKey, t.TargetProbe))
	switch {
	case err != nil:
		return t.Target, s.noReader(ctx, t)
	case ok:
		return r.Value, ""
	}
	return t.Target, ""
}

// noReader logs, at most once a minute per namespace, that t's target is
// its static one for want of a reader place, and returns the note that
// says so to the caller.
func (s *Service) noReader(ctx context.Context, t *parsed) string {
	ns := metadata.Clip(refOf(ctx).GetNamespace())
	note := fmt.Sprintf("target %s is the trigger's static target: namespace %q holds its share of the background target readers (MAX_TARGET_READERS=%d); the target read from the backend follows once a reader place frees",
		strconv.FormatFloat(t.Target, 'g', -1, 64), ns, s.opts.MaxTargetReaders)
	s.warnLog.Log(ctx, s.logger(ctx), slog.LevelWarn, "noreader|"+ns, "static target: no target reader place",
		slog.String("limit", "MAX_TARGET_READERS"), slog.String("probe", metadata.Clip(t.TargetProbe.Key())))
	return note
}

// read asks p (cache key key, see kind.key) through the cache: one backend
// call per key and TTL.
func (s *Service) read(ctx context.Context, k kind, key string, p Probe) (Reading, error) {
	if r, ok := s.cache.Hit(key); ok {
		return r, nil // no closure to build for a hit
	}
	r, err := s.cache.Get(ctx, key, func(ctx context.Context) (Reading, error) {
		return s.fetch(ctx, k, p)
	})
	switch {
	case err == nil:
		return r, nil
	case errors.Is(err, cache.ErrFull):
		return r, s.refuse(ctx, limitQuestions)
	case ctx.Err() != nil:
		// The caller went away; the shared call goes on for the others.
		return r, status.FromContextError(ctx.Err()).Err()
	case errors.Is(err, cache.ErrClosed):
		return r, status.Errorf(codes.Unavailable, "reading %s: the scaler is stopping", k)
	}
	return r, err // fetch's status
}

// fetch is one backend call: timed, checked, and the one place where a
// backend panic is recovered, a read error becomes the gRPC status KEDA
// gets, and the failure is logged and counted. ctx is the cache's: bounded
// by BACKEND_TIMEOUT, and carrying the ScaledObject of the first caller.
func (s *Service) fetch(ctx context.Context, k kind, p Probe) (r Reading, err error) {
	start := time.Now()
	defer func() {
		if v := recover(); v != nil {
			err = status.Errorf(codes.Internal, "reading %s: the backend panicked: %v", k, v)
			s.logger(ctx).Error("backend panicked", slog.String("kind", k.String()), slog.String("probe", metadata.Clip(p.Key())),
				slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
		} else if err != nil {
			err = s.statusOf(ctx, k, err)
			if !errors.Is(ctx.Err(), context.Canceled) { // cancelled: the shutdown's hard stop, no news
				// Once per failEvery for one ScaledObject, kind and code: a
				// trigger polled in a loop, or an outage, must not log a
				// line per call.
				key := objectKey(refOf(ctx)) + "|" + k.String() + "|" + status.Code(err).String()
				s.failLog.Log(ctx, s.logger(ctx), fault.Level(err), key, "backend read failed",
					slog.String("kind", k.String()), slog.String("probe", metadata.Clip(p.Key())),
					slog.Duration("elapsed", time.Since(start)), slog.Any("error", err))
			}
		}
		s.metrics.BackendRequests.WithLabelValues(k.String(), metrics.Outcome(err)).Observe(time.Since(start).Seconds())
	}()
	release, err := s.calls.of(k).Acquire(ctx, refOf(ctx).GetNamespace())
	if err != nil {
		switch {
		case errors.Is(err, share.ErrQueueFull):
			return r, s.refuse(ctx, limitWaiting)
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			return r, s.refuse(ctx, limitNamespace)
		}
		return r, err
	}
	defer release()
	r, err = p.Read(ctx)
	if err == nil {
		err = checkReading(k, r)
	}
	return r, err
}
