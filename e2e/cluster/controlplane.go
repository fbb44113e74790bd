package cluster

import (
	"crypto/tls"
	"path/filepath"
	"strconv"
	"time"
)

// ports are the loopback ports of the cluster's processes.
type ports struct {
	etcd, etcdPeer, api        int
	opMetrics, opProbe, opGRPC int
	adapter, adapterMetrics    int
}

// newPorts picks the cluster's ports among those free a moment ago.
func newPorts() (ports, error) {
	p, err := freePorts(8)
	if err != nil {
		return ports{}, err
	}
	return ports{etcd: p[0], etcdPeer: p[1], api: p[2], opMetrics: p[3], opProbe: p[4], opGRPC: p[5], adapter: p[6], adapterMetrics: p[7]}, nil
}

func (p ports) etcdURL() string { return "http://127.0.0.1:" + strconv.Itoa(p.etcd) }
func (p ports) apiURL() string  { return "https://127.0.0.1:" + strconv.Itoa(p.api) }

// etcd is a single-member etcd without fsync, data in dir/etcd.
func etcd(dir string, p ports) component {
	peerURL := "http://127.0.0.1:" + strconv.Itoa(p.etcdPeer)
	return component{
		name: "etcd",
		args: []string{
			"--name=default", "--data-dir=" + filepath.Join(dir, "etcd"),
			"--listen-client-urls=" + p.etcdURL(), "--advertise-client-urls=" + p.etcdURL(),
			"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
			"--initial-cluster=default=" + peerURL,
			"--unsafe-no-fsync", "--log-level=warn",
		},
		ready: httpReady(p.etcdURL()+"/health", nil),
	}
}

// apiserver is kube-apiserver on etcd, trusting the cluster's CA for
// clients and its front-proxy CA for the aggregation layer; adminTLS
// reads its /readyz.
func apiserver(dir string, p ports, k *pki, adminTLS *tls.Config) component {
	return component{
		name: "kube-apiserver",
		args: []string{
			"--etcd-servers=" + p.etcdURL(),
			"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(p.api),
			"--tls-cert-file=" + k.servingCert, "--tls-private-key-file=" + k.servingKey,
			"--client-ca-file=" + k.caFile,
			"--authorization-mode=AlwaysAllow",
			"--service-account-issuer=https://kubernetes.default.svc",
			"--service-account-key-file=" + k.saPub, "--service-account-signing-key-file=" + k.saKey,
			"--service-cluster-ip-range=10.0.0.0/24",
			"--requestheader-client-ca-file=" + k.proxyCAFile,
			"--requestheader-allowed-names=front-proxy-client",
			"--requestheader-username-headers=X-Remote-User",
			"--requestheader-group-headers=X-Remote-Group",
			"--requestheader-extra-headers-prefix=X-Remote-Extra-",
			"--proxy-client-cert-file=" + k.proxyCert, "--proxy-client-key-file=" + k.proxyKey,
			"--cert-dir=" + filepath.Join(dir, "apiserver-certs"),
		},
		ready: httpReady(p.apiURL()+"/readyz", adminTLS),
	}
}

// hpaController is kube-controller-manager running only the HPA
// controller, synced every period, with no downscale stabilization.
func (c *Cluster) hpaController(period time.Duration) component {
	return component{
		name: "kube-controller-manager",
		args: []string{
			"--kubeconfig=" + c.Kubeconfig,
			"--controllers=horizontal-pod-autoscaler-controller",
			"--secure-port=0", "--leader-elect=false",
			"--horizontal-pod-autoscaler-sync-period=" + period.String(),
			"--horizontal-pod-autoscaler-downscale-stabilization=0s",
		},
		// No health endpoint with --secure-port=0: its log says when.
		ready: c.logSays("kube-controller-manager", "Starting HPA controller"),
	}
}
