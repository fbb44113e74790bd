// Package cluster runs a Kubernetes control plane with KEDA as local
// processes, for the end-to-end scenarios of make e2e: etcd, kube-apiserver,
// the KEDA operator and metrics adapter (reached through API aggregation),
// and kube-controller-manager running only the HPA controller. There is no
// kubelet and no pod: a Deployment's spec.replicas is what KEDA and the HPA
// change, and what the scenarios watch.
//
// The binaries come from e2e/build.sh (the directory in $KEDASCALERS_E2E_BIN),
// the PKI is generated here, every process listens on 127.0.0.1 only and
// logs to a file in the cluster's directory, every wait is bounded, and
// Stop ends every process it started (the API server before etcd). Run it in
// a private network namespace (e2e/run.sh does): the adapter's own metrics
// port listens on every interface.
package cluster
