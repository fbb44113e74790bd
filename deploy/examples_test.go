package deploy

import (
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
)

// exampleMetadata checks the keys a trigger of each service cannot do
// without (the services' READMEs), so that an example is not merely
// well-formed YAML.
var exampleMetadata = map[string]func(md map[string]string) string{
	"redis-session": func(md map[string]string) string {
		switch md["mode"] {
		case "", "dbsize":
		case "pattern":
			if md["keyPattern"] == "" {
				return "mode pattern needs keyPattern"
			}
		case "set", "zset", "hash", "list", "counter":
			if md["key"] == "" {
				return "mode " + md["mode"] + " needs key"
			}
		default:
			return "unknown mode " + md["mode"]
		}
		return ""
	},
	"postgres-query": sqlMetadata,
	"oracle-query":   sqlMetadata,
}

func sqlMetadata(md map[string]string) string {
	if (md["query"] == "") == (md["queryName"] == "") {
		return "want exactly one of query and queryName"
	}
	if v, err := strconv.ParseFloat(md["targetQueryValue"], 64); err != nil || v <= 0 {
		return "targetQueryValue must be a number > 0"
	}
	return ""
}

// TestExamples: the examples decode strictly into KEDA's and cert-manager's
// types, cover both trigger types, and every scalerAddress reaches the
// scaler the prod overlay defines, over the mutual TLS it serves.
func TestExamples(t *testing.T) {
	for _, svc := range services(t) {
		t.Run(svc, func(t *testing.T) {
			ex := readDir(t, filepath.Join("kustomize", "examples", svc))
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
					if msg := exampleMetadata[svc](tr.Metadata); msg != "" {
						t.Errorf("ScaledObject %s trigger %d: %s", so.Name, i, msg)
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
func checkMTLSAuth(t *testing.T, ex *objects, so *kedav1alpha1.ScaledObject, i int, tr kedav1alpha1.ScaleTriggers, serverCert *cmv1.Certificate) {
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
