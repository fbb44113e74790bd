package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

const watchSynopsis = `Opens StreamIsActive and StreamMetricSpec concurrently, as KEDA does for an
external-push trigger, and prints every message with an RFC3339Nano timestamp
(UTC) and the stream's name, until --duration has elapsed (exit 0) or Ctrl-C
(exit 0). A stream the scaler ends cleanly is reopened after 2 s, as KEDA
does. StreamMetricSpec answering Unimplemented is reported and not fatal
(KEDA then stops watching it and keeps the spec of GetMetricSpec): a
kedascalers scaler sends a static target once, then ends its stream so,
reported as "static target, not streamed"; any other stream error prints the
gRPC status to stderr and exits 1. The scaler's warnings about the trigger
(kedascalers-warning, an unknown metadata key say) are printed once each, as
"warning:" lines.
`

// Stream names, as printed.
const (
	streamIsActive   = "StreamIsActive"
	streamMetricSpec = "StreamMetricSpec"
)

// staticTargetPrefix starts the Unimplemented status with which a
// kedascalers scaler ends the StreamMetricSpec of a static target, after
// sending it (scaler.StaticTargetMessage); staticTargetNote reports it.
const (
	staticTargetPrefix = "static target"
	staticTargetNote   = "static target, not streamed: KEDA keeps this spec (GetMetricSpec answers it)"
)

// Event kinds of watch's output.
const (
	eventMessage       = "message"
	eventEnd           = "end"
	eventUnimplemented = "unimplemented"
	eventStatic        = "static"
	eventWarning       = "warning"
)

// watchEvent is one line of watch's output.
type watchEvent struct {
	Time        string      `json:"time"`
	Stream      string      `json:"stream"`
	Event       string      `json:"event"`
	Result      *bool       `json:"result,omitempty"`
	MetricSpecs *[]specJSON `json:"metricSpecs,omitempty"`
	Status      string      `json:"status,omitempty"`
	Message     string      `json:"message,omitempty"`

	// warnings are the scaler's warnings about the trigger, from the
	// header of a stream's first message: follow sends each as an event
	// of its own.
	warnings []string
}

func (a *app) watch(ctx context.Context, args []string) int {
	var f commonFlags
	var duration time.Duration
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	f.register(fs)
	fs.DurationVar(&duration, "duration", 0, "stop after this long and exit 0 (0: until Ctrl-C)")
	if code, done := a.parse(fs, args, watchSynopsis); done {
		return code
	}
	if duration < 0 {
		return a.usageErr("watch", fmt.Errorf("--duration %v is negative", duration))
	}
	sc, err := a.connect(&f)
	if err != nil {
		return a.usageErr("watch", err)
	}
	defer sc.conn.Close()
	client, ref := sc.client, sc.ref

	// A timer, not a context deadline: KEDA sends no deadline on its streams
	// (a deadline would travel to the scaler as grpc-timeout), and the
	// scaler's copy of a deadline could end a stream with DeadlineExceeded
	// just before ours expires.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if duration > 0 {
		timer := time.AfterFunc(duration, cancel)
		defer timer.Stop()
	}

	events := make(chan watchEvent)
	done := make(chan error, 2)
	go func() {
		done <- a.follow(ctx, streamIsActive, false, events, streamEvents(func(ctx context.Context) (grpc.ServerStreamingClient[pb.IsActiveResponse], error) {
			return client.StreamIsActive(ctx, ref)
		}, func(m *pb.IsActiveResponse) watchEvent {
			r := m.GetResult()
			return watchEvent{Result: &r}
		}))
	}()
	go func() {
		done <- a.follow(ctx, streamMetricSpec, true, events, streamEvents(func(ctx context.Context) (grpc.ServerStreamingClient[pb.GetMetricSpecResponse], error) {
			return client.StreamMetricSpec(ctx, ref)
		}, func(m *pb.GetMetricSpecResponse) watchEvent {
			specs := make([]specJSON, 0, len(m.GetMetricSpecs()))
			for _, sp := range m.GetMetricSpecs() {
				specs = append(specs, specFromProto(sp, 0))
			}
			return watchEvent{MetricSpecs: &specs}
		}))
	}()

	var failed error
	warned := map[string]bool{} // each warning once, though both streams send it
	for running := 2; running > 0; {
		select {
		case ev := <-events:
			if ev.Event == eventWarning {
				if warned[ev.Message] {
					continue
				}
				warned[ev.Message] = true
			}
			a.printEvent(ev, f.json)
		case err := <-done:
			running--
			if err != nil && failed == nil {
				failed = err
				cancel()
			}
		}
	}
	if failed != nil {
		var se *streamError
		if errors.As(failed, &se) {
			return a.rpcFailed(se.stream, se.err)
		}
		fmt.Fprintf(a.stderr, "scalerctl: %v\n", failed)
		return ExitFailure
	}
	return ExitOK
}

