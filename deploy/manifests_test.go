package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// manifests are the decoded objects of one kustomization.
type manifests struct {
	deployments     []*appsv1.Deployment
	services        []*corev1.Service
	configMaps      map[string]*corev1.ConfigMap
	secrets         map[string]*corev1.Secret
	pdbs            []*policyv1.PodDisruptionBudget
	namespaces      []*corev1.Namespace
	serviceAccounts map[string]*corev1.ServiceAccount
	networkPolicies []*networkingv1.NetworkPolicy
	hpas            []*autoscalingv2.HorizontalPodAutoscaler
	certificates    []*certificate
	issuers         []*issuer
	serviceMonitors []*serviceMonitor
	rules           []*prometheusRule
}

func newManifests() *manifests {
	return &manifests{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		serviceAccounts: map[string]*corev1.ServiceAccount{}}
}

// decode splits data into YAML documents and decodes each strictly (unknown
// or duplicate fields are errors) into the API type of its kind.
func (m *manifests) decode(t *testing.T, name string, data []byte) {
	t.Helper()
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("%s document %d: %v", name, i, err)
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 Deployment":
			d := &appsv1.Deployment{}
			m.deployments, obj = append(m.deployments, d), d
		case "v1 Service":
			s := &corev1.Service{}
			m.services, obj = append(m.services, s), s
		case "v1 ConfigMap":
			c := &corev1.ConfigMap{}
			obj = c
			defer func() { m.configMaps[c.Name] = c }()
		case "v1 Secret":
			s := &corev1.Secret{}
			obj = s
			defer func() { m.secrets[s.Name] = s }()
		case "policy/v1 PodDisruptionBudget":
			p := &policyv1.PodDisruptionBudget{}
			m.pdbs, obj = append(m.pdbs, p), p
		case "v1 Namespace":
			n := &corev1.Namespace{}
			m.namespaces, obj = append(m.namespaces, n), n
		case "v1 ServiceAccount":
			a := &corev1.ServiceAccount{}
			obj = a
			defer func() { m.serviceAccounts[a.Name] = a }()
		case "networking.k8s.io/v1 NetworkPolicy":
			p := &networkingv1.NetworkPolicy{}
			m.networkPolicies, obj = append(m.networkPolicies, p), p
		case "autoscaling/v2 HorizontalPodAutoscaler":
			h := &autoscalingv2.HorizontalPodAutoscaler{}
			m.hpas, obj = append(m.hpas, h), h
		case "cert-manager.io/v1 Certificate":
			c := &certificate{}
			m.certificates, obj = append(m.certificates, c), c
		case "cert-manager.io/v1 Issuer":
			i := &issuer{}
			m.issuers, obj = append(m.issuers, i), i
		case "monitoring.coreos.com/v1 ServiceMonitor":
			sm := &serviceMonitor{}
			m.serviceMonitors, obj = append(m.serviceMonitors, sm), sm
		case "monitoring.coreos.com/v1 PrometheusRule":
			r := &prometheusRule{}
			m.rules, obj = append(m.rules, r), r
		default:
			t.Fatalf("%s document %d: unexpected kind %q %q", name, i, tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("%s document %d (%s): %v", name, i, tm.Kind, err)
		}
	}
}

// kustomization is the part of kustomization.yaml (or of a Component's)
// these manifests use.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"`
	Resources  []string `json:"resources,omitempty"`
	Components []string `json:"components,omitempty"`
	Patches    []struct {
		Path string `json:"path"`
	} `json:"patches,omitempty"`
	Labels []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels,omitempty"`
	ConfigMapGenerator []generator `json:"configMapGenerator,omitempty"`
	SecretGenerator    []generator `json:"secretGenerator,omitempty"`
	Images             []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
	} `json:"images,omitempty"`
}

// generator is a configMapGenerator or secretGenerator entry.
type generator struct {
	Name     string   `json:"name"`
	Behavior string   `json:"behavior,omitempty"`
	Files    []string `json:"files,omitempty"`
	Literals []string `json:"literals,omitempty"`
}

