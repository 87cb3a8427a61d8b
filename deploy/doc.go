// Package deploy holds the container images (deploy/docker) and the
// Kubernetes manifests of gtx: a kustomize base (deploy/base) with the
// coordinator as a Deployment of replicas serving TLS, gRPC health probes
// on a plaintext health-only port, a PodDisruptionBudget, generated
// configuration and secrets, service accounts without tokens,
// NetworkPolicies, a headless Service through which resource managers
// attach to every replica, and the order-inventory sample; components for
// cert-manager TLS and Prometheus Operator monitoring; the dev and prod
// overlays; and a Helm chart of the coordinator (deploy/helm/gtx). Its only
// Go code is the test that decodes every manifest strictly, renders every
// overlay to check that the objects fit together and are safe by default,
// and lints and renders the chart when helm is installed; see
// docs/operations.md.
package deploy
