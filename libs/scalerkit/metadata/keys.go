package metadata

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// KEDAKeys are the keys of an external trigger's metadata that KEDA itself
// reads (pkg/scalers/external_scaler.go: scalerAddress, enableTLS,
// unsafeSsl, and the TLS material caCert, tlsClientCert, tlsClientKey,
// with tlsCertFile still accepted from older versions). KEDA forwards them
// with the rest, so CheckKeys accepts them without a word.
var KEDAKeys = []string{"scalerAddress", "enableTLS", "unsafeSsl", "caCert", "tlsClientCert", "tlsClientKey", "tlsCertFile"}

// MaxWarnings is how many unknown keys CheckKeys reports one by one; the
// rest are counted in one last warning, so that a trigger with thousands of
// keys cannot make the reply or the log line grow with them.
const MaxWarnings = 10

// UnknownKeyError is a key no backend asked about that is so close to one
// it did ask about (another case, or an edit or two away) that it is most
// likely a typo: ignoring it would silently change the decision.
type UnknownKeyError struct {
	// Key is the key found in the metadata.
	Key string
	// Suggestion is the known key it is close to.
	Suggestion string
}

// Error implements error. The key is clipped (see Clip).
func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("metadata %q is not a known key: did you mean %q?", Clip(e.Key), e.Suggestion)
}

// GRPCStatus reports the error as InvalidArgument.
func (e *UnknownKeyError) GRPCStatus() *status.Status {
	return status.New(codes.InvalidArgument, e.Error())
}

// CheckKeys looks at the keys of the metadata that nothing asked the
// Parser about, once the backend has read everything it reads. A key close
// to an asked-about key is returned as an *UnknownKeyError (the first in
// sorted order); KEDA's own keys (KEDAKeys) are accepted; any other key
// is returned as a warning saying it is ignored, at most MaxWarnings of
// them plus one that counts the rest. Keys in warnings are clipped and
// quoted in ASCII, fit for a gRPC header.
func (p *Parser) CheckKeys() (warnings []string, err error) {
	var unknown []string
	for k := range p.md {
		if _, ok := p.asked[k]; !ok && !slices.Contains(KEDAKeys, k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	asked := make([]string, 0, len(p.asked))
	for k := range p.asked {
		asked = append(asked, k)
	}
	slices.Sort(asked)
	for _, k := range unknown[:min(len(unknown), maxTypoChecks)] {
		if s := closest(k, asked); s != "" {
			return nil, &UnknownKeyError{Key: k, Suggestion: s}
		}
	}
	for i, k := range unknown {
		if i == MaxWarnings {
			warnings = append(warnings, fmt.Sprintf("%d more unknown metadata keys ignored", len(unknown)-MaxWarnings))
			break
		}
		w := fmt.Sprintf("metadata %+q is not a known key: ignored", Clip(k))
		if s := closest(k, KEDAKeys); s != "" {
			w += fmt.Sprintf(" (KEDA reads %q)", s)
		}
		warnings = append(warnings, w)
	}
	return warnings, nil
}

// maxTypoChecks bounds the unknown keys compared with the known ones, so
// that the work per call does not grow with what a trigger sends.
const maxTypoChecks = 100

// maxTypo is the largest edit distance at which an unknown key is taken
// for a misspelling of a known one.
const maxTypo = 2

// closest returns the candidate key is most likely a misspelling of: one
// that differs only in case, else the nearest within maxTypo edits (and
// fewer edits than the candidate has letters, so that short keys do not
// match everything), else "".
func closest(key string, candidates []string) string {
	if len(key) > ClipLen {
		return "" // no key we know is that long
	}
	best, bestDist := "", maxTypo+1
	for _, c := range candidates {
		if strings.EqualFold(key, c) {
			return c
		}
		if abs(len(key)-len(c)) > maxTypo {
			continue // at least that many insertions or deletions
		}
		if d := distance(key, c); d < bestDist && d < len(c) {
			best, bestDist = c, d
		}
	}
	return best
}

// distance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of neighbours each count
// one. Keys are ASCII, so it works on bytes.
func distance(a, b string) int {
	// Three rows: the one before the previous (for swaps), the previous
	// and the current.
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
