package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// distinctQueries is a case asking count distinct queries (query(i)), 8 at
// a time for at most 60 s, checking that PostgreSQL's server processes do
// not grow by more than 64 MB after the first 40 queries, and counting the
// queries refused as too large.
func distinctQueries(name, what string, count int, query func(i int) string) *abuseCase {
	return &abuseCase{
		name: name, service: "postgres-query", what: what,
		count: count, limit: 60 * time.Second,
		attack: func(ctx context.Context, a *attack) {
			call := func(ctx context.Context, i int) error {
				return a.getMetrics(ctx, i, map[string]string{"query": query(i), "targetQueryValue": "1"})
			}
			warm := max(1, min(40, a.n/10))
			sent := a.fanout(ctx, warm, 8, call)
			a.mark(ctx, "warm")
			a.value("warmQueries", float64(sent))
			sent += a.fanout(ctx, a.n-warm, 8, func(ctx context.Context, i int) error { return call(ctx, warm+i) })
			a.sent(sent)
			a.res.note("refused as too large (InvalidArgument, or ResourceExhausted from the transport): %d of %d",
				a.res.codes[codes.InvalidArgument]+a.res.codes[codes.ResourceExhausted], sent)
		},
		checks: []func(*result) string{func(r *result) string {
			warm, ok := r.marks["warm"]
			if !ok {
				return ""
			}
			if grew := r.endMem - warm; grew > 64*mb {
				return fmt.Sprintf("PostgreSQL backends grew %d MB after the first %.0f queries", grew/mb, r.values["warmQueries"])
			}
			return ""
		}},
	}
}

// badMetadata is a case sending a 1 MB invalid value for key.
func badMetadata(name, service string, base map[string]string, key string) *abuseCase {
	return &abuseCase{
		name: name, service: service,
		what:  fmt.Sprintf("GetMetrics with a 1 MB invalid %s (status message and log must stay small)", key),
		count: 20, limit: 30 * time.Second,
		attack: func(ctx context.Context, a *attack) {
			before := a.scaler.logSize()
			var longest atomic.Int64
			sent := a.fanout(ctx, a.n, 2, func(ctx context.Context, i int) error {
				md := map[string]string{key: strings.Repeat("x", mb)}
				for k, v := range base {
					md[k] = v
				}
				err := a.getMetrics(ctx, i, md)
				if l := int64(len(status.Convert(err).Message())); l > longest.Load() {
					longest.Store(l)
				}
				return err
			})
			a.sent(sent)
			time.Sleep(200 * time.Millisecond) // let the log reach the file
			grew := a.scaler.logSize() - before
			a.value("longestMessage", float64(longest.Load()))
			a.value("logPerCall", float64(grew)/float64(max(1, sent)))
			a.res.note("longest status message %d bytes; log grew %d bytes over %d calls", longest.Load(), grew, sent)
		},
		checks: []func(*result) string{
			// A megabyte may be refused by the transport before the metadata
			// check (GRPC_MAX_RECV_MSG_BYTES): ResourceExhausted.
			allCodes(codes.InvalidArgument, codes.ResourceExhausted),
			func(r *result) string {
				if l := r.values["longestMessage"]; l > 1024 {
					return fmt.Sprintf("status message %.0f bytes > 1 KiB", l)
				}
				return ""
			},
			func(r *result) string {
				if l := r.values["logPerCall"]; l > 4096 {
					return fmt.Sprintf("log grew %.0f bytes per call > 4 KiB", l)
				}
				return ""
			},
		},
	}
}

// allCodes is a check that every call got one of the codes want.
func allCodes(want ...codes.Code) func(*result) string {
	return func(r *result) string {
		for c, n := range r.codes {
			if n > 0 && !slices.Contains(want, c) {
				names := make([]string, len(want))
				for i, w := range want {
					names[i] = w.String()
				}
				return fmt.Sprintf("want every call %s, got %s", strings.Join(names, " or "), codeString(r.codes))
			}
		}
		return ""
	}
}

// messagesContain is a check that every error message sampled contains s.
func messagesContain(s string) func(*result) string {
	return func(r *result) string {
		for c, m := range r.codeSamples {
			if !strings.Contains(m, s) {
				return fmt.Sprintf("the %s message does not name %s: %q", c, s, clip(m, 100))
			}
		}
		return ""
	}
}
