package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/kelseyhightower/envconfig"
)

// InvalidError is a bad configuration value found after Load, by code
// that compares a service's settings with the shared ones (QUERY_TIMEOUT
// against BACKEND_TIMEOUT, say). scalerkit.Run reports it like an error of
// Load: a plain message and exit status 2.
type InvalidError struct {
	// Err says which variable is wrong and why.
	Err error
}

// Error implements error.
func (e *InvalidError) Error() string { return e.Err.Error() }

// Unwrap returns Err.
func (e *InvalidError) Unwrap() error { return e.Err }

// Invalid marks err as an *InvalidError; nil stays nil.
func Invalid(err error) error {
	if err == nil {
		return nil
	}
	return &InvalidError{Err: err}
}

// ValueError is a variable whose value cannot be read as its type.
type ValueError struct {
	// Name is the variable, Value what it was set to.
	Name, Value string
	// Want says what is expected, e.g. "a duration such as 2s".
	Want string
	// Err is the parser's own error.
	Err error
}

func (e *ValueError) Error() string {
	return fmt.Sprintf("%s %q: want %s", e.Name, e.Value, e.Want)
}

func (e *ValueError) Unwrap() error { return e.Err }

// explain turns envconfig's parse error ("envconfig.Process: assigning
// CACHE_TTL to CacheTTL: converting '2' to type time.Duration...") into a
// ValueError naming the variable, the value and the form expected, with
// the variable's default as the example.
func explain(spec any, err error) error {
	var pe *envconfig.ParseError
	if !errors.As(err, &pe) {
		return err
	}
	var example string
	if t := reflect.TypeOf(spec); t != nil && t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct {
		if f, ok := t.Elem().FieldByName(pe.FieldName); ok {
			example = f.Tag.Get("default")
		}
	}
	return &ValueError{Name: pe.KeyName, Value: pe.Value, Want: wantForm(pe.TypeName, example), Err: pe.Err}
}

// wantForm describes the form of a value of Go type typeName.
func wantForm(typeName, example string) string {
	form, fallback := "a value of type "+typeName, ""
	switch {
	case typeName == "time.Duration" || typeName == "Duration":
		form, fallback = "a duration", "2s"
	case typeName == "bool":
		return "true or false"
	case strings.HasPrefix(typeName, "uint"):
		form, fallback = "a whole number >= 0", "10"
	case strings.HasPrefix(typeName, "int"):
		form, fallback = "a whole number", "10"
	case strings.HasPrefix(typeName, "float"):
		form, fallback = "a number", "1.5"
	}
	if example == "" {
		example = fallback
	}
	if example == "" {
		return form
	}
	return form + " such as " + example
}
