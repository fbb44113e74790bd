// Package kedaclient runs KEDA's own external push scaler client (package
// pkg/scalers of github.com/kedacore/keda/v2, at the version e2e/build
// pins) against a real redis-session process, without a cluster: the
// code KEDA's operator runs for an external-push trigger, driven through
// many MAX_CONNECTION_AGE cycles (aging_test.go). It lives in the e2e/build
// module, which already requires KEDA and all its dependencies, and runs
// first in make e2e-lifecycle.
package kedaclient
