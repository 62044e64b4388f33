// Package manifests holds tests of the deployment manifests in config/:
// the attacher's Deployment must run locked down (non-root, read-only root
// filesystem, no capabilities, RuntimeDefault seccomp, resource bounds,
// health probes) and the RBAC rules must stay least-privilege.
package manifests
