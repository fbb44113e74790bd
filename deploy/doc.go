// Package deploy holds no code. The module is the home of the Kubernetes
// manifests (kustomize/, with kustomize/examples/) and of the tests that
// check them, the image and the release:
//
//   - kustomize_test.go renders every base and overlay with kustomize's Go
//     API, decodes every object strictly into its Kubernetes, cert-manager
//     or Prometheus Operator type, and checks the security posture, the
//     headless Services, the NetworkPolicies and the TLS wiring;
//     examples_test.go checks that every example ScaledObject reaches a
//     scaler the prod overlay defines; KEDA's objects are checked against
//     the schemas of KEDA's CRDs (crd_test.go), without compiling KEDA;
//   - images_test.go replays the Dockerfile's build stage for each service
//     without Docker (the same build context, .dockerignore included) and
//     checks that the binary is static and stamped with its version;
//   - release_test.go checks the one release workflow and runs its tag
//     step; image_test.go that an overlay pins only a version CHANGELOG.md
//     records; testedwith_test.go that CHANGELOG.md's newest "Tested
//     with" table says the KEDA, Kubernetes and etcd versions
//     e2e/build/go.mod pins;
//   - glue_test.go checks that a service needs, outside its folder, only
//     the glue files CONTRIBUTING.md's "Adding a backend" lists.
//
// Run them with make deploy-check.
package deploy
