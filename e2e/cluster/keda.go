package cluster

import (
	"fmt"
	"path/filepath"
	"strconv"
)

// kedaEnv is the environment of KEDA's operator and adapter: every
// namespace watched, KEDA's own objects in namespace keda.
func (c *Cluster) kedaEnv() []string {
	return []string{
		"KUBECONFIG=" + c.Kubeconfig, "WATCH_NAMESPACE=", "POD_NAMESPACE=keda",
		"KEDA_CLUSTER_OBJECT_NAMESPACE=keda", "KEDA_HTTP_DEFAULT_TIMEOUT=3000",
	}
}

// kedaOperator is KEDA's operator without leader election, webhooks or
// certificate rotation, serving its metrics gRPC service with the
// certificates of kedaCerts.
func (c *Cluster) kedaOperator(p ports, kedaCerts string) component {
	return component{
		name: "keda-operator",
		args: []string{
			"--leader-elect=false", "--enable-cert-rotation=false",
			"--enable-webhook-patching=false", "--enable-apiservice-patching=false",
			"--metrics-bind-address=127.0.0.1:" + strconv.Itoa(p.opMetrics),
			"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(p.opProbe),
			"--metrics-service-bind-address=127.0.0.1:" + strconv.Itoa(p.opGRPC),
			"--cert-dir=" + kedaCerts, "--ca-dir=" + kedaCerts,
			"--zap-log-level=info", "--zap-encoder=console",
		},
		env:   c.kedaEnv(),
		ready: httpReady("http://127.0.0.1:"+strconv.Itoa(p.opProbe)+"/readyz", nil),
	}
}

// kedaAdapter is KEDA's metrics adapter, ready when the API server
// serves the external metrics API through it.
func (c *Cluster) kedaAdapter(p ports, kedaCerts string) component {
	return component{
		name: "keda-adapter",
		args: []string{
			"--secure-port=" + strconv.Itoa(p.adapter), "--bind-address=127.0.0.1",
			"--cert-dir=" + kedaCerts,
			"--tls-cert-file=" + filepath.Join(kedaCerts, "tls.crt"),
			"--tls-private-key-file=" + filepath.Join(kedaCerts, "tls.key"),
			"--lister-kubeconfig=" + c.Kubeconfig,
			"--authentication-kubeconfig=" + c.Kubeconfig,
			"--authorization-kubeconfig=" + c.Kubeconfig,
			"--metrics-service-address=127.0.0.1:" + strconv.Itoa(p.opGRPC),
			"--port=" + strconv.Itoa(p.adapterMetrics),
			"--v=0",
		},
		env:   c.kedaEnv(),
		ready: c.kube.externalMetricsReady,
	}
}

// kedaObjects is KEDA's namespace and the registration of its adapter as
// the external metrics API: an ExternalName Service (Endpoints cannot hold
// 127.0.0.1, and a ClusterIP needs kube-proxy) and the APIService.
func kedaObjects(adapterPort int) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: keda}
---
apiVersion: v1
kind: Service
metadata: {name: keda-metrics-apiserver, namespace: keda}
spec:
  type: ExternalName
  externalName: localhost
  ports: [{name: https, port: %[1]d, targetPort: %[1]d}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.external.metrics.k8s.io}
spec:
  group: external.metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  insecureSkipTLSVerify: true
  service: {name: keda-metrics-apiserver, namespace: keda, port: %[1]d}
`, adapterPort)
}
