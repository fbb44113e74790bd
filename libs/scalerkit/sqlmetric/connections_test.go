package sqlmetric

import (
	"reflect"
	"strings"
	"testing"
)

func TestNamedConnections(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		want    map[string]Connection
		wantErr []string // fragments of the error; nil: no error
	}{
		{"none", []string{"PATH=/bin", "POSTGRES_URL=postgres://default"}, map[string]Connection{}, nil},
		{"one with a password, one without, names lowercased",
			[]string{
				"POSTGRES_URL_BILLING=postgres://bill@db/billing",
				"POSTGRES_PASSWORD_BILLING=s3cret=x",
				"POSTGRES_URL_Reports=host=r dbname=r",
				"POSTGRES_URL_=no name",
				"XPOSTGRES_URL_A=other prefix",
				"postgres_url_lower=other case",
			},
			map[string]Connection{
				"billing": {Name: "billing", URL: "postgres://bill@db/billing", URLVar: "POSTGRES_URL_BILLING", Password: "s3cret=x", PasswordVar: "POSTGRES_PASSWORD_BILLING"},
				"reports": {Name: "reports", URL: "host=r dbname=r", URLVar: "POSTGRES_URL_Reports", PasswordVar: "POSTGRES_PASSWORD_Reports"},
			}, nil},
		{"password spelled in another case", []string{"POSTGRES_URL_BILLING=u", "POSTGRES_PASSWORD_billing=pw"},
			map[string]Connection{"billing": {Name: "billing", URL: "u", URLVar: "POSTGRES_URL_BILLING", Password: "pw", PasswordVar: "POSTGRES_PASSWORD_billing"}}, nil},
		{"same name twice", []string{"POSTGRES_URL_BILLING=u", "POSTGRES_URL_billing=u"}, nil,
			[]string{"POSTGRES_URL_BILLING and POSTGRES_URL_billing", `"billing"`}},
		{"same password twice", []string{"POSTGRES_URL_BILLING=u", "POSTGRES_PASSWORD_BILLING=a", "POSTGRES_PASSWORD_Billing=b"}, nil,
			[]string{"POSTGRES_PASSWORD_BILLING and POSTGRES_PASSWORD_Billing"}},
		{"bad name", []string{"POSTGRES_URL_RE-PORTS=u"}, nil, []string{"POSTGRES_URL_RE-PORTS", "letters, digits and '_'"}},
		{"the default's name", []string{"POSTGRES_URL_DEFAULT=u"}, nil, []string{"POSTGRES_URL_DEFAULT", "default connection"}},
		{"empty URL", []string{"POSTGRES_URL_BILLING= "}, nil, []string{"POSTGRES_URL_BILLING is empty"}},
		{"password without URL", []string{"POSTGRES_PASSWORD_ARCHIVE=pw"}, nil,
			[]string{"POSTGRES_PASSWORD_ARCHIVE is set but POSTGRES_URL_ARCHIVE is not"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NamedConnections(tt.environ, Vars("POSTGRES"))
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("no error, want one containing %q", tt.wantErr)
				}
				for _, f := range tt.wantErr {
					if !strings.Contains(err.Error(), f) {
						t.Errorf("error %q does not contain %q", err, f)
					}
				}
				for _, kv := range tt.environ {
					if _, v, _ := strings.Cut(kv, "="); len(v) > 2 && strings.Contains(err.Error(), v) {
						t.Errorf("error %q quotes the value %q", err, v)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestCheckConnections(t *testing.T) {
	c := validConfig()
	c.Queries = `{"late": {"sql": "select 1", "connection": "Billing"}, "plain": {"sql": "select 2"}}`
	s := settings(t, c)
	if err := s.CheckConnections([]string{DefaultConnection, "billing"}, Vars("ORACLE")); err != nil {
		t.Errorf("billing configured: %v", err)
	}
	err := s.CheckConnections([]string{DefaultConnection}, Vars("ORACLE"))
	if err == nil || !strings.Contains(err.Error(), `named query "late"`) || !strings.Contains(err.Error(), "ORACLE_URL_BILLING is not set") {
		t.Errorf("billing missing: %v, want an error naming the query and ORACLE_URL_BILLING", err)
	}
}

func TestVars(t *testing.T) {
	v := Vars("ORACLE")
	tests := []struct{ got, want string }{
		{v.URL(DefaultConnection), "ORACLE_URL"},
		{v.Password(DefaultConnection), "ORACLE_PASSWORD"},
		{v.URL("billing"), "ORACLE_URL_BILLING"},
		{v.Password("billing"), "ORACLE_PASSWORD_BILLING"},
		{v.URLPrefix(), "ORACLE_URL_"},
		{v.PasswordPrefix(), "ORACLE_PASSWORD_"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %s, want %s", tt.got, tt.want)
		}
	}
	if got := v.EnvPrefixes(); !reflect.DeepEqual(got, []string{"ORACLE_URL_", "ORACLE_PASSWORD_"}) {
		t.Errorf("EnvPrefixes() = %q", got)
	}
}
