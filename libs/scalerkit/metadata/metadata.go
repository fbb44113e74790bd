// Package metadata parses a KEDA trigger's scalerMetadata into typed values.
//
// KEDA forwards every key of triggers[].metadata, its own included
// (scalerAddress, enableTLS, unsafeSsl). A Parser reads the keys a backend
// asks for and remembers which those were; CheckKeys then sorts out the
// rest: a key a letter or two away from an asked-for key is a typo
// (*UnknownKeyError), KEDA's own keys are fine, any other is a warning. A
// Parser keeps the first error it meets, so a backend reads all its keys in
// a row and checks Err once, the way bufio.Scanner works. Errors are *Error,
// which gRPC reports as InvalidArgument naming the key, the value and what
// was expected.
package metadata

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is a bad or missing metadata value.
type Error struct {
	// Key is the metadata key at fault.
	Key string
	// Value is the value found, empty when the key is missing.
	Value string
	// Want says what was expected, e.g. "a number > 0".
	Want string
	// Missing is set when a required key is absent or empty.
	Missing bool
}

// Error implements error. The key and the value are clipped (see Clip):
// the message goes back to whoever wrote the trigger and into the logs.
func (e *Error) Error() string {
	if e.Missing {
		return fmt.Sprintf("metadata %q is required: want %s", Clip(e.Key), e.Want)
	}
	return fmt.Sprintf("metadata %q=%q is invalid: want %s", Clip(e.Key), Clip(e.Value), e.Want)
}

// ClipLen is how many bytes of a value Clip keeps.
const ClipLen = 256

// Clip returns s cut to ClipLen bytes (on a UTF-8 boundary) followed by
// "...(N bytes)" stating s's full length, or s itself when it is short
// enough. Values that come from trigger metadata are clipped before they
// are echoed in an error or a log line, so that a hostile trigger cannot
// make either grow with what it sends.
func Clip(s string) string {
	if len(s) <= ClipLen {
		return s
	}
	cut := ClipLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s...(%d bytes)", s[:cut], len(s))
}

// GRPCStatus reports the error as InvalidArgument, so that a handler can
// return it as it is.
func (e *Error) GRPCStatus() *status.Status {
	return status.New(codes.InvalidArgument, e.Error())
}

// Parser reads typed values from trigger metadata, keeps the first error
// and records the keys it was asked about.
type Parser struct {
	md    map[string]string
	err   error
	asked map[string]struct{}
}

// NewParser returns a Parser over md. md is not modified.
func NewParser(md map[string]string) *Parser {
	return &Parser{md: md, asked: make(map[string]struct{})}
}

// Err returns the first error met, or nil.
func (p *Parser) Err() error { return p.err }

// Fail records err unless an error is already recorded. Backends use it for
// checks that involve several keys.
func (p *Parser) Fail(err error) {
	if p.err == nil {
		p.err = err
	}
}

// Has reports whether key is present with a non-blank value.
func (p *Parser) Has(key string) bool {
	_, ok := p.lookup(key)
	return ok
}

// lookup returns the trimmed value of key; blank counts as absent.
func (p *Parser) lookup(key string) (string, bool) {
	p.asked[key] = struct{}{}
	v, ok := p.md[key]
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

func (p *Parser) invalid(key, value, want string) {
	p.Fail(&Error{Key: key, Value: value, Want: want})
}

// String returns the value of key, or def when it is absent.
func (p *Parser) String(key, def string) string {
	if v, ok := p.lookup(key); ok {
		return v
	}
	return def
}

// RequiredString returns the value of key, recording an error when it is
// absent. want describes the expected value in that error.
func (p *Parser) RequiredString(key, want string) string {
	v, ok := p.lookup(key)
	if !ok {
		p.Fail(&Error{Key: key, Want: want, Missing: true})
	}
	return v
}

// OneOf returns the value of key, def when absent, and records an error when
// the value is not one of allowed.
func (p *Parser) OneOf(key, def string, allowed ...string) string {
	v, ok := p.lookup(key)
	if !ok {
		return def
	}
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	p.invalid(key, v, "one of "+strings.Join(allowed, ", "))
	return def
}

// Bool returns the value of key as a bool (true/false, 1/0, as
// strconv.ParseBool accepts), or def when absent.
func (p *Parser) Bool(key string, def bool) bool {
	v, ok := p.lookup(key)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.invalid(key, v, "true or false")
		return def
	}
	return b
}

// Float returns the value of key as a finite float64, def when absent, and
// records an error when the value is not a number or fails r.
func (p *Parser) Float(key string, def float64, r Range[float64]) float64 {
	v, ok := p.lookup(key)
	if !ok {
		return def
	}
	return p.float(key, v, def, r)
}

// RequiredFloat is Float for a key that must be present.
func (p *Parser) RequiredFloat(key string, r Range[float64]) float64 {
	v, ok := p.lookup(key)
	if !ok {
		p.Fail(&Error{Key: key, Want: "a number" + r.String(), Missing: true})
		return 0
	}
	return p.float(key, v, 0, r)
}

func (p *Parser) float(key, v string, def float64, r Range[float64]) float64 {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		p.invalid(key, v, "a number"+r.String())
		return def
	}
	if !r.contains(f) {
		p.invalid(key, v, "a number"+r.String())
		return def
	}
	return f
}

// Int returns the value of key as an int64, def when absent, and records an
// error when the value is not an integer or fails r.
func (p *Parser) Int(key string, def int64, r Range[int64]) int64 {
	v, ok := p.lookup(key)
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || !r.contains(n) {
		p.invalid(key, v, "an integer"+r.String())
		return def
	}
	return n
}

// Duration returns the value of key as a time.Duration ("500ms", "2s"), def
// when absent, and records an error when it does not parse or fails r.
func (p *Parser) Duration(key string, def time.Duration, r Range[time.Duration]) time.Duration {
	v, ok := p.lookup(key)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || !r.contains(d) {
		p.invalid(key, v, "a duration such as 500ms or 2s"+r.String())
		return def
	}
	return d
}

// number is the set of types a Range bounds.
type number interface {
	~int64 | ~float64
}

// Range bounds a numeric value. The zero Range accepts everything.
type Range[T number] struct {
	min, max       T
	hasMin, hasMax bool
	// exclusiveMin makes min itself invalid (for "> 0").
	exclusiveMin bool
}

// Any accepts every value.
func Any[T number]() Range[T] { return Range[T]{} }

// Positive accepts values > 0.
func Positive[T number]() Range[T] { return Range[T]{hasMin: true, exclusiveMin: true} }

// AtLeast accepts values >= min.
func AtLeast[T number](min T) Range[T] { return Range[T]{min: min, hasMin: true} }

// Between accepts values in [min, max].
func Between[T number](min, max T) Range[T] {
	return Range[T]{min: min, max: max, hasMin: true, hasMax: true}
}

func (r Range[T]) contains(v T) bool {
	switch {
	case r.hasMin && r.exclusiveMin && v <= r.min:
		return false
	case r.hasMin && v < r.min:
		return false
	case r.hasMax && v > r.max:
		return false
	}
	return true
}

// String describes the range, e.g. " > 0" or " between 0 and 15".
func (r Range[T]) String() string {
	switch {
	case r.hasMin && r.hasMax:
		return fmt.Sprintf(" between %v and %v", r.min, r.max)
	case r.hasMin && r.exclusiveMin:
		return fmt.Sprintf(" > %v", r.min)
	case r.hasMin:
		return fmt.Sprintf(" >= %v", r.min)
	}
	return ""
}
