// Package deploy holds the container images (deploy/docker) and the
// Kubernetes manifests of gtx: a kustomize base (deploy/base) with the
// coordinator as a Deployment of replicas serving TLS, gRPC health probes
// on a plaintext health-only port, a PodDisruptionBudget, generated
// configuration and secrets, service accounts without tokens,
// NetworkPolicies, a headless Service through which resource managers
// attach to every replica, and the order-inventory sample; components for
// cert-manager TLS and Prometheus Operator monitoring; and the dev and prod
// overlays. Its only Go code is the test that decodes every manifest
// strictly and renders every overlay to check that the objects fit together
// and are safe by default; see docs/operations.md.
package deploy
