// Package config holds only tests: the tests of the deployment manifests in
// this directory. They render every kustomization with kustomize (the
// binary of hack/install-tools.sh, or $KUSTOMIZE, which
// `make manifests-check` sets) and check what a cluster would get: the
// attacher container of the sidecar Component shares the driver's one
// socket volume, probes the port it serves them on, and its role bindings
// name the ServiceAccount its Pod runs under; the samples' attacher runs
// locked down as the user that may open the driver's socket. Fixtures in
// testdata, shaped like real drivers' manifests, show that the Component
// keeps the vendor's container as it was but for what the attacher needs,
// changes only the marked workload, gives two drivers in one cluster no
// shared object, and deploys the objects doctor names. With
// KUBEBUILDER_ASSETS (make test) the two drivers' objects are created in
// one real API server, which must accept every one, and each driver's
// ServiceAccount must hold every right the attacher reviews.
//
// The tests of one directory's files sit in that directory: config/rbac
// (the ClusterRole stays least-privilege) and config/prometheus (the alerts
// and the dashboard name only what the attacher exports). kustomize reads
// only the files a kustomization.yaml names, so the Go files change no
// build; the fixtures under testdata are not among the kustomizations this
// package renders as config/'s own.
package config
