package config

import (
	"context"
	"os"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/csi-attacher/csi-attacher/internal/leader"
	"github.com/csi-attacher/csi-attacher/internal/rights"
)

// TestTwoDriversApplyToOneCluster creates what the two drivers' overlays
// and the reference's unrenamed RBAC render, all in one namespace, in one
// real API server (envtest), and then asks it, as each driver's
// ServiceAccount, for every right the attacher reviews: each is granted
// by that driver's own objects. The API server validates every object
// (names, ports, labels) and refuses any object created twice, so a
// collision fails here too.
//
// It needs kube-apiserver and etcd: KUBEBUILDER_ASSETS, which `make test`
// sets (hack/install-envtest.sh).
func TestTwoDriversApplyToOneCluster(t *testing.T) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set: `make test` sets it (hack/install-envtest.sh)")
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting the API server: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	admin, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	kustomize := kustomizeBinary(t)
	drivers := []struct{ dir, driver, serviceAccount string }{
		{hostpathDir, "hostpath.csi.k8s.io", "csi-hostpathplugin-sa"},
		{severalDir, "other.csi.example.com", "csi-other-sa"},
	}
	var all []rendered
	for _, d := range drivers {
		all = append(all, render(t, kustomize, d.dir))
	}
	all = append(all, render(t, kustomize, referenceDir))
	// Namespaces first, once each: two drivers may share one.
	for _, r := range all {
		for _, o := range r.objects {
			if o.kind != "Namespace" {
				continue
			}
			u := &unstructured.Unstructured{Object: o.doc}
			if err := admin.Create(ctx, u.DeepCopy()); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatalf("%s: creating %s: %v", r.dir, o.id(), err)
			}
		}
	}
	for _, r := range all {
		for _, o := range r.objects {
			if o.kind == "Namespace" {
				continue
			}
			u := &unstructured.Unstructured{Object: o.doc}
			if err := admin.Create(ctx, u.DeepCopy()); err != nil {
				t.Errorf("%s: creating %s: %v", r.dir, o.id(), err)
			}
		}
	}
	if t.Failed() {
		return
	}

	for _, d := range drivers {
		const ns = "hostpath"
		as := rest.CopyConfig(cfg)
		as.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + d.serviceAccount}
		c, err := client.New(as, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		required := mustRights(rights.RequiredRights(true, ns, leader.LeaseName(d.driver)))
		for _, check := range rights.ReviewRights(ctx, rights.ClientReviewer(c), required) {
			if !check.Granted() {
				t.Errorf("%s: %s may not %s (%v): the Component's RBAC must grant it (%s)",
					d.dir, as.Impersonate.UserName, check.Right, check.Err, check.Right.GrantedByComponent)
			}
		}
	}
}

// mustRights is for the rights of the embedded roles, which parse.
func mustRights(rs []rights.Right, err error) []rights.Right {
	if err != nil {
		panic(err)
	}
	return rs
}
