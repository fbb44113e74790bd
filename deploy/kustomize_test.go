package deploy

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// What every scaler's manifests promise (deploy/README.md).
const (
	nonrootUID    = 65532
	grpcPort      = 9090
	metricsPort   = 8080
	kedaNamespace = "keda"
	promNamespace = "monitoring"
	// nsLabel is the label Kubernetes puts on every namespace.
	nsLabel = "kubernetes.io/metadata.name"
	// readinessService is the grpc.health.v1 service readiness asks for.
	readinessService = "externalscaler.ExternalScaler"
	// defaultShutdown is SHUTDOWN_TIMEOUT's default (libs/scalerkit/config).
	defaultShutdown = 10 * time.Second
)

// pinnedTag is a release tag's version part (services/<name>/v1.2.3).
var pinnedTag = regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`)

// TestLayout: every service has its base, its overlay in every
// environment and its examples, and nothing is left over for a service
// that no longer exists. (What a service may have outside its folder, and
// nothing more: glue_test.go.)
func TestLayout(t *testing.T) {
	svcs := services(t)
	want := []string{
		"kustomize/base/%s/kustomization.yaml",
		"kustomize/examples/%s",
	}
	for _, env := range environments {
		want = append(want, "kustomize/overlays/"+env+"/%s/kustomization.yaml")
	}
	for _, svc := range svcs {
		for _, w := range want {
			p := strings.ReplaceAll(w, "%s", svc)
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s: %v", svc, err)
			}
		}
	}
	dirs := []string{"kustomize/base", "kustomize/examples"}
	for _, env := range environments {
		dirs = append(dirs, "kustomize/overlays/"+env)
	}
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			p := filepath.Join(d, e.Name())
			if e.IsDir() && !slices.Contains(svcs, e.Name()) && p != kedaClientDir {
				t.Errorf("%s: no services/%s/go.mod: a scaler that does not exist", p, e.Name())
			}
		}
	}
}

// TestBases: each base renders, decodes strictly and has the posture of
// every scaler, before any overlay.
func TestBases(t *testing.T) {
	for _, svc := range services(t) {
		t.Run(svc, func(t *testing.T) {
			o := render(t, filepath.Join("kustomize", "base", svc))
			checkScaler(t, o, svc, false)
		})
	}
}

// TestOverlays: each overlay renders, decodes strictly, keeps the posture,
// pins its image to a release and puts everything in one namespace.
func TestOverlays(t *testing.T) {
	for _, env := range environments {
		for _, svc := range services(t) {
			t.Run(env+"/"+svc, func(t *testing.T) {
				o := render(t, filepath.Join("kustomize", "overlays", env, svc))
				checkScaler(t, o, svc, true)
				if ns := o.namespaces(); len(ns) != 1 || ns[0] == "" {
					t.Errorf("namespaces %q: want every object in the overlay's one namespace", ns)
				}
				checkReplicasAndRollout(t, o.deployment(t), env)
			})
		}
	}
}

// checkReplicasAndRollout holds the deploy advice of deploy/README.md,
// built on what make e2e-lifecycle measured under KEDA (RELIABILITY.md,
// "KEDA behaviours we design around"): staging and prod run at least two
// replicas, so that a poll never fails while one is down and KEDA never
// closes its scaler; every overlay rolls one new pod in before an old one
// goes (maxSurge 1, maxUnavailable 0), so that a rollout never leaves
// fewer replicas answering.
func checkReplicasAndRollout(t *testing.T, d *appsv1.Deployment, env string) {
	t.Helper()
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	if env != "dev" && replicas < 2 {
		t.Errorf("%s: %d replica(s): want at least 2 (a single replica loses push after a crash: RELIABILITY.md, KEDA behaviours we design around, 2)", env, replicas)
	}
	s := d.Spec.Strategy
	ru := s.RollingUpdate
	if s.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil || ru.MaxUnavailable == nil || ru.MaxSurge == nil {
		t.Fatalf("%s: strategy %+v: want RollingUpdate with maxSurge 1 and maxUnavailable 0", env, s)
	}
	if ru.MaxUnavailable.String() != "0" || ru.MaxSurge.String() != "1" {
		t.Errorf("%s: rollingUpdate maxSurge %s, maxUnavailable %s: want 1 and 0 (a new replica ready before an old one stops)", env, ru.MaxSurge.String(), ru.MaxUnavailable.String())
	}
}

// TestProdServesMutualTLS: the prod overlays use the tls, servicemonitor
// and alerts components, and the examples rely on the first.
func TestProdServesMutualTLS(t *testing.T) {
	for _, svc := range services(t) {
		t.Run(svc, func(t *testing.T) {
			o := render(t, filepath.Join("kustomize", "overlays", "prod", svc))
			env := o.effectiveEnv(o.deployment(t).Spec.Template.Spec.Containers[0])
			for _, k := range []string{"TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CLIENT_CA_FILE"} {
				if env[k] == "" {
					t.Errorf("%s is not set: prod must serve mutual TLS (components/tls)", k)
				}
			}
			if len(o.certificates) != 1 || len(o.serviceMonitors) != 1 || len(o.prometheusRules) != 1 {
				t.Errorf("%d Certificates, %d ServiceMonitors, %d PrometheusRules: want one of each", len(o.certificates), len(o.serviceMonitors), len(o.prometheusRules))
			}
		})
	}
}

// checkScaler checks one scaler's rendered objects. pinned: the image must
// carry a release tag (overlays) rather than none (bases).
func checkScaler(t *testing.T, o *objects, svc string, pinned bool) {
	t.Helper()
	for _, word := range []string{"SERVICE", "NAMESPACE"} {
		if hasWord(o.yaml, word) {
			t.Errorf("the placeholder %s is left in the output: a component's replacement did not apply", word)
		}
	}
	d := o.deployment(t)
	if d.Name != svc {
		t.Errorf("Deployment %q: want %q", d.Name, svc)
	}
	checkDeployment(t, o, d, svc, pinned)
	checkService(t, o, d)
	checkNetworkPolicies(t, o, d)
	checkPDBs(t, o, d)
	checkCertificates(t, o, d)
	checkServiceMonitors(t, o)
}

func checkDeployment(t *testing.T, o *objects, d *appsv1.Deployment, svc string, pinned bool) {
	t.Helper()
	pod := d.Spec.Template.Spec
	if d.Spec.Replicas != nil && *d.Spec.Replicas < 1 {
		t.Errorf("replicas %d: want at least 1", *d.Spec.Replicas)
	}
	if !selects(t, d.Spec.Selector, d.Spec.Template.Labels) {
		t.Errorf("the Deployment's selector does not select its own pods")
	}

	// The pod.
	psc := pod.SecurityContext
	switch {
	case psc == nil:
		t.Fatalf("no pod securityContext")
	case psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot:
		t.Errorf("pod runAsNonRoot is not true")
	case psc.RunAsUser == nil || *psc.RunAsUser != nonrootUID:
		t.Errorf("pod runAsUser %v: want %d (distroless nonroot)", psc.RunAsUser, nonrootUID)
	case psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("pod seccompProfile %v: want RuntimeDefault", psc.SeccompProfile)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("pod automountServiceAccountToken is not false")
	}
	if sa := o.serviceAccount(pod.ServiceAccountName); sa == nil {
		t.Errorf("serviceAccountName %q: no such ServiceAccount in the render", pod.ServiceAccountName)
	} else if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Errorf("ServiceAccount %s: automountServiceAccountToken is not false", sa.Name)
	}
	if pod.EnableServiceLinks == nil || *pod.EnableServiceLinks {
		t.Errorf("enableServiceLinks is not false: Services' _HOST/_PORT variables would mix with the scaler's")
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Errorf("the pod shares a host namespace")
	}
	if len(pod.InitContainers) != 0 || len(pod.Containers) != 1 || pod.Containers[0].Name != "scaler" {
		t.Fatalf("want exactly one container, named scaler (the components patch it by that name)")
	}

	// The container.
	c := pod.Containers[0]
	csc := c.SecurityContext
	switch {
	case csc == nil:
		t.Fatalf("no container securityContext")
	case csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation:
		t.Errorf("allowPrivilegeEscalation is not false")
	case csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem:
		t.Errorf("readOnlyRootFilesystem is not true")
	case csc.Capabilities == nil || !slices.Contains(csc.Capabilities.Drop, "ALL") || len(csc.Capabilities.Add) != 0:
		t.Errorf("capabilities %v: want drop [ALL] and nothing added", csc.Capabilities)
	case csc.Privileged != nil && *csc.Privileged:
		t.Errorf("privileged")
	case csc.RunAsUser != nil && *csc.RunAsUser != nonrootUID:
		t.Errorf("container runAsUser %d overrides the pod's %d", *csc.RunAsUser, nonrootUID)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := c.Resources.Requests[r]
		limit, okLimit := c.Resources.Limits[r]
		if !okReq || !okLimit {
			t.Errorf("resources: want a request and a limit of %s", r)
		} else if req.Cmp(limit) > 0 {
			t.Errorf("resources: %s request %s above its limit %s", r, req.String(), limit.String())
		}
	}

	// A base leaves the repository and the tag to components/image.
	name, tag, _ := strings.Cut(c.Image, ":")
	if repo := imageRepository(t); !pinned {
		repo = "REPOSITORY"
	} else if name != repo+"/"+svc {
		t.Errorf("image %q: want %s/%s", c.Image, repo, svc)
	}
	if pinned && !pinnedTag.MatchString(tag) && !strings.Contains(c.Image, "@sha256:") {
		t.Errorf("image %q: want a release tag (vX.Y.Z) or a digest", c.Image)
	}

	// Configuration: the ConfigMap the render defines, then the operators'
	// Secret, which must be required; a backend without credentials
	// (components/no-credentials) reads the ConfigMap only.
	if len(c.EnvFrom) < 1 || len(c.EnvFrom) > 2 || c.EnvFrom[0].ConfigMapRef == nil || (len(c.EnvFrom) == 2 && c.EnvFrom[1].SecretRef == nil) {
		t.Fatalf("envFrom %v: want a configMapRef, then a secretRef unless the backend has no credentials (the Secret wins)", c.EnvFrom)
	}
	if o.configMap(c.EnvFrom[0].ConfigMapRef.Name) == nil {
		t.Errorf("envFrom ConfigMap %q is not in the render", c.EnvFrom[0].ConfigMapRef.Name)
	}
	if len(c.EnvFrom) == 2 {
		if s := c.EnvFrom[1].SecretRef; s.Name != svc+"-credentials" || (s.Optional != nil && *s.Optional) {
			t.Errorf("envFrom Secret %q (optional %v): want %s-credentials, required", s.Name, s.Optional, svc)
		}
	}
	env := o.effectiveEnv(c)

	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["grpc"] != grpcPort || ports["metrics"] != metricsPort {
		t.Errorf("container ports %v: want grpc %d and metrics %d", ports, grpcPort, metricsPort)
	}
	for k, want := range map[string]int32{"GRPC_ADDR": grpcPort, "HTTP_ADDR": metricsPort} {
		if v, ok := env[k]; ok {
			if _, p, err := net.SplitHostPort(v); err != nil || p != strconv.Itoa(int(want)) {
				t.Errorf("%s=%q: the container port, probes and Service say %d", k, v, want)
			}
		}
	}

	shutdown := defaultShutdown
	if v, ok := env["SHUTDOWN_TIMEOUT"]; ok {
		var err error
		if shutdown, err = time.ParseDuration(v); err != nil {
			t.Errorf("SHUTDOWN_TIMEOUT=%q: %v", v, err)
		}
	}
	grace := 30 * time.Second // the Kubernetes default
	if g := pod.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	if grace <= shutdown {
		t.Errorf("terminationGracePeriodSeconds %v: want more than SHUTDOWN_TIMEOUT %v, or the kubelet kills the drain", grace, shutdown)
	}

	// Probes: native gRPC on a plaintext port; the kubelet cannot probe
	// gRPC over TLS, so with TLS they must use the HTTP port.
	tls := env["TLS_CERT_FILE"] != ""
	for _, p := range []struct {
		kind, service, path string
		probe               *corev1.Probe
	}{
		{"liveness", "", "/healthz", c.LivenessProbe},
		{"readiness", readinessService, "/readyz", c.ReadinessProbe},
	} {
		switch {
		case p.probe == nil:
			t.Errorf("no %s probe", p.kind)
		case tls:
			h := p.probe.HTTPGet
			if p.probe.GRPC != nil || h == nil || h.Path != p.path || containerPort(c, h.Port.StrVal, h.Port.IntVal) != metricsPort {
				t.Errorf("%s probe %+v: with TLS on gRPC, want httpGet %s on the metrics port", p.kind, p.probe.ProbeHandler, p.path)
			}
		default:
			g := p.probe.GRPC
			if g == nil || g.Port != grpcPort || (p.service != "" && (g.Service == nil || *g.Service != p.service)) {
				t.Errorf("%s probe %+v: want grpc on port %d (service %q)", p.kind, p.probe.ProbeHandler, grpcPort, p.service)
			}
		}
	}

	if tls {
		checkTLSMounts(t, o, pod, c, env)
	}
}

// checkTLSMounts: the TLS files come from a cert-manager Certificate's
// secret, mounted read-only as a directory (a subPath mount would never
// see a renewal).
func checkTLSMounts(t *testing.T, o *objects, pod corev1.PodSpec, c corev1.Container, env map[string]string) {
	t.Helper()
	for _, k := range []string{"TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CLIENT_CA_FILE"} {
		file := env[k]
		if file == "" {
			t.Errorf("%s is not set: the tls component serves mutual TLS", k)
			continue
		}
		var mount *corev1.VolumeMount
		for i, m := range c.VolumeMounts {
			if filepath.Dir(file) == m.MountPath {
				mount = &c.VolumeMounts[i]
			}
		}
		if mount == nil {
			t.Errorf("%s=%s: no volume mounted at %s", k, file, filepath.Dir(file))
			continue
		}
		if !mount.ReadOnly || mount.SubPath != "" || mount.SubPathExpr != "" {
			t.Errorf("%s: mount %+v: want read-only, without subPath (renewals must reach the files)", k, *mount)
		}
		for _, v := range pod.Volumes {
			if v.Name != mount.Name {
				continue
			}
			switch {
			case v.Secret == nil:
				t.Errorf("%s: volume %s is not a Secret", k, v.Name)
			case o.certificateForSecret(v.Secret.SecretName) == nil:
				t.Errorf("%s: Secret %s is made by no Certificate in the render", k, v.Secret.SecretName)
			case v.Secret.DefaultMode == nil || *v.Secret.DefaultMode&0o007 != 0:
				t.Errorf("%s: Secret volume mode %v: the private key must not be world-readable", k, v.Secret.DefaultMode)
			}
		}
	}
}

// checkService: headless, selecting the scaler's pods, with the gRPC and
// metrics ports.
func checkService(t *testing.T, o *objects, d *appsv1.Deployment) {
	t.Helper()
	s := o.service(t)
	if s.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("Service %s: clusterIP %q: want None (headless: KEDA balances over the pods itself)", s.Name, s.Spec.ClusterIP)
	}
	if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("Service %s: selector %v does not select the scaler's pods", s.Name, s.Spec.Selector)
	}
	c := d.Spec.Template.Spec.Containers[0]
	want := map[string]int32{"grpc": grpcPort, "metrics": metricsPort}
	for _, p := range s.Spec.Ports {
		target := containerPort(c, p.TargetPort.StrVal, p.TargetPort.IntVal)
		if p.TargetPort == (intstr.IntOrString{}) {
			target = containerPort(c, "", p.Port)
		}
		if want[p.Name] != p.Port || target != p.Port {
			t.Errorf("Service %s: port %s %d -> %d: want grpc %d and metrics %d, to the same container ports", s.Name, p.Name, p.Port, target, grpcPort, metricsPort)
		}
		delete(want, p.Name)
	}
	if len(want) != 0 {
		t.Errorf("Service %s: missing ports %v", s.Name, want)
	}
}

// checkNetworkPolicies: ingress restricted to gRPC from KEDA's namespace
// and metrics from the monitoring namespace; nothing else gets in.
func checkNetworkPolicies(t *testing.T, o *objects, d *appsv1.Deployment) {
	t.Helper()
	if len(o.networkPolicies) == 0 {
		t.Fatalf("no NetworkPolicy")
	}
	c := d.Spec.Template.Spec.Containers[0]
	allowed := map[int32][]string{} // port -> namespaces admitted
	for _, np := range o.networkPolicies {
		if !selects(t, &np.Spec.PodSelector, d.Spec.Template.Labels) {
			continue
		}
		if !slices.Contains(np.Spec.PolicyTypes, "Ingress") {
			t.Errorf("NetworkPolicy %s: policyTypes %v: want Ingress", np.Name, np.Spec.PolicyTypes)
		}
		for i, rule := range np.Spec.Ingress {
			if len(rule.From) == 0 || len(rule.Ports) == 0 {
				t.Errorf("NetworkPolicy %s: ingress rule %d admits every source or every port", np.Name, i)
				continue
			}
			var namespaces []string
			for _, peer := range rule.From {
				ns := peer.NamespaceSelector
				switch {
				case peer.IPBlock != nil:
					t.Errorf("NetworkPolicy %s: ingress rule %d admits an ipBlock", np.Name, i)
				case ns == nil:
					t.Errorf("NetworkPolicy %s: ingress rule %d admits pods of the scaler's own namespace", np.Name, i)
				case len(ns.MatchExpressions) != 0 || len(ns.MatchLabels) != 1 || ns.MatchLabels[nsLabel] == "":
					t.Errorf("NetworkPolicy %s: ingress rule %d: namespaceSelector %v: want exactly %s: <namespace>", np.Name, i, ns, nsLabel)
				default:
					namespaces = append(namespaces, ns.MatchLabels[nsLabel])
				}
			}
			for _, p := range rule.Ports {
				if p.Port == nil {
					t.Errorf("NetworkPolicy %s: ingress rule %d admits every port", np.Name, i)
					continue
				}
				n := containerPort(c, p.Port.StrVal, p.Port.IntVal)
				allowed[n] = append(allowed[n], namespaces...)
			}
		}
	}
	want := map[int32][]string{grpcPort: {kedaNamespace}, metricsPort: {promNamespace}}
	if len(allowed) != len(want) {
		t.Errorf("NetworkPolicies admit %v: want exactly %v", allowed, want)
	}
	for port, ns := range want {
		slices.Sort(allowed[port])
		if !slices.Equal(slices.Compact(allowed[port]), ns) {
			t.Errorf("NetworkPolicies admit port %d from %v: want only from namespace %v", port, allowed[port], ns)
		}
	}
}

// checkPDBs: the budget covers the pods and never blocks a drain for good.
func checkPDBs(t *testing.T, o *objects, d *appsv1.Deployment) {
	t.Helper()
	if len(o.pdbs) != 1 {
		t.Fatalf("%d PodDisruptionBudgets: want one", len(o.pdbs))
	}
	p := o.pdbs[0]
	if !selects(t, p.Spec.Selector, d.Spec.Template.Labels) {
		t.Errorf("PodDisruptionBudget %s does not select the scaler's pods", p.Name)
	}
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	switch {
	case p.Spec.MinAvailable != nil && p.Spec.MaxUnavailable != nil:
		t.Errorf("PodDisruptionBudget %s: both minAvailable and maxUnavailable", p.Name)
	case p.Spec.MinAvailable != nil:
		if m := p.Spec.MinAvailable; m.Type != intstr.Int || m.IntVal < 1 || m.IntVal >= replicas {
			t.Errorf("PodDisruptionBudget %s: minAvailable %s with %d replicas: want at least 1 and fewer than the replicas, or no pod can ever be evicted", p.Name, m.String(), replicas)
		}
	case p.Spec.MaxUnavailable != nil:
		if m := p.Spec.MaxUnavailable; m.Type != intstr.Int || m.IntVal < 1 {
			t.Errorf("PodDisruptionBudget %s: maxUnavailable %s: want at least 1", p.Name, m.String())
		}
	default:
		t.Errorf("PodDisruptionBudget %s: neither minAvailable nor maxUnavailable", p.Name)
	}
}

// checkCertificates: each Certificate is the scaler's serving certificate,
// valid for every form of its Service's address.
func checkCertificates(t *testing.T, o *objects, d *appsv1.Deployment) {
	t.Helper()
	if len(o.certificates) == 0 {
		return
	}
	s := o.service(t)
	for _, c := range o.certificates {
		want := []string{s.Name}
		if s.Namespace != "" {
			want = append(want, s.Name+"."+s.Namespace, s.Name+"."+s.Namespace+".svc", s.Name+"."+s.Namespace+".svc.cluster.local")
		}
		for _, name := range want {
			if !slices.Contains(c.Spec.DNSNames, name) {
				t.Errorf("Certificate %s: dnsNames %v lack %s", c.Name, c.Spec.DNSNames, name)
			}
		}
		if c.Spec.IssuerRef.Name == "" || (c.Spec.IssuerRef.Kind != "Issuer" && c.Spec.IssuerRef.Kind != "ClusterIssuer") {
			t.Errorf("Certificate %s: issuerRef %+v: want an Issuer or ClusterIssuer", c.Name, c.Spec.IssuerRef)
		}
		if !slices.Contains(c.Spec.Usages, cmv1.UsageServerAuth) {
			t.Errorf("Certificate %s: usages %v lack server auth", c.Name, c.Spec.Usages)
		}
		if c.Spec.PrivateKey == nil || c.Spec.PrivateKey.RotationPolicy != cmv1.RotationPolicyAlways {
			t.Errorf("Certificate %s: want privateKey.rotationPolicy Always (a new key at each renewal)", c.Name)
		}
		mounted := false
		for _, v := range d.Spec.Template.Spec.Volumes {
			mounted = mounted || v.Secret != nil && v.Secret.SecretName == c.Spec.SecretName
		}
		if !mounted {
			t.Errorf("Certificate %s: its secret %s is not mounted by the Deployment", c.Name, c.Spec.SecretName)
		}
	}
}

// checkServiceMonitors: each ServiceMonitor scrapes the scaler's Service
// on its metrics port.
func checkServiceMonitors(t *testing.T, o *objects) {
	t.Helper()
	if len(o.serviceMonitors) == 0 {
		return
	}
	s := o.service(t)
	for _, m := range o.serviceMonitors {
		if !selects(t, &m.Spec.Selector, s.Labels) {
			t.Errorf("ServiceMonitor %s: selector %v does not select Service %s (labels %v)", m.Name, m.Spec.Selector, s.Name, s.Labels)
		}
		if len(m.Spec.Endpoints) == 0 {
			t.Errorf("ServiceMonitor %s: no endpoints", m.Name)
		}
		for _, e := range m.Spec.Endpoints {
			if e.Port != "metrics" {
				t.Errorf("ServiceMonitor %s: endpoint port %v: want metrics", m.Name, e.Port)
			}
		}
	}
}

// selects reports whether the label selector is non-empty and matches the
// labels.
func selects(t *testing.T, sel *metav1.LabelSelector, l map[string]string) bool {
	t.Helper()
	if sel == nil || len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Errorf("selector %v: %v", sel, err)
		return false
	}
	return s.Matches(labels.Set(l))
}
