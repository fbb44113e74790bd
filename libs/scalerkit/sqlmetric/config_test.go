package sqlmetric

import (
	"strings"
	"testing"
)

// serviceConfig is a SQL service's configuration as services write it:
// the shared settings embedded, and its own fields with want bounds.
type serviceConfig struct {
	Config
	MaxConns int `envconfig:"DB_MAX_CONNS" want:"> 0"`
}

func TestValidateService(t *testing.T) {
	tests := []struct {
		name string
		edit func(*serviceConfig)
		want string // a substring of the error; "" for none
	}{
		{"valid", func(*serviceConfig) {}, ""},
		{"a shared setting out of bounds", func(c *serviceConfig) { c.MaxRows = 0 }, "MAX_ROWS=0"},
		{"a shared setting the bounds cannot say", func(c *serviceConfig) { c.QueryPolicy = "xyz" }, "QUERY_POLICY"},
		{"the service's own bound", func(c *serviceConfig) { c.MaxConns = 0 }, "DB_MAX_CONNS=0: want > 0"},
		{"the shared settings first", func(c *serviceConfig) { c.MaxRows, c.MaxConns = 0, 0 }, "MAX_ROWS=0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := serviceConfig{Config: validConfig(), MaxConns: 1}
			tt.edit(&c)
			err := c.ValidateService(&c)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("ValidateService() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("ValidateService() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
