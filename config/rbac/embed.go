package rbac

import _ "embed"

// Dir is this directory, relative to the repository root, for messages
// that name a file of it.
const Dir = "config/rbac"

// ComponentDir is the kustomize Component that adds the attacher to a
// driver's workload. It brings this directory's roles and bindings with
// the suffix -<driver> on every name, the driver's name as in its Lease.
const ComponentDir = "config/components/sidecar"

// Names of the embedded files.
const (
	ClusterRoleFile        = "role.yaml"
	ClusterRoleBindingFile = "role_binding.yaml"
	LeaseRoleFile          = "leader_election_role.yaml"
	LeaseRoleBindingFile   = "leader_election_role_binding.yaml"
	SecretWatchRoleFile    = "secret_watch_role.yaml"
)

// ClusterRole is role.yaml: the ClusterRole external-attacher-runner, the
// attacher's cluster-wide rights.
//
//go:embed role.yaml
var ClusterRole []byte

// LeaseRole is leader_election_role.yaml: the Role external-attacher-cfg,
// the leader-election Lease and its Events in the attacher's namespace.
//
//go:embed leader_election_role.yaml
var LeaseRole []byte

// ClusterRoleBinding is role_binding.yaml: the ClusterRoleBinding
// csi-attacher-role of ClusterRole to the attacher's ServiceAccount.
//
//go:embed role_binding.yaml
var ClusterRoleBinding []byte

// LeaseRoleBinding is leader_election_role_binding.yaml: the RoleBinding
// csi-attacher-role-cfg of LeaseRole to the attacher's ServiceAccount.
//
//go:embed leader_election_role_binding.yaml
var LeaseRoleBinding []byte

// SecretWatchRole is secret_watch_role.yaml: the optional ClusterRole
// csi-attacher-secret-watch (list and watch on Secrets).
//
//go:embed secret_watch_role.yaml
var SecretWatchRole []byte
