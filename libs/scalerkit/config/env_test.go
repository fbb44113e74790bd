package config_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kedascalers/kedascalers/libs/scalerkit/config"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
)

// svc is a service's configuration with a renamed variable, a file and
// variables read by prefix.
type svc struct {
	PoolSize  int    `envconfig:"REDIS_POOL_SIZE" default:"10"`
	URL       string `envconfig:"REDIS_URL"`
	MaxConns  int    `envconfig:"SVC_MAX_CONNS" was:"SVC_MAX_OPEN_CONNS" default:"4"`
	CAFile    string `envconfig:"SVC_CA_FILE" file:"true"`
	Lifetime  string `envconfig:"SVC_MAX_CONN_LIFETIME" was:"SVC_CONN_MAX_LIFETIME" default:"30m"`
	Connected []string
}

func (svc) EnvPrefixes() []string { return []string{"SVC_URL_"} }

func TestNearMisses(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want []config.NearMiss
	}{
		{"swapped letters", []string{"REDIS_ULR=redis://x"}, []config.NearMiss{{"REDIS_ULR", "REDIS_URL"}}},
		{"a letter short", []string{"REDIS_POOL_SIZ=5"}, []config.NearMiss{{"REDIS_POOL_SIZ", "REDIS_POOL_SIZE"}}},
		{"shared variable", []string{"CACHE_TLL=3s"}, []config.NearMiss{{"CACHE_TLL", "CACHE_TTL"}}},
		{"three edits away", []string{"REDIS_url=x"}, nil},
		{"known and previous names", []string{"REDIS_URL=x", "SVC_MAX_OPEN_CONNS=3", "CACHE_TTL=1s"}, nil},
		{"Kubernetes service links", []string{
			"REDIS_SESSION_SERVICE_HOST=10.0.0.1", "REDIS_SESSION_SERVICE_PORT=9090", "REDIS_SESSION_SERVICE_PORT_GRPC=9090",
			"REDIS_SESSION_PORT=tcp://10.0.0.1:9090", "REDIS_SESSION_PORT_9090_TCP=tcp://10.0.0.1:9090",
			"REDIS_SESSION_PORT_9090_TCP_ADDR=10.0.0.1", "REDIS_SESSION_PORT_9090_TCP_PORT=9090", "REDIS_SESSION_PORT_9090_TCP_PROTO=tcp",
			"REDIS_PORT=tcp://10.0.0.2:6379", "REDIS_SERVICE_HOST=10.0.0.2",
		}, nil},
		{"variables read by prefix", []string{"SVC_URL_BILLING=x"}, nil},
		{"far from ours", []string{"REDIS_HOST=x", "PATH=/bin", "HOME=/root"}, nil},
		{"other first word", []string{"XREDIS_URL=x"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := config.NearMisses(tt.env, &config.Config{}, &svc{})
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("NearMisses(%v) = %v, want %v", tt.env, got, tt.want)
			}
		})
	}
	if got := (config.NearMiss{"REDIS_ULR", "REDIS_URL"}).String(); !strings.Contains(got, "did you mean REDIS_URL?") {
		t.Errorf("String() = %q", got)
	}
}

func TestLoadRenamed(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		want     int
		warnings []string
	}{
		{"default", nil, 4, nil},
		{"new name", map[string]string{"SVC_MAX_CONNS": "5"}, 5, nil},
		{"previous name", map[string]string{"SVC_MAX_OPEN_CONNS": "6"}, 6,
			[]string{"SVC_MAX_OPEN_CONNS is renamed SVC_MAX_CONNS and is read as SVC_MAX_CONNS"}},
		{"both: the new name wins", map[string]string{"SVC_MAX_CONNS": "5", "SVC_MAX_OPEN_CONNS": "6"}, 5,
			[]string{"SVC_MAX_OPEN_CONNS is renamed SVC_MAX_CONNS and is ignored: SVC_MAX_CONNS is set too"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scalertest.Unsetenv(t, "SVC_MAX_CONNS", "SVC_MAX_OPEN_CONNS", "SVC_CA_FILE", "SVC_MAX_CONN_LIFETIME", "SVC_CONN_MAX_LIFETIME")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var c svc
			if err := config.Load(&c); err != nil {
				t.Fatal(err)
			}
			if c.MaxConns != tt.want {
				t.Errorf("MaxConns = %d, want %d", c.MaxConns, tt.want)
			}
			got := config.Renamed(&c)
			if len(got) != len(tt.warnings) {
				t.Fatalf("Renamed = %q, want %q", got, tt.warnings)
			}
			for i, w := range tt.warnings {
				if !strings.HasPrefix(got[i], w) || !strings.Contains(got[i], "next release") {
					t.Errorf("Renamed[%d] = %q, want %q...", i, got[i], w)
				}
			}
		})
	}
}

func TestLoadRenamedBadValue(t *testing.T) {
	scalertest.Unsetenv(t, "SVC_MAX_CONNS", "SVC_CA_FILE")
	t.Setenv("SVC_MAX_OPEN_CONNS", "many")
	var c svc
	err := config.Load(&c)
	if err == nil || !strings.Contains(err.Error(), `SVC_MAX_OPEN_CONNS "many": want a whole number`) {
		t.Errorf("Load = %v, want an error naming the previous name", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	scalertest.Unsetenv(t, "SVC_MAX_CONNS", "SVC_MAX_OPEN_CONNS")
	t.Setenv("SVC_CA_FILE", "/nonexistent/ca.pem")
	var c svc
	err := config.Load(&c)
	if err == nil || !strings.HasPrefix(err.Error(), "configuration: SVC_CA_FILE: open /nonexistent/ca.pem") {
		t.Errorf("Load = %v, want a configuration error naming SVC_CA_FILE", err)
	}
	t.Setenv("SVC_CA_FILE", "env_test.go")
	if err := config.Load(&c); err != nil {
		t.Errorf("Load with the file there: %v", err)
	}
}

func TestNames(t *testing.T) {
	want := []string{"REDIS_POOL_SIZE", "REDIS_URL", "SVC_MAX_CONNS", "SVC_CA_FILE", "SVC_MAX_CONN_LIFETIME"}
	if got := config.Names(&svc{}); !reflect.DeepEqual(got, want) {
		t.Errorf("Names = %v, want %v", got, want)
	}
	if got := config.Names(&config.Config{}); len(got) != reflect.TypeFor[config.Config]().NumField() {
		t.Errorf("Names of the shared Config: %d, want one per field", len(got))
	}
}