// The cert-manager and Prometheus Operator kinds, as far as these
// manifests use them; decoding is strict, so a misspelt field fails.
type (
	objectMeta  = metav1.ObjectMeta
	certificate struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        objectMeta `json:"metadata"`
		Spec            struct {
			IsCA        bool     `json:"isCA,omitempty"`
			CommonName  string   `json:"commonName,omitempty"`
			SecretName  string   `json:"secretName"`
			Duration    string   `json:"duration,omitempty"`
			RenewBefore string   `json:"renewBefore,omitempty"`
			DNSNames    []string `json:"dnsNames,omitempty"`
			Usages      []string `json:"usages,omitempty"`
			PrivateKey  struct {
				Algorithm      string `json:"algorithm"`
				Size           int    `json:"size"`
				RotationPolicy string `json:"rotationPolicy,omitempty"`
			} `json:"privateKey"`
			IssuerRef struct {
				Name string `json:"name"`
				Kind string `json:"kind"`
			} `json:"issuerRef"`
		} `json:"spec"`
	}
	issuer struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        objectMeta `json:"metadata"`
		Spec            struct {
			SelfSigned *struct{} `json:"selfSigned,omitempty"`
			CA         *struct {
				SecretName string `json:"secretName"`
			} `json:"ca,omitempty"`
		} `json:"spec"`
	}
	serviceMonitor struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        objectMeta `json:"metadata"`
		Spec            struct {
			Selector  metav1.LabelSelector `json:"selector"`
			Endpoints []struct {
				Port     string `json:"port"`
				Path     string `json:"path"`
				Interval string `json:"interval"`
			} `json:"endpoints"`
		} `json:"spec"`
	}
	prometheusRule struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        objectMeta `json:"metadata"`
		Spec            struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Alert       string            `json:"alert"`
					Expr        string            `json:"expr"`
					For         string            `json:"for,omitempty"`
					Labels      map[string]string `json:"labels"`
					Annotations map[string]string `json:"annotations"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
)

// load decodes the kustomization (or Component) in dir strictly, and every
// manifest, patch and generator file it lists, following the directories
// it lists, and fails t for a YAML file in dir that it does not list. What
// fits together is checked on kustomize's output (TestKustomizeBuild).
func load(t *testing.T, dir string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", dir, err)
	}
	switch k.APIVersion + " " + k.Kind {
	case "kustomize.config.k8s.io/v1beta1 Kustomization", "kustomize.config.k8s.io/v1alpha1 Component":
	default:
		t.Fatalf("%s/kustomization.yaml: apiVersion %q kind %q", dir, k.APIVersion, k.Kind)
	}
	listed := map[string]bool{"kustomization.yaml": true}
	for _, r := range append(slices.Clone(k.Resources), k.Components...) {
		p := filepath.Join(dir, r)
		st, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s lists %s: %v", dir, r, err)
		}
		if st.IsDir() {
			load(t, p)
			continue
		}
		listed[r] = true
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		newManifests().decode(t, p, b)
	}
	for _, pt := range k.Patches {
		b, err := os.ReadFile(filepath.Join(dir, pt.Path))
		if err != nil {
			t.Fatalf("%s lists patch %s: %v", dir, pt.Path, err)
		}
		listed[pt.Path] = true
		newManifests().decode(t, pt.Path, b)
	}
	for _, g := range append(slices.Clone(k.ConfigMapGenerator), k.SecretGenerator...) {
		for _, f := range g.Files {
			_, path, ok := strings.Cut(f, "=")
			if !ok {
				path = f
			}
			if _, err := os.Stat(filepath.Join(dir, path)); err != nil {
				t.Errorf("%s: generator %s lists %s: %v", dir, g.Name, path, err)
			}
			listed[path] = true
		}
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	patches, _ := filepath.Glob(filepath.Join(dir, "patches", "*.yaml"))
	for _, f := range append(files, patches...) {
		rel, _ := filepath.Rel(dir, f)
		if !listed[rel] {
			t.Errorf("%s is in %s but not in its kustomization", rel, dir)
		}
	}
}

// podsOf returns the Deployments whose pods sel selects.
func (m *manifests) podsOf(sel labels.Selector) []*appsv1.Deployment {
	var out []*appsv1.Deployment
	for _, d := range m.deployments {
		if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			out = append(out, d)
		}
	}
	return out
}

// hasPort reports whether a container of d declares port p (a number or a
// name).
func hasPort(d *appsv1.Deployment, p intstr.IntOrString) bool {
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, cp := range c.Ports {
			if p.Type == intstr.String && cp.Name == p.StrVal || p.Type == intstr.Int && cp.ContainerPort == p.IntVal {
				return true
			}
		}
	}
	return false
}

func probePort(p *corev1.Probe) (intstr.IntOrString, bool) {
	switch {
	case p == nil:
		return intstr.IntOrString{}, false
	case p.GRPC != nil:
		return intstr.FromInt32(p.GRPC.Port), true
	case p.TCPSocket != nil:
		return p.TCPSocket.Port, true
	case p.HTTPGet != nil:
		return p.HTTPGet.Port, true
	}
	return intstr.IntOrString{}, false
}

func (m *manifests) secretHas(name, key string) bool {
	s, ok := m.secrets[name]
	if !ok {
		return false
	}
	_, inData := s.Data[key]
	_, inString := s.StringData[key]
	return inData || inString
}

func (m *manifests) configMapHas(name, key string) bool {
	c, ok := m.configMaps[name]
	if !ok {
		return false
	}
	_, ok = c.Data[key]
	return ok
}

// check fails t for every way the objects do not fit together.
func (m *manifests) check(t *testing.T) {
	t.Helper()
	for _, d := range m.deployments {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || sel.Empty() {
			t.Errorf("deployment %s: bad selector %v: %v", d.Name, d.Spec.Selector, err)
			continue
		}
		pod := d.Spec.Template.Spec
		if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("deployment %s: selector %v does not match its pod labels %v", d.Name, sel, d.Spec.Template.Labels)
		}
		if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
			t.Errorf("deployment %s: pods may run as root", d.Name)
		}
		volumes := map[string]bool{}
		for _, v := range pod.Volumes {
			volumes[v.Name] = true
			switch {
			case v.ConfigMap != nil:
				for _, it := range v.ConfigMap.Items {
					if !m.configMapHas(v.ConfigMap.Name, it.Key) {
						t.Errorf("deployment %s volume %s: no key %s in config map %s", d.Name, v.Name, it.Key, v.ConfigMap.Name)
					}
				}
				if _, ok := m.configMaps[v.ConfigMap.Name]; !ok {
					t.Errorf("deployment %s volume %s: no config map %s", d.Name, v.Name, v.ConfigMap.Name)
				}
			case v.Secret != nil && m.issued(v.Secret.SecretName):
				// cert-manager makes it, with tls.crt, tls.key and ca.crt.
			case v.Secret != nil && externalSecrets[v.Secret.SecretName] && len(m.certificates) == 0:
				// Made by hand before deploying (docs/operations.md).
			case v.Secret != nil:
				for _, it := range v.Secret.Items {
					if !m.secretHas(v.Secret.SecretName, it.Key) {
						t.Errorf("deployment %s volume %s: no key %s in secret %s", d.Name, v.Name, it.Key, v.Secret.SecretName)
					}
				}
				if _, ok := m.secrets[v.Secret.SecretName]; !ok {
					t.Errorf("deployment %s volume %s: no secret %s", d.Name, v.Name, v.Secret.SecretName)
				}
			}
		}
		for _, c := range pod.Containers {
			if c.Image == "" {
				t.Errorf("deployment %s container %s: no image", d.Name, c.Name)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("deployment %s container %s: needs cpu and memory requests and a memory limit", d.Name, c.Name)
			}
			if c.ReadinessProbe == nil {
				t.Errorf("deployment %s container %s: no readiness probe", d.Name, c.Name)
			}
			for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
				if port, ok := probePort(p); ok && !hasPort(d, port) {
					t.Errorf("deployment %s container %s: a probe uses port %s, which no container declares", d.Name, c.Name, port.String())
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil && !m.secretHas(r.Name, r.Key) {
					t.Errorf("deployment %s env %s: no key %s in secret %s", d.Name, e.Name, r.Key, r.Name)
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil && !m.configMapHas(r.Name, r.Key) {
					t.Errorf("deployment %s env %s: no key %s in config map %s", d.Name, e.Name, r.Key, r.Name)
				}
			}
			for _, vm := range c.VolumeMounts {
				if !volumes[vm.Name] {
					t.Errorf("deployment %s container %s: mounts unknown volume %s", d.Name, c.Name, vm.Name)
				}
			}
		}
	}
	for _, s := range m.services {
		if len(s.Spec.Selector) == 0 {
			t.Errorf("service %s: no selector", s.Name)
			continue
		}
		pods := m.podsOf(labels.SelectorFromSet(s.Spec.Selector))
		if len(pods) == 0 {
			t.Errorf("service %s: selector %v matches no pods", s.Name, s.Spec.Selector)
		}
		for _, p := range s.Spec.Ports {
			for _, d := range pods {
				if !hasPort(d, p.TargetPort) {
					t.Errorf("service %s port %s: target %s is not a port of %s", s.Name, p.Name, p.TargetPort.String(), d.Name)
				}
			}
		}
	}
	for _, p := range m.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || len(m.podsOf(sel)) == 0 {
			t.Errorf("pod disruption budget %s: selector matches no pods (%v)", p.Name, err)
		}
	}
	m.checkCoordinator(t)
	m.checkSamples(t)
	m.checkHardening(t)
	m.checkTLS(t)
	m.checkMonitoring(t)
}

// externalSecrets are Secrets the base mounts but does not hold: an overlay
// issues them with components/cert-manager, or the operator makes them.
var externalSecrets = map[string]bool{"gtx-tc-tls": true}

// issued reports whether a cert-manager Certificate writes Secret name.
func (m *manifests) issued(name string) bool {
	return slices.ContainsFunc(m.certificates, func(c *certificate) bool { return c.Spec.SecretName == name })
}

// generatedName matches the names kustomize's generators give: the
// generator's name, a dash and a 10-character hash of the content.
var generatedName = regexp.MustCompile(`-[bcdfghkmt2-9]{10}$`)

// gtxPods are the Deployments of the base (the coordinator and the sample),
// not the development databases an overlay adds.
func (m *manifests) gtxPods() []*appsv1.Deployment {
	var out []*appsv1.Deployment
	for _, d := range m.deployments {
		if d.Labels["app.kubernetes.io/part-of"] == "gtx" {
			out = append(out, d)
		}
	}
	return out
}

// checkHardening checks what makes the deployment safe by default: pinned
// images, a service account without a token, a NetworkPolicy for every pod,
// configuration whose edits roll the pods, and gRPC health probes.
func (m *manifests) checkHardening(t *testing.T) {
	t.Helper()
	for _, d := range m.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			_, tag, ok := strings.Cut(c.Image[strings.LastIndex(c.Image, "/")+1:], ":")
			if !ok || tag == "" || tag == "latest" {
				t.Errorf("deployment %s container %s: image %q has no pinned tag", d.Name, c.Name, c.Image)
			}
		}
	}
	pods := m.gtxPods()
	if len(pods) != 4 {
		t.Errorf("%d deployments of the base, want gtx-tc and the three sample services", len(pods))
	}
	for _, d := range pods {
		pod := d.Spec.Template.Spec
		if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
			t.Errorf("deployment %s: mounts a service account token it does not need", d.Name)
		}
		sa, ok := m.serviceAccounts[pod.ServiceAccountName]
		if pod.ServiceAccountName == "" || !ok {
			t.Errorf("deployment %s: service account %q is not in the manifests (the default one is shared)", d.Name, pod.ServiceAccountName)
		} else if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
			t.Errorf("service account %s: automountServiceAccountToken must be false", sa.Name)
		}
		podLabels := labels.Set(d.Spec.Template.Labels)
		if !slices.ContainsFunc(m.networkPolicies, func(p *networkingv1.NetworkPolicy) bool {
			sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
			return err == nil && !sel.Empty() && sel.Matches(podLabels) && slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeIngress)
		}) {
			t.Errorf("deployment %s: no NetworkPolicy restricts who connects to its pods", d.Name)
		}
		for _, v := range pod.Volumes {
			switch {
			case v.ConfigMap != nil && !generatedName.MatchString(v.ConfigMap.Name):
				t.Errorf("deployment %s volume %s: config map %s is not generated, so editing it does not roll the pods", d.Name, v.Name, v.ConfigMap.Name)
			case v.Secret != nil && !m.issued(v.Secret.SecretName) && !externalSecrets[v.Secret.SecretName] && !generatedName.MatchString(v.Secret.SecretName):
				t.Errorf("deployment %s volume %s: secret %s is not generated, so editing it does not roll the pods", d.Name, v.Name, v.Secret.SecretName)
			}
		}
		for _, c := range pod.Containers {
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && !generatedName.MatchString(e.ValueFrom.SecretKeyRef.Name) {
					t.Errorf("deployment %s env %s: secret %s is not generated, so editing it does not roll the pods", d.Name, e.Name, e.ValueFrom.SecretKeyRef.Name)
				}
			}
			if d.Spec.Template.Labels["app.kubernetes.io/component"] == "sample" {
				for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
					if p == nil || p.GRPC == nil {
						t.Errorf("deployment %s: readiness and liveness must be gRPC health checks, got %+v", d.Name, p)
					}
				}
			}
		}
	}
	for _, s := range m.services {
		var grpcPort, metricsPort bool
		for _, p := range s.Spec.Ports {
			grpcPort = grpcPort || p.Name == "grpc"
			metricsPort = metricsPort || p.Name == "metrics"
		}
		if grpcPort && metricsPort {
			t.Errorf("service %s: exposes the metrics port to the clients of its gRPC port", s.Name)
		}
	}
	for _, h := range m.hpas {
		ref := h.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || !slices.ContainsFunc(pods, func(d *appsv1.Deployment) bool { return d.Name == ref.Name }) {
			t.Errorf("autoscaler %s: scales %s %s, which is not here", h.Name, ref.Kind, ref.Name)
		}
		if ref.Name == "gtx-tc" {
			t.Errorf("autoscaler %s: the coordinator is not autoscaled", h.Name)
		}
	}
}

// mountedAt returns the Secret and key that container c of d sees at path.
func mountedAt(d *appsv1.Deployment, c corev1.Container, path string) (secret, key string, ok bool) {
	for _, vm := range c.VolumeMounts {
		rest, found := strings.CutPrefix(path, strings.TrimSuffix(vm.MountPath, "/")+"/")
		if !found {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name != vm.Name || v.Secret == nil {
				continue
			}
			for _, it := range v.Secret.Items {
				if it.Path == rest {
					return v.Secret.SecretName, it.Key, true
				}
			}
		}
	}
	return "", "", false
}

// checkTLS checks that the coordinator serves TLS from a mounted Secret,
// that every sample service trusts its CA, and that an issued certificate
// names every Service clients reach it by.
func (m *manifests) checkTLS(t *testing.T) {
	t.Helper()
	tc, settings := m.coordinator(t)
	c := tc.Spec.Template.Spec.Containers[0]
	for _, key := range []string{"tls_cert", "tls_key"} {
		path, _ := settings[key].(string)
		if _, _, ok := mountedAt(tc, c, path); path == "" || !ok {
			t.Errorf("gtx-tc: %s %q is not a file mounted from a Secret; the coordinator must serve TLS", key, path)
		}
	}
	certSecret, _, _ := mountedAt(tc, c, settings["tls_cert"].(string))
	for _, d := range m.gtxPods() {
		if d.Spec.Template.Labels["app.kubernetes.io/component"] != "sample" {
			continue
		}
		sc := d.Spec.Template.Spec.Containers[0]
		var ca string
		for _, e := range sc.Env {
			if e.Name == "GTX_TC_CA" {
				ca = e.Value
			}
		}
		if secret, key, ok := mountedAt(d, sc, ca); !ok || secret != certSecret || key != "ca.crt" {
			t.Errorf("deployment %s: GTX_TC_CA %q must be ca.crt of the coordinator's Secret %s, mounted", d.Name, ca, certSecret)
		}
	}
	tcPods := labels.Set(tc.Spec.Template.Labels)
	for _, cert := range m.certificates {
		if !slices.ContainsFunc(m.issuers, func(i *issuer) bool { return i.Metadata.Name == cert.Spec.IssuerRef.Name }) {
			t.Errorf("certificate %s: issuer %s is not here", cert.Metadata.Name, cert.Spec.IssuerRef.Name)
		}
		if cert.Spec.SecretName != certSecret {
			continue
		}
		for _, s := range m.services {
			if labels.SelectorFromSet(s.Spec.Selector).Matches(tcPods) && slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "grpc" }) &&
				!slices.Contains(cert.Spec.DNSNames, s.Name) {
				t.Errorf("certificate %s: does not name service %s, by which clients reach the coordinator", cert.Metadata.Name, s.Name)
			}
		}
	}
}

// checkMonitoring checks that a ServiceMonitor scrapes a Service with its
// port, and that every alert uses metrics the coordinator exports.
func (m *manifests) checkMonitoring(t *testing.T) {
	t.Helper()
	for _, sm := range m.serviceMonitors {
		sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
		if err != nil {
			t.Errorf("service monitor %s: %v", sm.Metadata.Name, err)
			continue
		}
		for _, ep := range sm.Spec.Endpoints {
			if !slices.ContainsFunc(m.services, func(s *corev1.Service) bool {
				return sel.Matches(labels.Set(s.Labels)) && slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port })
			}) {
				t.Errorf("service monitor %s: no service it selects has port %s", sm.Metadata.Name, ep.Port)
			}
		}
	}
	if len(m.rules) == 0 {
		return
	}
	src, err := os.ReadFile(filepath.Join("..", "tc", "metrics.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range m.rules {
		for _, g := range r.Spec.Groups {
			for _, rule := range g.Rules {
				for _, name := range regexp.MustCompile(`gtx_tc_[a-z0-9_]+`).FindAllString(rule.Expr, -1) {
					if !bytes.Contains(src, []byte(`Name: "`+strings.TrimPrefix(name, "gtx_tc_")+`"`)) {
						t.Errorf("alert %s: metric %s is not one tc/metrics.go exports", rule.Alert, name)
					}
				}
			}
		}
	}
}

// secretValue returns key of Secret name, from stringData or data.
func (m *manifests) secretValue(name, key string) (string, bool) {
	s, ok := m.secrets[name]
	if !ok {
		return "", false
	}
	if v, ok := s.StringData[key]; ok {
		return v, true
	}
	v, ok := s.Data[key]
	return string(v), ok
}

// headlessTC reports whether target is dns:///name:port naming a headless
// Service of the coordinator's pods and one of its ports.
func (m *manifests) headlessTC(target string) bool {
	rest, ok := strings.CutPrefix(target, "dns:///")
	name, port, found := strings.Cut(rest, ":")
	if !ok || !found {
		return false
	}
	i := slices.IndexFunc(m.deployments, func(d *appsv1.Deployment) bool { return d.Name == "gtx-tc" })
	if i < 0 {
		return false
	}
	pods := labels.Set(m.deployments[i].Spec.Template.Labels)
	for _, s := range m.services {
		if s.Name != name || s.Spec.ClusterIP != corev1.ClusterIPNone || !labels.SelectorFromSet(s.Spec.Selector).Matches(pods) {
			continue
		}
		for _, p := range s.Spec.Ports {
			if strconv.Itoa(int(p.Port)) == port {
				return true
			}
		}
	}
	return false
}

// checkSamples checks how the sample services reach the coordinator and
// NATS: GTX_TC names the coordinator's headless service (dns:///), so each
// service attaches to every replica; GTX_TC_TOKEN comes from a Secret and
// is the token the coordinator's tokens.yaml gives the application (the
// container's name); no token is written into the manifest; GTX_NATS_URL is
// set.
func (m *manifests) checkSamples(t *testing.T) {
	t.Helper()
	tc, _ := m.coordinator(t)
	var tokensSecret string
	for _, v := range tc.Spec.Template.Spec.Volumes {
		if v.Name == "secrets" && v.Secret != nil {
			tokensSecret = v.Secret.SecretName
		}
	}
	raw, _ := m.secretValue(tokensSecret, "tokens.yaml")
	var tokens map[string]string
	if err := yaml.UnmarshalStrict([]byte(raw), &tokens); err != nil || len(tokens) == 0 {
		t.Fatalf("gtx-tc secret %s: tokens.yaml is not a mapping of application to token: %v", tokensSecret, err)
	}
	var samples int
	for _, d := range m.deployments {
		if d.Spec.Template.Labels["app.kubernetes.io/component"] != "sample" {
			continue
		}
		samples++
		c := d.Spec.Template.Spec.Containers[0]
		env := map[string]corev1.EnvVar{}
		for _, e := range c.Env {
			env[e.Name] = e
			if strings.Contains(e.Name, "TOKEN") && e.Value != "" {
				t.Errorf("deployment %s: %s holds a token in the manifest; take it from a Secret", d.Name, e.Name)
			}
		}
		if tcEnv := env["GTX_TC"]; !m.headlessTC(tcEnv.Value) {
			t.Errorf("deployment %s: GTX_TC %q must be dns:///<headless service of gtx-tc>:<port>, to attach to every replica", d.Name, tcEnv.Value)
		}
		ref := env["GTX_TC_TOKEN"].ValueFrom
		if ref == nil || ref.SecretKeyRef == nil {
			t.Errorf("deployment %s: GTX_TC_TOKEN must come from a Secret", d.Name)
		} else if tok, ok := m.secretValue(ref.SecretKeyRef.Name, ref.SecretKeyRef.Key); !ok || tok != tokens[c.Name] {
			t.Errorf("deployment %s: the token in secret %s key %s is not the one the coordinator's tokens.yaml gives %q",
				d.Name, ref.SecretKeyRef.Name, ref.SecretKeyRef.Key, c.Name)
		}
		if !strings.HasPrefix(env["GTX_NATS_URL"].Value, "nats://") {
			t.Errorf("deployment %s: GTX_NATS_URL %q: the saga steps need a nats:// URL", d.Name, env["GTX_NATS_URL"].Value)
		}
	}
	if samples != 3 {
		t.Errorf("%d sample deployments, want order, inventory and account", samples)
	}
}

// coordinator returns the gtx-tc Deployment and the settings of the
// tc.yaml its config volume mounts.
func (m *manifests) coordinator(t *testing.T) (*appsv1.Deployment, map[string]any) {
	t.Helper()
	i := slices.IndexFunc(m.deployments, func(d *appsv1.Deployment) bool { return d.Name == "gtx-tc" })
	if i < 0 {
		t.Fatal("no gtx-tc deployment")
	}
	tc := m.deployments[i]
	for _, v := range tc.Spec.Template.Spec.Volumes {
		if v.Name != "config" || v.ConfigMap == nil {
			continue
		}
		cfg := m.configMaps[v.ConfigMap.Name]
		if cfg == nil {
			t.Fatalf("gtx-tc: no config map %s", v.ConfigMap.Name)
		}
		var settings map[string]any
		if err := yaml.UnmarshalStrict([]byte(cfg.Data["tc.yaml"]), &settings); err != nil {
			t.Fatalf("gtx-tc config map tc.yaml: %v", err)
		}
		return tc, settings
	}
	t.Fatal("gtx-tc: no config volume")
	return nil, nil
}

// checkCoordinator checks what running replicas of gtx tc needs.
func (m *manifests) checkCoordinator(t *testing.T) {
	t.Helper()
	i := slices.IndexFunc(m.deployments, func(d *appsv1.Deployment) bool { return d.Name == "gtx-tc" })
	if i < 0 {
		t.Fatal("no gtx-tc deployment")
	}
	tc := m.deployments[i]
	if tc.Spec.Replicas == nil || *tc.Spec.Replicas < 2 {
		t.Errorf("gtx-tc: %v replicas, want at least 2", tc.Spec.Replicas)
	}
	c := tc.Spec.Template.Spec.Containers[0]
	_, settings := m.coordinator(t)
	healthListen, _ := settings["health_listen"].(string)
	_, healthPort, _ := strings.Cut(healthListen, ":")
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
		if p == nil || p.GRPC == nil || strconv.Itoa(int(p.GRPC.Port)) != healthPort {
			t.Errorf("gtx-tc: %s must be the gRPC health check on the plaintext health_listen port %q, got %+v", name, healthPort, p)
		}
	}
	var serverID bool
	for _, e := range c.Env {
		if e.Name == "GTX_SERVER_ID" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name" {
			serverID = true
		}
	}
	if !serverID {
		t.Error("gtx-tc: GTX_SERVER_ID must be the pod name, unique per replica")
	}
	sel := labels.Set(tc.Spec.Template.Labels)
	var headless, pdb bool
	for _, s := range m.services {
		if s.Spec.ClusterIP == corev1.ClusterIPNone && labels.SelectorFromSet(s.Spec.Selector).Matches(sel) {
			headless = true
		}
	}
	for _, p := range m.pdbs {
		if s, err := metav1.LabelSelectorAsSelector(p.Spec.Selector); err == nil && s.Matches(sel) {
			pdb = true
		}
	}
	if !headless || !pdb {
		t.Errorf("gtx-tc: headless service %v, pod disruption budget %v; want both", headless, pdb)
	}
	for key := range settings {
		flag := "--" + strings.ReplaceAll(key, "_", "-")
		if !knownTCFlags[flag] {
			t.Errorf("gtx-tc config map: %s is not a flag of gtx tc", key)
		}
	}
}

// knownTCFlags are the flags of gtx tc the config map may set.
var knownTCFlags = map[string]bool{
	"--listen": true, "--server-id": true, "--node-id": true, "--store-driver": true, "--store-dsn": true,
	"--store-prefix": true, "--default-timeout": true, "--max-timeout": true, "--branch-timeout": true,
	"--retry-initial": true, "--retry-max": true, "--retry-budget": true, "--max-attempts": true, "--lease": true, "--workers": true,
	"--retention": true, "--log-level": true, "--tls-cert": true, "--tls-key": true, "--tls-client-ca": true,
	"--auth-tokens-file": true, "--metrics-listen": true, "--health-interval": true, "--trace-exporter": true,
	"--otlp-endpoint": true, "--health-listen": true, "--data-dir": true, "--raft-addr": true, "--raft-advertise": true,
	"--raft-id": true, "--raft-peers": true, "--join": true,
}

// TestManifests decodes every kustomization and every file it lists
// strictly, so a misspelt field or an unlisted file fails without kubectl.
func TestManifests(t *testing.T) {
	for _, dir := range []string{"base", "overlays/dev", "overlays/prod"} {
		t.Run(dir, func(t *testing.T) { load(t, dir) })
	}
}

// TestKustomizeBuild renders each kustomization with kubectl, when it is
// installed, checks that the objects fit together and are safe by default,
// and that each overlay deploys the images it means to.
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed")
	}
	release := func(name string) string { return "ghcr.io/gtx-io/" + name + ":0.1.0" }
	tests := []struct {
		dir       string
		namespace string
		images    map[string]string
		dsn       string
	}{
		{"base", "", map[string]string{"gtx-tc": release("gtx"), "order": release("gtx-sample-order"),
			"inventory": release("gtx-sample-inventory"), "account": release("gtx-sample-account")}, "gtx:CHANGE-ME@tcp(mariadb:3306)/gtx_tc"},
		{"overlays/dev", "gtx-dev", map[string]string{"gtx-tc": "gtx:dev", "order": "gtx-sample-order:dev",
			"inventory": "gtx-sample-inventory:dev", "account": "gtx-sample-account:dev"}, "root:gtx-dev@tcp(mariadb:3306)/gtx_tc"},
		{"overlays/prod", "gtx", map[string]string{"gtx-tc": release("gtx"), "order": release("gtx-sample-order"),
			"inventory": release("gtx-sample-inventory"), "account": release("gtx-sample-account")}, "gtx:CHANGE-ME@tcp(mariadb:3306)/gtx_tc"},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			out, err := exec.Command(kubectl, "kustomize", tt.dir).Output()
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v", tt.dir, err)
			}
			m := newManifests()
			m.decode(t, tt.dir+" (built)", out)
			m.check(t)
			for _, d := range m.gtxPods() {
				if d.Namespace != tt.namespace {
					t.Errorf("deployment %s in namespace %q, want %q", d.Name, d.Namespace, tt.namespace)
				}
				if got := d.Spec.Template.Spec.Containers[0].Image; got != tt.images[d.Name] {
					t.Errorf("deployment %s runs image %s, want %s", d.Name, got, tt.images[d.Name])
				}
			}
			tc, _ := m.coordinator(t)
			for _, e := range tc.Spec.Template.Spec.Containers[0].Env {
				if e.Name != "GTX_STORE_DSN" {
					continue
				}
				if got, _ := m.secretValue(e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key); got != tt.dsn {
					t.Errorf("the coordinator's store DSN is %q, want %q", got, tt.dsn)
				}
			}
		})
	}
}
