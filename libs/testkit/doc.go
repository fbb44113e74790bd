// Package testkit holds what the tests and the demo need and the running
// scalers do not: throwaway backends (testenv), a throwaway PKI (testpki),
// a KEDA-like client over an in-memory listener (scalertest), the
// processes tests start (proc), waiting for a condition (wait), and the
// check of the shipped alerts and dashboard against a running scaler's
// /metrics (monitoring). It is a
// module of its own so that a service's runtime module graph holds only
// what the service runs.
package testkit
