package testbed

import (
	"fmt"
	"os"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// NewEnvironment returns an envtest environment, not yet started, for the
// kube-apiserver and etcd in assets (see AssetsDir). The programs share it
// so that the control plane the attacher meets is the same in each; they
// add their own API server flags on top.
//
// startTimeout replaces envtest's default start timeout (20 s, short for a
// loaded two-core machine) unless KUBEBUILDER_CONTROLPLANE_START_TIMEOUT
// sets one.
func NewEnvironment(assets string, startTimeout time.Duration) *envtest.Environment {
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	if os.Getenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT") == "" {
		env.ControlPlaneStartTimeout = startTimeout
	}
	// The API server's StorageObjectInUseProtection admission plugin puts
	// kubernetes.io/pv-protection on every PersistentVolume, and only
	// kube-controller-manager, which envtest does not run, removes it: no
	// PV could ever go away. Without the plugin a PV carries just the
	// attacher's finalizer. ServiceAccount is off in envtest by default
	// (no controller creates the default ServiceAccounts) and stays off.
	env.ControlPlane.GetAPIServer().Configure().
		Set("disable-admission-plugins", "ServiceAccount,StorageObjectInUseProtection")
	SetFeatureGates(env)
	return env
}

// FeatureGatesEnv names the variable whose value, when set, is passed to
// the envtest kube-apiserver as --feature-gates. `make test-oldest` sets it
// to run the suites against the oldest supported Kubernetes with the gates
// a cluster of that release needs for every feature the suites check (on
// 1.34, MutableCSINodeAllocatableCount: without it the API server drops
// errorCode from attachError and detachError).
const FeatureGatesEnv = "ENVTEST_APISERVER_FEATURE_GATES"

// SetFeatureGates passes $ENVTEST_APISERVER_FEATURE_GATES, if set, to env's
// kube-apiserver.
func SetFeatureGates(env *envtest.Environment) {
	if gates := os.Getenv(FeatureGatesEnv); gates != "" {
		env.ControlPlane.GetAPIServer().Configure().Set("feature-gates", gates)
	}
}

// WriteKubeconfig adds user, in the group system:masters, to the started
// env and writes a kubeconfig for it to path. The attacher runs with it:
// as a cluster admin it needs no RBAC objects in the bare control plane.
func WriteKubeconfig(env *envtest.Environment, user, path string) error {
	return WriteUserKubeconfig(env, envtest.User{Name: user, Groups: []string{"system:masters"}}, path)
}

// WriteUserKubeconfig adds user to the started env and writes a kubeconfig
// for it to path. The file holds the user's private key, hence mode 0600.
func WriteUserKubeconfig(env *envtest.Environment, user envtest.User, path string) error {
	u, err := env.AddUser(user, nil)
	if err != nil {
		return fmt.Errorf("adding the %s user: %w", user.Name, err)
	}
	data, err := u.KubeConfig()
	if err != nil {
		return fmt.Errorf("writing the kubeconfig: %w", err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("writing the kubeconfig: %w", err)
	}
	return nil
}
