// Package e2e holds the end-to-end scenarios of make e2e: our scalers under
// the real KEDA operator and metrics adapter, on a real Kubernetes API
// server with the real HPA controller (package cluster starts them).
//
// Each scenario is a test in its own namespace, driving the cluster with
// client-go's dynamic client. Run them with make e2e (e2e/run.sh builds the
// binaries once, then runs the tests in a private network namespace);
// without $KEDASCALERS_E2E_BIN they skip, so that go vet and go test of
// this module stay cheap.
package e2e
