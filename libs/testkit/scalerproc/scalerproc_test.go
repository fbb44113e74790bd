package scalerproc_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kedascalers/kedascalers/libs/testkit/scalerproc"
)

// TestMain makes this test binary a stand-in scaler when FAKE_SCALER is
// set: "ready" serves /readyz on HTTP_ADDR, "exit" fails at once, "never"
// serves 503.
func TestMain(m *testing.M) {
	switch os.Getenv("FAKE_SCALER") {
	case "":
		os.Exit(m.Run())
	case "exit":
		fmt.Println("bad configuration: GRPC_ADDR=" + os.Getenv("GRPC_ADDR"))
		os.Exit(2)
	case "ready", "never":
		code := http.StatusOK
		if os.Getenv("FAKE_SCALER") == "never" {
			code = http.StatusServiceUnavailable
		}
		fmt.Println("serving " + os.Getenv("HTTP_ADDR"))
		err := http.ListenAndServe(os.Getenv("HTTP_ADDR"), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(code)
		}))
		fmt.Println(err)
		os.Exit(1)
	}
}

func TestStart(t *testing.T) {
	tests := []struct {
		mode, wantErr, wantLog string
		grpcAddr               string
	}{
		{mode: "ready", wantLog: "serving 127.0.0.1:"},
		{mode: "ready", grpcAddr: "127.0.0.1:1", wantLog: "serving"},
		{mode: "exit", wantErr: "exited before it was ready", wantLog: "bad configuration: GRPC_ADDR=127.0.0.1:"},
		{mode: "never", wantErr: "not ready within 1s", wantLog: "serving"},
	}
	for _, tt := range tests {
		t.Run(tt.mode+tt.grpcAddr, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "scaler.log")
			timeout := 10 * time.Second
			if tt.mode == "never" {
				timeout = time.Second
			}
			s, err := scalerproc.Start(context.Background(), scalerproc.Options{
				Bin: os.Args[0], Log: log, Env: []string{"FAKE_SCALER=" + tt.mode},
				GRPCAddr: tt.grpcAddr, ReadyTimeout: timeout,
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.wantLog) {
					t.Fatalf("Start = %v, want an error with %q and the log's %q", err, tt.wantErr, tt.wantLog)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Stop(syscall.SIGKILL, 5*time.Second) })
			if tt.grpcAddr != "" && s.GRPCAddr != tt.grpcAddr {
				t.Errorf("GRPCAddr = %s, want %s", s.GRPCAddr, tt.grpcAddr)
			}
			if !strings.HasPrefix(s.HTTPAddr, "127.0.0.1:") || !strings.HasPrefix(s.GRPCAddr, "127.0.0.1:") {
				t.Errorf("addresses %s, %s: want loopback", s.GRPCAddr, s.HTTPAddr)
			}
			if tail := s.Tail(5); !strings.Contains(tail, tt.wantLog) {
				t.Errorf("log %q lacks %q", tail, tt.wantLog)
			}
			if err := s.Stop(syscall.SIGTERM, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if done, _ := s.Exited(); !done {
				t.Error("not reaped after Stop")
			}
		})
	}
}
