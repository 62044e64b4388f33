package options

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Where the leader-election namespace comes from when
// --leader-election-namespace is not given.
const (
	// DefaultLeaderElectionNamespace is the last resort of the namespace lookup.
	DefaultLeaderElectionNamespace = "default"
	// ServiceAccountNamespaceFile holds the pod's namespace inside a cluster.
	ServiceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
)

// resolveNamespace fills LeaderElectionNamespaceResolved. A namespace that
// came from the environment or the file is validated too, because a wrong
// one would only show up as a forbidden Lease write much later.
func (o *Options) resolveNamespace(getenv func(string) string, readFile func(string) ([]byte, error)) error {
	if o.LeaderElectionNamespace != "" {
		o.LeaderElectionNamespaceResolved = o.LeaderElectionNamespace
		return nil // validated with the flags
	}
	if ns := strings.TrimSpace(getenv(EnvPodNamespace)); ns != "" {
		o.LeaderElectionNamespaceResolved = ns
		return validateNamespace(EnvPodNamespace, ns)
	}
	// Any read error means "not in a cluster" (or not allowed to know);
	// falling back is the reference's behaviour.
	if b, err := readFile(ServiceAccountNamespaceFile); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			o.LeaderElectionNamespaceResolved = ns
			return validateNamespace(ServiceAccountNamespaceFile, ns)
		}
	}
	o.LeaderElectionNamespaceResolved = DefaultLeaderElectionNamespace
	return nil
}

// validateNamespace checks that ns can name a namespace; source says where it
// came from.
func validateNamespace(source, ns string) error {
	if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
		return fmt.Errorf("%s=%q: not a valid namespace: %s", source, ns, strings.Join(msgs, "; "))
	}
	return nil
}
