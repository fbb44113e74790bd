package scalertest

import (
	"testing"

	"github.com/kedascalers/kedascalers/libs/scalerkit/config"
)

// Spec is a service's configuration as scalerkit.Run takes it: P is *C,
// with Validate and the one Resolve step into its settings S.
type Spec[C, S any] interface {
	*C
	Validate() error
	Resolve(shared config.Config) (S, error)
}

// Resolve validates and resolves cfg against the zero shared
// configuration, as scalerkit.Run does after loading it.
func Resolve[C, S any, P Spec[C, S]](cfg C) (S, error) {
	if err := P(&cfg).Validate(); err != nil {
		var zero S
		return zero, err
	}
	return P(&cfg).Resolve(config.Config{})
}

// Settings is Resolve for a cfg that must be valid: it fails t otherwise.
func Settings[C, S any, P Spec[C, S]](t testing.TB, cfg C) S {
	t.Helper()
	s, err := Resolve[C, S, P](cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
