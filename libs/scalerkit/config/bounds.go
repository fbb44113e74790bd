package config

import (
	"cmp"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// CheckBounds checks every field of the struct spec points to that has a
// want tag: a comparison and a bound, such as want:">= 1" or want:"> 0"
// (a duration field's bound is a duration: want:">= 0s"). The first
// field out of bounds is reported as "NAME=value: want >= 1", NAME being
// its envconfig variable. A Config's Validate calls it for its own fields
// (not those of embedded structs, which have their own Validate), so that
// a variable's lower bound is written once, beside its default.
func CheckBounds(spec any) error {
	v := reflect.ValueOf(spec)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	t := v.Type()
	for i := range t.NumField() {
		field := t.Field(i)
		want, ok := field.Tag.Lookup("want")
		if !ok || field.Anonymous {
			continue
		}
		in, err := within(v.Field(i), want)
		if err != nil {
			return fmt.Errorf("want tag of %s: %w", field.Name, err)
		}
		if !in {
			return fmt.Errorf("%s=%v: want %s", field.Tag.Get("envconfig"), v.Field(i).Interface(), want)
		}
	}
	return nil
}

// within reports whether f satisfies want (">= 1", "> 0s", ...).
func within(f reflect.Value, want string) (bool, error) {
	op, bound, ok := strings.Cut(want, " ")
	if !ok || op != ">" && op != ">=" {
		return false, fmt.Errorf("%q: want \"> N\" or \">= N\"", want)
	}
	var sign int // the sign of the value minus the bound
	switch {
	case f.Type() == reflect.TypeFor[time.Duration]():
		b, err := time.ParseDuration(bound)
		if err != nil {
			return false, err
		}
		sign = cmp.Compare(f.Int(), int64(b))
	case f.CanInt():
		b, err := strconv.ParseInt(bound, 10, 64)
		if err != nil {
			return false, err
		}
		sign = cmp.Compare(f.Int(), b)
	case f.CanUint():
		b, err := strconv.ParseUint(bound, 10, 64)
		if err != nil {
			return false, err
		}
		sign = cmp.Compare(f.Uint(), b)
	default:
		return false, fmt.Errorf("type %v has no order", f.Type())
	}
	return sign > 0 || op == ">=" && sign == 0, nil
}
