package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kedascalers/kedascalers/e2e/cluster"
)

// CRDsEnv names the environment variable that lists, separated by ':', the
// CRD files to install (KEDA's, cert-manager's, the Prometheus Operator's).
const CRDsEnv = "KEDASCALERS_E2E_CRDS"

// KeepEnv set to 1 keeps the cluster's directory (PKI, etcd data, logs)
// even when every test passed; it is always kept after a failure.
const KeepEnv = "KEDASCALERS_E2E_KEEP"

var (
	// kube is the shared cluster, nil when the scenarios are skipped.
	kube *cluster.Cluster
	// skipReason says why kube is nil.
	skipReason string
	// scalersDir holds our scalers' binaries.
	scalersDir string
	// clusterDir holds the cluster's files and every process's log.
	clusterDir string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	bin := os.Getenv(cluster.BinDirEnv)
	scalersDir = os.Getenv(cluster.ScalersDirEnv)
	switch {
	case bin == "":
		skipReason = "$" + cluster.BinDirEnv + " is not set: the scenarios run through make e2e, which builds the control plane and KEDA"
		return m.Run()
	case scalersDir == "":
		skipReason = "$" + cluster.ScalersDirEnv + " is not set: make e2e sets it to bin/ after make build"
		return m.Run()
	}
	var err error
	clusterDir, err = os.MkdirTemp("", "kedascalers-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	var crds []string
	for f := range strings.SplitSeq(os.Getenv(CRDsEnv), ":") {
		if f != "" {
			crds = append(crds, f)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	kube, err = cluster.Start(ctx, cluster.Options{
		BinDir:        bin,
		Dir:           clusterDir,
		CRDFiles:      crds,
		HPASyncPeriod: time.Second,
		Logf:          func(f string, a ...any) { fmt.Printf("e2e: "+f+"\n", a...) },
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: cluster: %v\ne2e: files kept in %s\n", err, clusterDir)
		return 1
	}
	fmt.Printf("e2e: cluster ready in %v (files in %s)\n", time.Since(t0).Round(time.Millisecond), clusterDir)
	code := m.Run()
	t1 := time.Now()
	kube.Stop()
	fmt.Printf("e2e: cluster stopped in %v\n", time.Since(t1).Round(time.Millisecond))
	if code != 0 || os.Getenv(KeepEnv) == "1" {
		fmt.Printf("e2e: logs kept in %s\n", clusterDir)
	} else {
		_ = os.RemoveAll(clusterDir)
	}
	return code
}

// needCluster skips the test when no cluster runs, saying why.
func needCluster(t *testing.T) *cluster.Cluster {
	t.Helper()
	if kube == nil {
		t.Skip(skipReason)
	}
	return kube
}

// logDir is where a test's own processes (scalers) log: the cluster's
// directory, kept after a failure.
func logDir(t *testing.T) string {
	t.Helper()
	if clusterDir == "" {
		return t.TempDir()
	}
	d := filepath.Join(clusterDir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}
