package oraclequery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sijms/go-ora/v2/network"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestMapError(t *testing.T) {
	plain := errors.New("dial tcp 10.0.0.1:1521: connect: connection refused")
	tests := []struct {
		name string
		err  error
		code codes.Code // codes.Unknown: left as it is
		want []string
	}{
		{"read-only refusal", oraErr(1456, "may not perform insert/delete/update operation inside a READ ONLY transaction"), codes.PermissionDenied, []string{"READ ONLY", "ORA-01456"}},
		{"insufficient privileges", oraErr(1031, "insufficient privileges"), codes.PermissionDenied, []string{"GRANT", "ORA-01031"}},
		{"no table", oraErr(942, "table or view does not exist"), codes.InvalidArgument, []string{"ORA-00942"}},
		{"invalid identifier", oraErr(904, `"NOPE": invalid identifier`), codes.InvalidArgument, []string{"ORA-00904"}},
		{"not properly ended", oraErr(933, "SQL command not properly ended"), codes.InvalidArgument, []string{"ORA-00933"}},
		{"missing expression", oraErr(936, "missing expression"), codes.InvalidArgument, []string{"ORA-00936"}},
		{"invalid character", oraErr(911, "invalid character"), codes.InvalidArgument, nil},
		{"not all variables bound", oraErr(1008, "not all variables bound"), codes.InvalidArgument, nil},
		{"user requested cancel", oraErr(1013, "user requested cancel of current operation"), codes.DeadlineExceeded, []string{"QUERY_TIMEOUT=2s", "ORA-01013"}},
		{"no listener", oraErr(12541, "TNS:no listener"), codes.Unavailable, []string{"ORA-12541"}},
		{"unknown service", oraErr(12514, "TNS:listener does not currently know of service requested in connect descriptor"), codes.Unavailable, nil},
		{"end-of-file", oraErr(3113, "end-of-file on communication channel"), codes.Unavailable, nil},
		{"not connected", oraErr(3114, "not connected to ORACLE"), codes.Unavailable, nil},
		{"connect timeout", oraErr(12170, "TNS:Connect timeout occurred"), codes.Unavailable, nil},
		{"database down", oraErr(1034, "ORACLE not available"), codes.Unavailable, nil},
		{"wrapped by sqlmetric.DB", fmt.Errorf("guarding the transaction: %w", oraErr(12541, "TNS:no listener")), codes.Unavailable, []string{"guarding"}},
		{"go-ora's own message", &network.OracleError{ErrCode: 942}, codes.InvalidArgument, []string{"ORA-942"}},
		{"context deadline", context.DeadlineExceeded, codes.DeadlineExceeded, []string{"QUERY_TIMEOUT=2s"}},
		{"wrapped context deadline", fmt.Errorf("beginning a transaction: %w", context.DeadlineExceeded), codes.DeadlineExceeded, []string{"QUERY_TIMEOUT"}},
		{"go-ora's break", network.ErrConnReset, codes.DeadlineExceeded, []string{"QUERY_TIMEOUT"}},
		{"wrong password", oraErr(1017, "invalid username/password; logon denied"), codes.FailedPrecondition, []string{"ORA-01017", "ORACLE_PASSWORD"}},
		{"no CREATE SESSION", oraErr(1045, "user KS lacks CREATE SESSION privilege; logon denied"), codes.FailedPrecondition, []string{"CREATE SESSION"}},
		{"account locked", oraErr(28000, "The account is locked."), codes.FailedPrecondition, []string{"locked"}},
		{"unknown ORA code", oraErr(1555, "snapshot too old"), codes.Unknown, []string{"ORA-01555"}},
		{"unique constraint", oraErr(1, "unique constraint violated"), codes.Unknown, nil},
		{"network error", plain, codes.Unknown, []string{"connection refused"}},
		{"context canceled", context.Canceled, codes.Unknown, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mapError(tt.err, 2*time.Second)
			if got == nil {
				t.Fatal("mapError returned nil")
			}
			if c := status.Code(got); c != tt.code {
				t.Errorf("code %v, want %v: %v", c, tt.code, got)
			}
			if tt.code == codes.Unknown && got != tt.err {
				t.Errorf("mapError changed an error it does not know: %v", got)
			}
			for _, w := range tt.want {
				if !strings.Contains(got.Error(), w) {
					t.Errorf("%q does not contain %q", got, w)
				}
			}
		})
	}
	if mapError(nil, time.Second) != nil {
		t.Error("mapError(nil) is not nil")
	}
}

// Every code the table claims is mapped to exactly one status.
func TestMapErrorCodeSetsAreDisjoint(t *testing.T) {
	seen := map[int]string{userCancel: "cancel"}
	for code := range permissionCodes {
		if s, dup := seen[code]; dup {
			t.Errorf("ORA-%05d is both %s and permission", code, s)
		}
		seen[code] = "permission"
	}
	for name, set := range map[string]map[int]bool{"query": queryCodes, "unavailable": unavailableCodes} {
		for code := range set {
			if s, dup := seen[code]; dup {
				t.Errorf("ORA-%05d is both %s and %s", code, s, name)
			}
			seen[code] = name
		}
	}
}
