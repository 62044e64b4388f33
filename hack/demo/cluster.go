package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"

	"github.com/csi-attacher/csi-attacher/internal/testbed"
)

// startControlPlane starts kube-apiserver and etcd and writes a kubeconfig.
func (d *demo) startControlPlane(ctx context.Context, assets string) (*rest.Config, string, error) {
	d.step("starting the control plane (kube-apiserver and etcd from %s)", assets)
	env := testbed.NewEnvironment(assets, time.Minute)
	began := time.Now()
	cfg, err := env.Start()
	// Stop also cleans up after a partial start.
	d.defer_(func() {
		d.say("stopping the control plane")
		if err := env.Stop(); err != nil {
			d.say("warning: stopping the control plane: %v", err)
		}
	})
	if err != nil {
		return nil, "", fmt.Errorf("starting the control plane: %w", err)
	}
	if ctx.Err() != nil {
		return nil, "", errInterrupted
	}
	kubeconfig := filepath.Join(d.tmpDir, "kubeconfig")
	if err := testbed.WriteKubeconfig(env, "demo", kubeconfig); err != nil {
		return nil, "", err
	}
	d.detail("control plane ready at %s after %s", cfg.Host, since(began))
	d.detail("kubeconfig: %s", kubeconfig)
	d.detail("(admission plugin StorageObjectInUseProtection is off: no kube-controller-manager")
	d.detail(" runs here to remove its kubernetes.io/pv-protection finalizer)")
	return cfg, kubeconfig, nil
}
