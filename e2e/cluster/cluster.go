package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

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
	p, err := newPorts()
	if err != nil {
		return c, err
	}
	k, err := newPKI(opts.Dir)
	if err != nil {
		return c, err
	}
	adminTLS, err := c.connect(p.apiURL(), k)
	if err != nil {
		return c, err
	}
	if err := c.run(ctx, etcd(opts.Dir, p), 30*time.Second); err != nil {
		return c, err
	}
	if err := c.run(ctx, apiserver(opts.Dir, p, k, adminTLS), 90*time.Second); err != nil {
		return c, err
	}

	t0 := time.Now()
	if err := c.kube.ApplyFiles(ctx, "", opts.CRDFiles...); err != nil {
		return c, fmt.Errorf("CRDs: %w", err)
	}
	if err := c.kube.WaitCRDsEstablished(ctx, 60*time.Second); err != nil {
		return c, err
	}
	if err := c.kube.Apply(ctx, "", []byte(kedaObjects(p.adapter))); err != nil {
		return c, fmt.Errorf("KEDA namespace and APIService: %w", err)
	}
	opts.Logf("cluster: %d CRD files applied and established, KEDA's namespace and APIService in %v", len(opts.CRDFiles), time.Since(t0).Round(time.Millisecond))

	for _, comp := range []component{c.kedaOperator(p, k.kedaCerts), c.kedaAdapter(p, k.kedaCerts), c.hpaController(opts.HPASyncPeriod)} {
		if err := c.run(ctx, comp, 90*time.Second); err != nil {
			return c, err
		}
	}
	return c, nil
}

// connect sets the cluster's clients and kubeconfig file, as the admin of
// k, for the API server at apiURL; it returns the admin's TLS config.
func (c *Cluster) connect(apiURL string, k *pki) (*tls.Config, error) {
	c.Config = &rest.Config{
		Host:            apiURL,
		TLSClientConfig: rest.TLSClientConfig{CAData: k.caPEM, CertData: k.admin.CertPEM, KeyData: k.admin.KeyPEM},
		QPS:             200,
		Burst:           400,
		Timeout:         30 * time.Second,
	}
	c.Kubeconfig = filepath.Join(c.opts.Dir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kubeconfig(apiURL, k.caPEM, k.admin), 0o600); err != nil {
		return nil, fmt.Errorf("write kubeconfig: %w", err)
	}
	var err error
	if c.Client, err = dynamic.NewForConfig(c.Config); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if c.kube, err = newKube(c.Config, c.Client); err != nil {
		return nil, err
	}
	return tlsConfig(k.caPEM, k.admin)
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

// Procs returns the cluster's processes in start order.
func (c *Cluster) Procs() []*Proc { return slices.Clone(c.procs) }

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