// streamEvents opens a stream with open and reads it as watch events,
// each message made one by event, with the warnings of the stream's
// header.
func streamEvents[M any](open func(context.Context) (grpc.ServerStreamingClient[M], error), event func(*M) watchEvent) func(context.Context) (func() (watchEvent, error), error) {
	return func(ctx context.Context) (func() (watchEvent, error), error) {
		s, err := open(ctx)
		if err != nil {
			return nil, err
		}
		return func() (watchEvent, error) {
			m, err := s.Recv()
			if err != nil {
				return watchEvent{}, err
			}
			ev := event(m)
			ev.warnings = headerWarnings(s)
			return ev, nil
		}, nil
	}
}

// headerWarnings returns the scaler's warnings from the header of s. A
// stream's header comes with its first message, so after a Recv that
// succeeded it is there at once.
func headerWarnings(s grpc.ClientStream) []string {
	md, err := s.Header()
	if err != nil {
		return nil
	}
	return md.Get(WarningKey)
}

// streamError is a stream's failure.
type streamError struct {
	stream string
	err    error
}

func (e *streamError) Error() string { return e.stream + ": " + statusText(e.err) }

// follow opens one server stream and sends its messages as events until ctx
// ends (nil) or the stream fails (a *streamError). A stream the server ends
// cleanly is reported and reopened after reopenDelay; Unimplemented ends
// following without error when tolerateUnimplemented is set.
func (a *app) follow(ctx context.Context, stream string, tolerateUnimplemented bool, out chan<- watchEvent,
	open func(context.Context) (func() (watchEvent, error), error),
) error {
	send := func(ev watchEvent) bool {
		ev.Stream = stream
		if ev.Time == "" {
			ev.Time = a.now().UTC().Format(time.RFC3339Nano)
		}
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		recv, err := open(ctx)
		for err == nil {
			var ev watchEvent
			if ev, err = recv(); err == nil {
				ev.Time = a.now().UTC().Format(time.RFC3339Nano)
				ev.Event = eventMessage
				if !send(ev) {
					return nil
				}
				for _, w := range ev.warnings {
					if !send(watchEvent{Event: eventWarning, Message: w}) {
						return nil
					}
				}
			}
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, io.EOF):
			msg := fmt.Sprintf("the scaler ended the stream; reopening in %v, as KEDA does", a.reopenDelay)
			if !send(watchEvent{Event: eventEnd, Message: msg}) {
				return nil
			}
			t := time.NewTimer(a.reopenDelay)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		case tolerateUnimplemented && status.Code(err) == codes.Unimplemented &&
			strings.HasPrefix(status.Convert(err).Message(), staticTargetPrefix):
			send(watchEvent{Event: eventStatic, Message: staticTargetNote})
			return nil
		case tolerateUnimplemented && status.Code(err) == codes.Unimplemented:
			send(watchEvent{Event: eventUnimplemented, Status: statusText(err),
				Message: "not implemented by the scaler: KEDA falls back to GetMetricSpec"})
			return nil
		default:
			return &streamError{stream: stream, err: err}
		}
	}
}

func (a *app) printEvent(ev watchEvent, asJSON bool) {
	if asJSON {
		b, err := json.Marshal(ev)
		if err != nil { // jsonFloat keeps every field encodable
			fmt.Fprintf(a.stderr, "scalerctl: %v\n", err)
			return
		}
		fmt.Fprintf(a.stdout, "%s\n", b)
		return
	}
	var body string
	switch {
	case ev.Event == eventEnd:
		body = "end: " + ev.Message
	case ev.Event == eventWarning:
		body = "warning: " + ev.Message + " (from the scaler, " + WarningKey + ")"
	case ev.Event == eventStatic:
		body = ev.Message
	case ev.Event == eventUnimplemented:
		body = "unimplemented: " + ev.Message + " (" + ev.Status + ")"
	case ev.Result != nil:
		body = fmt.Sprintf("result=%t", *ev.Result)
	case ev.MetricSpecs != nil && len(*ev.MetricSpecs) == 0:
		body = "no metric specs"
	case ev.MetricSpecs != nil:
		parts := make([]string, len(*ev.MetricSpecs))
		for i, s := range *ev.MetricSpecs {
			parts[i] = fmt.Sprintf("metricName=%q targetSize=%d targetSizeFloat=%s", s.MetricName, s.TargetSize, fmtRaw(float64(s.TargetSizeFloat)))
			if s.Target != nil {
				parts[i] += fmt.Sprintf(" target=%s", fmtRaw(*s.Target))
			}
		}
		body = strings.Join(parts, "; ")
	}
	fmt.Fprintf(a.stdout, "%s %s %s\n", ev.Time, ev.Stream, body)
}
