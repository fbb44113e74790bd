// Package deploy holds no code. The module is the home of the Kubernetes
// manifests (kustomize/, with kustomize/examples/) and of the tests that check them and
// the images:
//
//   - kustomize_test.go renders every base and overlay with kustomize's Go
//     API, decodes every object strictly into its Kubernetes, cert-manager,
//     Prometheus Operator or KEDA type, and checks the security posture,
//     the headless Services, the NetworkPolicies, the TLS wiring and that
//     every example ScaledObject reaches a scaler the prod overlay defines;
//   - images_test.go replays each service's Dockerfile build stage without
//     Docker (the same build context, .dockerignore included) and checks
//     that the binary is static and stamped with its version;
//   - release_test.go checks that each service has its own release
//     workflow, touching nothing of the others.
//
// Run them with make deploy-check.
package deploy
