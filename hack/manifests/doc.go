// Package manifests holds tests of the deployment manifests in config/.
// They render every kustomization with kustomize (the binary of
// hack/install-tools.sh, or $KUSTOMIZE) and check what a cluster would get:
// the attacher container of the sidecar Component shares the driver's one
// socket volume, probes the port it serves them on, runs locked down as the
// user that may open the driver's socket, and its role bindings name the
// ServiceAccount its Pod runs under; the RBAC rules stay least-privilege.
package manifests
