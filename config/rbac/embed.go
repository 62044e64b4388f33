package rbac

import _ "embed"

// Dir is this directory, relative to the repository root, for messages
// that name a file of it.
const Dir = "config/rbac"

// Names of the embedded files.
const (
	ClusterRoleFile     = "role.yaml"
	LeaseRoleFile       = "leader_election_role.yaml"
	SecretWatchRoleFile = "secret_watch_role.yaml"
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

// SecretWatchRole is secret_watch_role.yaml: the optional ClusterRole
// csi-attacher-secret-watch (list and watch on Secrets).
//
//go:embed secret_watch_role.yaml
var SecretWatchRole []byte
