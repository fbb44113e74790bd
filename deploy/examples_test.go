package deploy

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
)

// kedaClientDir holds what the examples of every service share: KEDA's
// client certificate and the TriggerAuthentication that hands it to KEDA.
var kedaClientDir = filepath.Join("kustomize", "examples", "keda-client")

// documentedKeys returns the words the service's README gives in
// backticks: an example's metadata keys must be among them, so that an
// example is not merely well-formed YAML.
func documentedKeys(t *testing.T, svc string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "services", svc, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, m := range regexp.MustCompile("`([A-Za-z][A-Za-z0-9]*)`").FindAllStringSubmatch(string(data), -1) {
		keys[m[1]] = true
	}
	return keys
}

// TestExamples: the examples decode strictly into KEDA's and cert-manager's
// types, cover both trigger types, and every scalerAddress reaches the
// scaler the prod overlay defines, over the mutual TLS it serves.
func TestExamples(t *testing.T) {
	for _, svc := range services(t) {
		t.Run(svc, func(t *testing.T) {
			ex := readDir(t, filepath.Join("kustomize", "examples", svc))
			shared := readDir(t, kedaClientDir)
			ex.certificates = append(ex.certificates, shared.certificates...)
			ex.triggerAuths = append(ex.triggerAuths, shared.triggerAuths...)
			if len(shared.scaledObjects) != 0 {
				t.Errorf("%s holds ScaledObjects: they belong to a service's examples", kedaClientDir)
			}
			documented := documentedKeys(t, svc)
			prod := render(t, filepath.Join("kustomize", "overlays", "prod", svc))
			s := prod.service(t)
			container := prod.deployment(t).Spec.Template.Spec.Containers[0]
			mtls := prod.effectiveEnv(container)["TLS_CLIENT_CA_FILE"] != ""
			var serverCert *cmv1.Certificate
			if len(prod.certificates) == 1 {
				serverCert = prod.certificates[0]
			}
			grpc := int32(0)
			for _, p := range s.Spec.Ports {
				if p.Name == "grpc" {
					grpc = p.Port
				}
			}
			// The forms of the Service's address KEDA (in its own
			// namespace) can dial.
			hosts := []string{
				s.Name + "." + s.Namespace,
				s.Name + "." + s.Namespace + ".svc",
				s.Name + "." + s.Namespace + ".svc.cluster.local",
			}

			types := map[string]bool{}
			targets := map[string]string{}
			for _, so := range ex.scaledObjects {
				if prev, ok := targets[so.Spec.ScaleTargetRef.Name]; ok {
					t.Errorf("ScaledObjects %s and %s scale the same workload: KEDA refuses the second", prev, so.Name)
				}
				targets[so.Spec.ScaleTargetRef.Name] = so.Name
				if len(so.Spec.Triggers) == 0 {
					t.Errorf("ScaledObject %s: no triggers", so.Name)
				}
				for i, tr := range so.Spec.Triggers {
					if tr.Type != "external" && tr.Type != "external-push" {
						t.Errorf("ScaledObject %s trigger %d: type %q: want external or external-push", so.Name, i, tr.Type)
						continue
					}
					types[tr.Type] = true
					for k := range tr.Metadata {
						if k != "scalerAddress" && !documented[k] {
							t.Errorf("ScaledObject %s trigger %d: metadata key %s is not in services/%s/README.md", so.Name, i, k, svc)
						}
					}

					addr := tr.Metadata["scalerAddress"]
					host, port, err := net.SplitHostPort(addr)
					if err != nil || !slices.Contains(hosts, host) || port != strconv.Itoa(int(grpc)) {
						t.Errorf("ScaledObject %s trigger %d: scalerAddress %q: the prod overlay's scaler is Service %s in namespace %s, gRPC port %d (%s:%d)",
							so.Name, i, addr, s.Name, s.Namespace, grpc, hosts[2], grpc)
						continue
					}
					if serverCert != nil && !slices.Contains(serverCert.Spec.DNSNames, host) {
						t.Errorf("ScaledObject %s trigger %d: %s is not a name of the scaler's certificate %v: KEDA's TLS check would fail",
							so.Name, i, host, serverCert.Spec.DNSNames)
					}
					if mtls {
						checkMTLSAuth(t, ex, so, i, tr, serverCert)
					}
				}
			}
			for _, want := range []string{"external", "external-push"} {
				if !types[want] {
					t.Errorf("no example ScaledObject with a trigger of type %s", want)
				}
			}
		})
	}
}

// checkMTLSAuth: a trigger to a scaler that requires client certificates
// names a TriggerAuthentication that gives KEDA a CA and a client
// certificate, from a Certificate of the scaler's own issuer.
func checkMTLSAuth(t *testing.T, ex *objects, so *scaledObject, i int, tr scaleTrigger, serverCert *cmv1.Certificate) {
	t.Helper()
	ref := tr.AuthenticationRef
	if ref == nil || (ref.Kind != "" && ref.Kind != "TriggerAuthentication") {
		t.Errorf("ScaledObject %s trigger %d: the prod scaler requires client certificates: want an authenticationRef to a TriggerAuthentication", so.Name, i)
		return
	}
	ta := ex.triggerAuth(ref.Name)
	if ta == nil {
		t.Errorf("ScaledObject %s trigger %d: TriggerAuthentication %s is not among the examples", so.Name, i, ref.Name)
		return
	}
	secrets := map[string]string{} // parameter -> secret
	for _, r := range ta.Spec.SecretTargetRef {
		secrets[r.Parameter] = r.Name
	}
	for _, p := range []string{"caCert", "tlsClientCert", "tlsClientKey"} {
		secret, ok := secrets[p]
		if !ok {
			t.Errorf("TriggerAuthentication %s: no %s parameter", ta.Name, p)
			continue
		}
		c := ex.certificateForSecret(secret)
		switch {
		case c == nil:
			t.Errorf("TriggerAuthentication %s: %s from Secret %s, which no example Certificate makes", ta.Name, p, secret)
		case !slices.Contains(c.Spec.Usages, cmv1.UsageClientAuth):
			t.Errorf("Certificate %s: usages %v lack client auth", c.Name, c.Spec.Usages)
		case serverCert != nil && c.Spec.IssuerRef != serverCert.Spec.IssuerRef:
			t.Errorf("Certificate %s: issuer %+v differs from the scaler's %+v: the scaler trusts only its own CA", c.Name, c.Spec.IssuerRef, serverCert.Spec.IssuerRef)
		}
	}
}
