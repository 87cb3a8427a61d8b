package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// helmBinary finds helm on PATH or where `go install` puts it (scripts/test
// installs it there when it is missing).
func helmBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "helm")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("helm is not installed (scripts/test installs it: go install helm.sh/helm/v3/cmd/helm@v3.22.1)")
	return ""
}

// The Helm chart lints, refuses to render without a store DSN and tokens,
// and renders a coordinator as safe by default as the kustomize base: a
// pinned image, a service account without a token, a NetworkPolicy, TLS
// from a mounted Secret, probes on the plaintext health port, metrics off
// the client Service, settings that are flags of gtx tc, and checksums that
// roll the pods when the configuration changes.
func TestHelmChart(t *testing.T) {
	helm := helmBinary(t)
	values := []string{"--set", "store.dsn=gtx:pw@tcp(db:3306)/gtx_tc", "--set", "tokens.order=order-token"}
	if out, err := exec.Command(helm, append([]string{"lint", "--strict", "helm/gtx"}, values...)...).CombinedOutput(); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
	if out, err := exec.Command(helm, "template", "gtx", "helm/gtx").CombinedOutput(); err == nil || !strings.Contains(string(out), "store.dsn") {
		t.Fatalf("helm template without a store DSN: %v\n%s\nwant a refusal naming store.dsn", err, out)
	}
	render := func(extra ...string) *manifests {
		t.Helper()
		out, err := exec.Command(helm, append(append([]string{"template", "gtx", "helm/gtx"}, values...), extra...)...).Output()
		if err != nil {
			t.Fatalf("helm template: %v", err)
		}
		m := newManifests()
		m.decode(t, "helm template", out)
		return m
	}
	m := render()
	if len(m.deployments) != 1 {
		t.Fatalf("%d deployments, want the coordinator's", len(m.deployments))
	}
	tc, settings := m.coordinator(t)
	pod := tc.Spec.Template.Spec
	c := pod.Containers[0]
	if c.Image != "ghcr.io/gtx-io/gtx:0.1.0" {
		t.Errorf("image %s, want the chart's appVersion pinned", c.Image)
	}
	if sa := m.serviceAccounts[pod.ServiceAccountName]; sa == nil || sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken ||
		pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("service account %q: a token is mounted", pod.ServiceAccountName)
	}
	if !slices.ContainsFunc(m.networkPolicies, func(p *networkingv1.NetworkPolicy) bool {
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
		return err == nil && sel.Matches(labels.Set(tc.Spec.Template.Labels))
	}) {
		t.Error("no NetworkPolicy covers the coordinator")
	}
	for _, key := range []string{"tls_cert", "tls_key"} {
		path, _ := settings[key].(string)
		if _, _, ok := mountedAt(tc, c, path); !ok {
			t.Errorf("%s %q is not mounted from a Secret", key, path)
		}
	}
	healthListen, _ := settings["health_listen"].(string)
	_, port, _ := strings.Cut(healthListen, ":")
	if p := c.ReadinessProbe; p == nil || p.GRPC == nil || strconv.Itoa(int(p.GRPC.Port)) != port {
		t.Errorf("readiness probe %+v, want gRPC health on the health_listen port %s", p, port)
	}
	for key := range settings {
		if !knownTCFlags["--"+strings.ReplaceAll(key, "_", "-")] {
			t.Errorf("setting %s is not a flag of gtx tc", key)
		}
	}
	for _, s := range m.services {
		if slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "metrics" }) {
			t.Errorf("service %s exposes the metrics port", s.Name)
		}
	}
	if len(m.pdbs) != 1 {
		t.Errorf("%d pod disruption budgets, want 1", len(m.pdbs))
	}
	// A changed setting changes the pods' checksum, so they roll.
	before := tc.Spec.Template.Annotations["checksum/config"]
	after, _ := render("--set", "settings.lease=45s").coordinator(t)
	if before == "" || after.Spec.Template.Annotations["checksum/config"] == before {
		t.Errorf("checksum/config %q did not change with the settings", before)
	}
}
