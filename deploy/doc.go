// Package deploy holds the container images (deploy/docker) and the
// Kubernetes manifests (deploy/base, a kustomize base, and
// deploy/overlays/dev) of gtx: the coordinator as a Deployment of replicas
// with gRPC health probes, a PodDisruptionBudget, its settings in a
// ConfigMap and its DSN and tokens in a Secret, a headless Service through
// which resource managers attach to every replica, and the order-inventory
// sample. Its only Go code is the test that decodes every manifest strictly
// into the Kubernetes API types and checks that they fit together; see
// docs/operations.md for deploying, scaling and upgrading.
package deploy
