package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kedascalers/kedascalers/libs/testkit/testpki"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// BinDirEnv names the environment variable that holds the directory of the
// binaries e2e/build.sh built (etcd, kube-apiserver, keda-operator,
// keda-adapter, kube-controller-manager).
const BinDirEnv = "KEDASCALERS_E2E_BIN"

// Options configures a cluster.
type Options struct {
	// BinDir holds the binaries (see BinDirEnv).
	BinDir string
	// Dir is where the cluster keeps its PKI, data and logs; it must exist.
	Dir string
	// CRDFiles are YAML files of CustomResourceDefinitions applied after
	// the API server is up; KEDA's must be among them.
	CRDFiles []string
	// HPASyncPeriod is how often the HPA controller reconciles (15s in
	// Kubernetes; shorter makes the scenarios faster).
	HPASyncPeriod time.Duration
	// Logf reports each phase and its time (t.Logf, say).
	Logf func(format string, args ...any)
}

// Cluster is a running control plane with KEDA.
type Cluster struct {
	// Config reaches the API server as a member of system:masters.
	Config *rest.Config
	// Client is a dynamic client on Config.
	Client dynamic.Interface
	// Kubeconfig is the path of a kubeconfig file with the same identity.
	Kubeconfig string

	opts  Options
	procs []*Proc // in start order; stopped in reverse
	kube  *Kube
}

// component is one process of the control plane, in start order.
type component struct {
	name  string
	args  []string
	env   []string
	ready func(ctx context.Context) error
}

