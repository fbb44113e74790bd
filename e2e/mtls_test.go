package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kedascalers/kedascalers/e2e/cluster"
	"github.com/kedascalers/kedascalers/libs/testkit/testpki"
)

// TestMutualTLS: the scaler requires client certificates; KEDA dials it
// with the TriggerAuthentication of deploy/kustomize/examples/keda-client
// and a Secret shaped like the one cert-manager writes for it
// (kedascalers-client-tls: ca.crt, tls.crt, tls.key), and scales. A client
// certificate from another CA gets no scaling, and KEDA's event on the
// ScaledObject names the failure.
func TestMutualTLS(t *testing.T) {
	c := needCluster(t)
	dir := t.TempDir()
	ca, err := testpki.NewCA("kedascalers e2e mTLS CA")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	server, err := ca.Issue("redis-session", nil, "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := server.Write(dir, "tls.crt", "tls.key")
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Issue("keda-external-scaler-client", nil)
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := testpki.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := otherCA.Issue("keda-external-scaler-client", nil)
	if err != nil {
		t.Fatal(err)
	}

	_, rdb, s := redisScaler(t, nil, "TLS_CERT_FILE="+certFile, "TLS_KEY_FILE="+keyFile, "TLS_CLIENT_CA_FILE="+caFile)
	if err := rdb.Set(t.Context(), "worker:sessions", 1, 0).Err(); err != nil {
		t.Fatal(err)
	}
	auth, err := os.ReadFile(filepath.Join("..", "deploy", "kustomize", "examples", "keda-client", "triggerauthentication-mtls.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	secret := func(clientCert *testpki.Leaf) string {
		b64 := base64.StdEncoding.EncodeToString
		return fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: kedascalers-client-tls}
type: kubernetes.io/tls
data: {ca.crt: %s, tls.crt: %s, tls.key: %s}
---
`, b64(ca.CertPEM), b64(clientCert.CertPEM), b64(clientCert.KeyPEM))
	}
	so := deployment("worker", 0) + fmt.Sprintf(`apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: worker}
spec:
  scaleTargetRef: {name: worker}
  pollingInterval: 1
  minReplicaCount: 0
  maxReplicaCount: 5
  triggers:
    - type: external
      metadata:
        scalerAddress: %s
        mode: counter
        key: worker:sessions
        sessionSize: "100"
      authenticationRef: {name: kedascalers-mtls}
`, s.Addr)

	t.Run("right client certificate", func(t *testing.T) {
		ns := newNamespace(t, "")
		apply(t, ns, secret(client)+string(auth)+"\n---\n"+so)
		waitReplicas(t, ns, "worker", 1, 60*time.Second)
		waitReady(t, ns, "worker", 30*time.Second)
	})
	t.Run("wrong client certificate", func(t *testing.T) {
		ns := newNamespace(t, "")
		apply(t, ns, secret(stranger)+string(auth)+"\n---\n"+so)
		// KEDA cannot get the metric spec, so it creates no HPA, marks the
		// ScaledObject not Ready and scales nothing.
		waitCondition(t, ns, "worker", "Ready", "False", 60*time.Second)
		holdReplicas(t, ns, "worker", 0, 5*time.Second)
		got, err := c.Kube().Get(t.Context(), cluster.ScaledObjects, ns, "worker")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("ScaledObject Ready=False: %v", cluster.ConditionOf(got, "Ready")["message"])
		// The cause is named in the operator's log. KEDA v2.21's Warning
		// event for it does not reach the API: its EventEmitter passes the
		// message as the events.k8s.io "action", which the API server
		// refuses ("can have at most 128 characters"); and its text would
		// only say "no metric specs returned from scalers".
		op := c.Proc("keda-operator")
		var cause, rejected bool
		scan := func() error {
			data, err := os.ReadFile(op.Log)
			for _, line := range strings.Split(string(data), "\n") {
				if !strings.Contains(line, ns) {
					continue
				}
				cause = cause || strings.Contains(line, "tls: certificate required")
				rejected = rejected || strings.Contains(line, "Server rejected event")
			}
			return err
		}
		err = cluster.Eventually(t.Context(), 30*time.Second, 200*time.Millisecond, func(context.Context) (bool, error) {
			return cause, scan()
		})
		if err != nil {
			t.Fatalf("the operator's log does not name the TLS failure for %s: %v", ns, err)
		}
		t.Logf("keda-operator log names the cause: tls: certificate required")
		// KEDA v2.21: its event is rejected by the API server. Either that
		// or a Warning event naming the certificate; anything else means
		// KEDA's events changed (fixed, or lost some other way).
		var named string
		var warnings []string
		err = cluster.Eventually(t.Context(), 15*time.Second, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
			if err := scan(); err != nil {
				return false, err
			}
			evs, err := c.Kube().Events(ctx, ns)
			if err != nil {
				return false, err
			}
			warnings = warnings[:0]
			for _, e := range evs {
				if e.Type != "Warning" {
					continue
				}
				warnings = append(warnings, e.Reason+": "+e.Message)
				if strings.Contains(e.Message, "certificate") {
					named = e.Reason + ": " + e.Message
				}
			}
			return rejected || named != "", nil
		})
		switch {
		case named != "":
			t.Logf("KEDA's event names it: %s", named)
		case rejected:
			t.Logf("no Warning event names it: KEDA's event was rejected by the API server (RELIABILITY.md, KEDA behaviours we design around, 3)")
		default:
			t.Errorf("neither \"Server rejected event\" in the operator's log nor a Warning event naming the certificate within 15 s (%v; Warning events: %q): "+
				"KEDA's events changed since v2.21 (RELIABILITY.md, \"KEDA behaviours we design around\", 3): update that section, its report and this test", err, warnings)
		}
	})
}
