package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kedascalers/kedascalers/libs/scalerkit/config"
)

// bounded has one field of each kind CheckBounds orders.
type bounded struct {
	Count    int           `envconfig:"COUNT" want:">= 1"`
	Size     uint32        `envconfig:"SIZE" want:"> 0"`
	Interval time.Duration `envconfig:"INTERVAL" want:"> 0s"`
	Grace    time.Duration `envconfig:"GRACE" want:">= 0s"`
	Name     string        `envconfig:"NAME"`
}

func TestCheckBounds(t *testing.T) {
	ok := bounded{Count: 1, Size: 1, Interval: time.Nanosecond, Grace: 0}
	tests := []struct {
		name string
		edit func(*bounded)
		want string // "" for no error
	}{
		{"every field at its bound", func(*bounded) {}, ""},
		{"well inside", func(b *bounded) { b.Count, b.Size, b.Interval, b.Grace = 10, 10, time.Hour, time.Hour }, ""},
		{">= 1, one below", func(b *bounded) { b.Count = 0 }, "COUNT=0: want >= 1"},
		{">= 1, negative", func(b *bounded) { b.Count = -5 }, "COUNT=-5: want >= 1"},
		{"> 0 unsigned, at 0", func(b *bounded) { b.Size = 0 }, "SIZE=0: want > 0"},
		{"> 0s, at 0", func(b *bounded) { b.Interval = 0 }, "INTERVAL=0s: want > 0s"},
		{">= 0s, one below", func(b *bounded) { b.Grace = -time.Nanosecond }, "GRACE=-1ns: want >= 0s"},
		{"the first field out of bounds is named", func(b *bounded) { b.Count, b.Interval = 0, 0 }, "COUNT=0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := ok
			tt.edit(&b)
			err := config.CheckBounds(&b)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("CheckBounds(%+v) = %v, want nil", b, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("CheckBounds(%+v) = %v, want an error containing %q", b, err, tt.want)
			}
		})
	}
}

func TestCheckBoundsBadTag(t *testing.T) {
	tests := []struct {
		name string
		spec any
	}{
		{"no operator", &struct {
			N int `envconfig:"N" want:"1"`
		}{}},
		{"unknown operator", &struct {
			N int `envconfig:"N" want:"< 1"`
		}{}},
		{"bound of the wrong type", &struct {
			D time.Duration `envconfig:"D" want:"> 1"`
		}{}},
		{"unordered type", &struct {
			S string `envconfig:"S" want:"> 0"`
		}{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := config.CheckBounds(tt.spec); err == nil || !strings.Contains(err.Error(), "want tag") {
				t.Errorf("CheckBounds = %v, want an error about the want tag", err)
			}
		})
	}
}

// TestDefaultsWithinBounds: every want tag of Config parses, and every
// default satisfies it.
func TestDefaultsWithinBounds(t *testing.T) {
	c := config.Defaults()
	if err := config.CheckBounds(&c); err != nil {
		t.Fatal(err)
	}
}
