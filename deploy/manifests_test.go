package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// manifests are the decoded objects of one kustomization.
type manifests struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	pdbs        []*policyv1.PodDisruptionBudget
	namespaces  []*corev1.Namespace
}

func newManifests() *manifests {
	return &manifests{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
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
		default:
			t.Fatalf("%s document %d: unexpected kind %q %q", name, i, tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("%s document %d (%s): %v", name, i, tm.Kind, err)
		}
	}
}

// kustomization is the part of kustomization.yaml these manifests use.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"`
	Resources  []string `json:"resources"`
	Patches    []struct {
		Path string `json:"path"`
	} `json:"patches,omitempty"`
	Labels []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels,omitempty"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images,omitempty"`
}

// load decodes the kustomization in dir and every manifest it lists,
// following other kustomizations it lists; patches are decoded strictly but
// not added, since they only change objects already there.
func load(t *testing.T, dir string, m *manifests) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", dir, err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Fatalf("%s/kustomization.yaml: apiVersion %q kind %q", dir, k.APIVersion, k.Kind)
	}
	listed := map[string]bool{"kustomization.yaml": true}
	for _, r := range k.Resources {
		p := filepath.Join(dir, r)
		st, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s lists %s: %v", dir, r, err)
		}
		if st.IsDir() {
			load(t, p, m)
			continue
		}
		listed[r] = true
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m.decode(t, p, b)
	}
	for _, pt := range k.Patches {
		b, err := os.ReadFile(filepath.Join(dir, pt.Path))
		if err != nil {
			t.Fatalf("%s lists patch %s: %v", dir, pt.Path, err)
		}
		listed[pt.Path] = true
		newManifests().decode(t, pt.Path, b)
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
	raw, _ := m.secretValue("gtx-tc", "tokens.yaml")
	var tokens map[string]string
	if err := yaml.UnmarshalStrict([]byte(raw), &tokens); err != nil || len(tokens) == 0 {
		t.Fatalf("gtx-tc secret: tokens.yaml is not a mapping of application to token: %v", err)
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
	if p := c.ReadinessProbe; p == nil || p.GRPC == nil || p.GRPC.Port != 8091 {
		t.Errorf("gtx-tc: readiness must be the gRPC health check on 8091, got %+v", p)
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
	cfg := m.configMaps["gtx-tc"]
	if cfg == nil {
		t.Fatal("gtx-tc: no config map")
	}
	var settings map[string]any
	if err := yaml.UnmarshalStrict([]byte(cfg.Data["tc.yaml"]), &settings); err != nil {
		t.Fatalf("gtx-tc config map tc.yaml: %v", err)
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
	"--otlp-endpoint": true,
}

func TestManifests(t *testing.T) {
	for _, dir := range []string{"base", "overlays/dev"} {
		t.Run(dir, func(t *testing.T) {
			m := newManifests()
			load(t, dir, m)
			m.check(t)
		})
	}
}

// TestKustomizeBuild renders each kustomization with kubectl, when it is
// installed, and checks the result the same way.
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed")
	}
	for _, dir := range []string{"base", "overlays/dev"} {
		t.Run(dir, func(t *testing.T) {
			out, err := exec.Command(kubectl, "kustomize", dir).Output()
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v", dir, err)
			}
			m := newManifests()
			m.decode(t, dir+" (built)", out)
			m.check(t)
			if dir == "overlays/dev" {
				for _, d := range m.deployments {
					if d.Namespace != "gtx-dev" {
						t.Errorf("deployment %s in namespace %q, want gtx-dev", d.Name, d.Namespace)
					}
				}
				if !strings.Contains(string(out), "root:gtx-dev@tcp(mariadb:3306)/gtx_tc") {
					t.Error("the dev overlay did not patch the store DSN")
				}
			}
		})
	}
}
