// Package scalerkit runs a KEDA external scaler process around a backend.
//
// A service's main function loads its own configuration, builds its
// backend and hands it to Run, which does everything else: shared
// configuration (config.Config), structured logging, the ExternalScaler
// implementation (package scaler), the gRPC and HTTP listeners (package
// server), TLS, and shutdown on SIGTERM or SIGINT.
package scalerkit