// Start generates the PKI, starts etcd, kube-apiserver, applies the CRDs,
// starts the KEDA operator and adapter (registered as the external metrics
// API) and kube-controller-manager's HPA controller, waiting (bounded by
// ctx) for each to be ready. On error it stops what it started.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.HPASyncPeriod == 0 {
		opts.HPASyncPeriod = 15 * time.Second
	}
	c = &Cluster{opts: opts}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w%s", err, c.Tails(20))
			c.Stop()
			c = nil
		}
	}()
	dir := opts.Dir
	ports, err := freePorts(8)
	if err != nil {
		return c, err
	}
	etcdPort, etcdPeer, apiPort, opMetrics, opProbe, opGRPC, adapterPort, adapterMetrics := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], ports[6], ports[7]

	// PKI: one CA for the API server, its clients and KEDA; one for the
	// aggregation layer's front proxy.
	ca, err := testpki.NewCA("kedascalers e2e CA")
	if err != nil {
		return c, err
	}
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o600); err != nil {
		return c, fmt.Errorf("write CA: %w", err)
	}
	serving, err := ca.Issue("kube-apiserver", nil, "127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "10.0.0.1")
	if err != nil {
		return c, err
	}
	servingCert, servingKey, err := serving.Write(dir, "apiserver.crt", "apiserver.key")
	if err != nil {
		return c, err
	}
	admin, err := ca.Issue("kedascalers-e2e-admin", []string{"system:masters"})
	if err != nil {
		return c, err
	}
	proxyCA, err := testpki.NewCA("kedascalers e2e front-proxy CA")
	if err != nil {
		return c, err
	}
	proxyCAFile := filepath.Join(dir, "front-proxy-ca.crt")
	if err := os.WriteFile(proxyCAFile, proxyCA.CertPEM, 0o600); err != nil {
		return c, fmt.Errorf("write front-proxy CA: %w", err)
	}
	proxyClient, err := proxyCA.Issue("front-proxy-client", nil)
	if err != nil {
		return c, err
	}
	proxyCert, proxyKey, err := proxyClient.Write(dir, "front-proxy-client.crt", "front-proxy-client.key")
	if err != nil {
		return c, err
	}
	saKey, saPub, err := newServiceAccountKey(dir)
	if err != nil {
		return c, err
	}
	// KEDA's operator serves its metrics gRPC service with tls.crt from
	// --cert-dir and the adapter dials it with the same directory's files.
	kedaCerts := filepath.Join(dir, "keda-certs")
	if err := os.MkdirAll(kedaCerts, 0o700); err != nil {
		return c, fmt.Errorf("keda cert dir: %w", err)
	}
	kedaLeaf, err := ca.Issue("keda", nil, "127.0.0.1", "localhost", "keda-operator.keda.svc.cluster.local", "keda-operator.keda.svc", "keda-metrics-apiserver.keda.svc")
	if err != nil {
		return c, err
	}
	if _, _, err := kedaLeaf.Write(kedaCerts, "tls.crt", "tls.key"); err != nil {
		return c, err
	}
	if err := os.WriteFile(filepath.Join(kedaCerts, "ca.crt"), ca.CertPEM, 0o600); err != nil {
		return c, fmt.Errorf("write KEDA CA: %w", err)
	}

	apiURL := "https://127.0.0.1:" + strconv.Itoa(apiPort)
	c.Config = &rest.Config{
		Host:            apiURL,
		TLSClientConfig: rest.TLSClientConfig{CAData: ca.CertPEM, CertData: admin.CertPEM, KeyData: admin.KeyPEM},
		QPS:             200,
		Burst:           400,
		Timeout:         30 * time.Second,
	}
	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kubeconfig(apiURL, ca.CertPEM, admin), 0o600); err != nil {
		return c, fmt.Errorf("write kubeconfig: %w", err)
	}
	c.Client, err = dynamic.NewForConfig(c.Config)
	if err != nil {
		return c, fmt.Errorf("client: %w", err)
	}
	c.kube, err = newKube(c.Config, c.Client)
	if err != nil {
		return c, err
	}
	adminTLS, err := tlsConfig(ca.CertPEM, admin)
	if err != nil {
		return c, err
	}

	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
	etcd := component{
		name: "etcd",
		args: []string{
			"--name=default", "--data-dir=" + filepath.Join(dir, "etcd"),
			"--listen-client-urls=" + etcdURL, "--advertise-client-urls=" + etcdURL,
			"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
			"--initial-cluster=default=" + peerURL,
			"--unsafe-no-fsync", "--log-level=warn",
		},
		ready: httpReady(etcdURL+"/health", nil),
	}
	apiserver := component{
		name: "kube-apiserver",
		args: []string{
			"--etcd-servers=" + etcdURL,
			"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(apiPort),
			"--tls-cert-file=" + servingCert, "--tls-private-key-file=" + servingKey,
			"--client-ca-file=" + caFile,
			"--authorization-mode=AlwaysAllow",
			"--service-account-issuer=https://kubernetes.default.svc",
			"--service-account-key-file=" + saPub, "--service-account-signing-key-file=" + saKey,
			"--service-cluster-ip-range=10.0.0.0/24",
			"--requestheader-client-ca-file=" + proxyCAFile,
			"--requestheader-allowed-names=front-proxy-client",
			"--requestheader-username-headers=X-Remote-User",
			"--requestheader-group-headers=X-Remote-Group",
			"--requestheader-extra-headers-prefix=X-Remote-Extra-",
			"--proxy-client-cert-file=" + proxyCert, "--proxy-client-key-file=" + proxyKey,
			"--cert-dir=" + filepath.Join(dir, "apiserver-certs"),
		},
		ready: httpReady(apiURL+"/readyz", adminTLS),
	}
	if err := c.run(ctx, etcd, 30*time.Second); err != nil {
		return c, err
	}
	if err := c.run(ctx, apiserver, 90*time.Second); err != nil {
		return c, err
	}

	t0 := time.Now()
	if err := c.kube.ApplyFiles(ctx, "", opts.CRDFiles...); err != nil {
		return c, fmt.Errorf("CRDs: %w", err)
	}
	if err := c.kube.WaitCRDsEstablished(ctx, 60*time.Second); err != nil {
		return c, err
	}
	if err := c.kube.Apply(ctx, "", []byte(kedaObjects(adapterPort))); err != nil {
		return c, fmt.Errorf("KEDA namespace and APIService: %w", err)
	}
	opts.Logf("cluster: %d CRD files applied and established, KEDA's namespace and APIService in %v", len(opts.CRDFiles), time.Since(t0).Round(time.Millisecond))

	kedaEnv := []string{
		"KUBECONFIG=" + c.Kubeconfig, "WATCH_NAMESPACE=", "POD_NAMESPACE=keda",
		"KEDA_CLUSTER_OBJECT_NAMESPACE=keda", "KEDA_HTTP_DEFAULT_TIMEOUT=3000",
	}
	operator := component{
		name: "keda-operator",
		args: []string{
			"--leader-elect=false", "--enable-cert-rotation=false",
			"--enable-webhook-patching=false", "--enable-apiservice-patching=false",
			"--metrics-bind-address=127.0.0.1:" + strconv.Itoa(opMetrics),
			"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(opProbe),
			"--metrics-service-bind-address=127.0.0.1:" + strconv.Itoa(opGRPC),
			"--cert-dir=" + kedaCerts, "--ca-dir=" + kedaCerts,
			"--zap-log-level=info", "--zap-encoder=console",
		},
		env:   kedaEnv,
		ready: httpReady("http://127.0.0.1:"+strconv.Itoa(opProbe)+"/readyz", nil),
	}
	adapter := component{
		name: "keda-adapter",
		args: []string{
			"--secure-port=" + strconv.Itoa(adapterPort), "--bind-address=127.0.0.1",
			"--cert-dir=" + kedaCerts,
			"--tls-cert-file=" + filepath.Join(kedaCerts, "tls.crt"),
			"--tls-private-key-file=" + filepath.Join(kedaCerts, "tls.key"),
			"--lister-kubeconfig=" + c.Kubeconfig,
			"--authentication-kubeconfig=" + c.Kubeconfig,
			"--authorization-kubeconfig=" + c.Kubeconfig,
			"--metrics-service-address=127.0.0.1:" + strconv.Itoa(opGRPC),
			"--port=" + strconv.Itoa(adapterMetrics),
			"--v=0",
		},
		env:   kedaEnv,
		ready: c.kube.externalMetricsReady,
	}
	hpa := component{
		name: "kube-controller-manager",
		args: []string{
			"--kubeconfig=" + c.Kubeconfig,
			"--controllers=horizontal-pod-autoscaler-controller",
			"--secure-port=0", "--leader-elect=false",
			"--horizontal-pod-autoscaler-sync-period=" + opts.HPASyncPeriod.String(),
			"--horizontal-pod-autoscaler-downscale-stabilization=0s",
		},
		// No health endpoint with --secure-port=0: its log says when.
		ready: c.logSays("kube-controller-manager", "Starting HPA controller"),
	}
	for _, comp := range []component{operator, adapter, hpa} {
		if err := c.run(ctx, comp, 90*time.Second); err != nil {
			return c, err
		}
	}
	return c, nil
}

