package cli

import (
	"fmt"
	"strings"

	"google.golang.org/grpc"
	grpcmd "google.golang.org/grpc/metadata"
)

// WarningKey is the gRPC metadata key (header or trailer) a kedascalers
// scaler sends its warnings about a trigger under, one value each; KEDA
// ignores it.
const WarningKey = "kedascalers-warning"

// scalerWarnings gathers the distinct warnings a scaler sends over the
// RPCs of one check, in the order they first came.
type scalerWarnings struct {
	header, trailer grpcmd.MD
	list            []string
	seen            map[string]bool
}

// opts returns the call options that capture the next RPC's metadata.
func (w *scalerWarnings) opts() []grpc.CallOption {
	w.header, w.trailer = nil, nil
	return []grpc.CallOption{grpc.Header(&w.header), grpc.Trailer(&w.trailer)}
}

// collect takes the warnings of the RPC just made.
func (w *scalerWarnings) collect() {
	if w.seen == nil {
		w.seen = map[string]bool{}
	}
	for _, v := range append(w.header.Get(WarningKey), w.trailer.Get(WarningKey)...) {
		if !w.seen[v] {
			w.seen[v] = true
			w.list = append(w.list, v)
		}
	}
}

func (w *scalerWarnings) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nwarnings: (from the scaler, %s)\n", WarningKey)
	for _, v := range w.list {
		fmt.Fprintf(&b, "  %s\n", v)
	}
	return b.String()
}
