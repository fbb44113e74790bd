package config

import (
	"strings"
	"testing"
	"time"
)

func TestApplyDefaults(t *testing.T) {
	var s struct {
		D     time.Duration `default:"1m30s"`
		S     string        `default:"x"`
		I     int           `default:"-3"`
		U     uint16        `default:"8"`
		F     float64       `default:"0.5"`
		B     bool          `default:"true"`
		NoTag int
	}
	if err := applyDefaults(&s); err != nil {
		t.Fatal(err)
	}
	if s.D != 90*time.Second || s.S != "x" || s.I != -3 || s.U != 8 || s.F != 0.5 || !s.B || s.NoTag != 0 {
		t.Errorf("applyDefaults = %+v", s)
	}
	var bad struct {
		N int `default:"ten"`
	}
	if err := applyDefaults(&bad); err == nil || !strings.Contains(err.Error(), "default of N") {
		t.Errorf("a default that does not parse: %v, want an error naming the field", err)
	}
}