// run starts comp and waits until it is ready, at most timeout.
func (c *Cluster) run(ctx context.Context, comp component, timeout time.Duration) error {
	t0 := time.Now()
	p, err := StartProc(c.opts.Dir, comp.name, filepath.Join(c.opts.BinDir, comp.name), comp.args, comp.env)
	if err != nil {
		return err
	}
	c.procs = append(c.procs, p)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if done, werr := p.Exited(); done {
			return fmt.Errorf("%s exited while starting: %v", comp.name, werr)
		}
		if last = comp.ready(ctx); last == nil {
			c.opts.Logf("cluster: %s ready in %v", comp.name, time.Since(t0).Round(time.Millisecond))
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %w", comp.name, timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Proc returns the process of that name (etcd, kube-apiserver,
// keda-operator, keda-adapter, kube-controller-manager), or nil.
func (c *Cluster) Proc(name string) *Proc {
	for _, p := range c.procs {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Kube returns helpers on the cluster's API.
func (c *Cluster) Kube() *Kube { return c.kube }

// Stop stops every process in reverse start order (the API server before
// etcd, which it would otherwise wait for on SIGTERM).
func (c *Cluster) Stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		if err := c.procs[i].Stop(15 * time.Second); err != nil {
			c.opts.Logf("cluster: stop: %v", err)
		}
	}
	c.procs = nil
}

// Tails returns the last n log lines of the named processes (all when none
// is named), for a failure message.
func (c *Cluster) Tails(n int, names ...string) string {
	var b strings.Builder
	for _, p := range c.procs {
		if len(names) > 0 && !slices.Contains(names, p.Name) {
			continue
		}
		fmt.Fprintf(&b, "\n--- %s (%s), last %d lines:\n%s", p.Name, p.Log, n, p.Tail(n))
	}
	return b.String()
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

func kubeconfig(server string, caPEM []byte, user *testpki.Leaf) []byte {
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: %q, certificate-authority-data: %s}
users:
- name: admin
  user: {client-certificate-data: %s, client-key-data: %s}
contexts:
- name: e2e
  context: {cluster: e2e, user: admin}
current-context: e2e
`, server, b64(caPEM), b64(user.CertPEM), b64(user.KeyPEM))
}

func tlsConfig(caPEM []byte, client *testpki.Leaf) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("CA: no certificate")
	}
	cert, err := tls.X509KeyPair(client.CertPEM, client.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// httpReady is ready when url answers 200.
func httpReady(url string, tlsConf *tls.Config) func(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConf}}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
		}
		return nil
	}
}

// logSays is ready once the named process's log holds text.
func (c *Cluster) logSays(name, text string) func(ctx context.Context) error {
	return func(context.Context) error {
		p := c.Proc(name)
		if p == nil {
			return fmt.Errorf("%s not started", name)
		}
		data, err := os.ReadFile(p.Log)
		if err != nil {
			return err
		}
		if !bytes.Contains(data, []byte(text)) {
			return fmt.Errorf("%s: no %q in its log yet", name, text)
		}
		return nil
	}
}

// freePorts returns n distinct TCP ports on 127.0.0.1 that were free a
// moment ago.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	p, err := freePorts(1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}
