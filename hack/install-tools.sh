#!/usr/bin/env bash
# Installs a pinned Go tool into a cache outside the clone and prints its path.
#
#   hack/install-tools.sh kustomize      -> .../csi-attacher/bin/kustomize-v5.8.2
#   hack/install-tools.sh promtool       -> .../csi-attacher/bin/promtool-v0.316.0
#   hack/install-tools.sh controller-gen -> .../csi-attacher/bin/controller-gen-v0.23.0
#   hack/install-tools.sh staticcheck    -> .../csi-attacher/bin/staticcheck-v0.8.2
#
# The tools are built from the Go module proxy with the local Go toolchain
# (`go install module@version`), so nothing but the proxy has to be reachable.
# The file names carry the version, so bumping a pin below installs the new
# version beside the old one and a second run is a no-op. No symlinks: the
# printed path is the binary itself.
#
# Only the path goes to stdout; progress goes to stderr, so
# `$(hack/install-tools.sh kustomize) build config/default` works.
set -euo pipefail

# Pins. kustomize v5.8.2 is the newest release whose go.mod (go 1.26.0,
# sigs.k8s.io/kustomize/api v0.21.2) builds with go1.26; v5.8.3 needs go1.27.
#
# golangci-lint is deliberately not offered: v2.15.0 built from the proxy took
# over 12 minutes on 2 busy cores, too slow for a tool `make test` depends on.
KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.8.2}"
# promtool v0.316.0 is Prometheus 3.16.0 (the Go module tags Prometheus v3.x.y
# as v0.3xx.y); its go.mod says go 1.26.7 and has no replace directives, so
# `go install` builds it with go1.26. It checks and unit-tests the alerting
# rules in config/prometheus/rules (`make monitoring-check`). It is built with
# the tag remove_all_sd, which leaves out Prometheus' service-discovery plugins
# (the cloud SDKs: most of the build time, and nothing `promtool check rules`
# or `promtool test rules` uses): a cold build took 7.5 minutes on 2 busy
# cores, against more than 15 without the tag.
PROMTOOL_VERSION="${PROMTOOL_VERSION:-v0.316.0}"
# controller-gen v0.23.0 (go.mod: go 1.26.0, k8s.io/* v0.37.0) generates
# config/rbac/role.yaml from the +kubebuilder:rbac markers (`make manifests`).
# A cold build, downloads included, took 4 minutes on 2 busy cores.
CONTROLLER_GEN_VERSION="${CONTROLLER_GEN_VERSION:-v0.23.0}"
# staticcheck v0.8.2 (go.mod: go 1.26.0) runs in `make lint`; a cold build
# took 1.3 minutes on 2 busy cores.
STATICCHECK_VERSION="${STATICCHECK_VERSION:-v0.8.2}"
# logcheck (sigs.k8s.io/logtools) is not installed here: hack/tools/logcheck
# builds its analyzer from go.mod as a go vet tool, whose results go vet
# caches (the released binary, on golang.org/x/tools v0.26, cannot report
# findings through go1.26's vet).

CACHE_ROOT="${CSI_ATTACHER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/csi-attacher}"
BIN_DIR="${CACHE_ROOT}/bin"

log() { echo "install-tools: $*" >&2; }

usage() {
  echo "usage: $0 kustomize|promtool|controller-gen|staticcheck" >&2
  exit 2
}

[[ $# -eq 1 ]] || usage

case "$1" in
  kustomize)
    name=kustomize
    version="${KUSTOMIZE_VERSION}"
    package=sigs.k8s.io/kustomize/kustomize/v5
    tags=
    ;;
  promtool)
    name=promtool
    version="${PROMTOOL_VERSION}"
    package=github.com/prometheus/prometheus/cmd/promtool
    tags=remove_all_sd
    ;;
  controller-gen)
    name=controller-gen
    version="${CONTROLLER_GEN_VERSION}"
    package=sigs.k8s.io/controller-tools/cmd/controller-gen
    tags=
    ;;
  staticcheck)
    name=staticcheck
    version="${STATICCHECK_VERSION}"
    package=honnef.co/go/tools/cmd/staticcheck
    tags=
    ;;
  *)
    usage
    ;;
esac

target="${BIN_DIR}/${name}-${version}"
if [[ -x "${target}" ]]; then
  echo "${target}"
  exit 0
fi

mkdir -p "${BIN_DIR}"
# Build into a private directory next to the target, then rename: concurrent
# runs never see a half-written binary.
work="$(mktemp -d "${BIN_DIR}/.${name}.XXXXXX")"
trap 'rm -rf "${work}"' EXIT

log "building ${package}@${version}${tags:+ with tags ${tags}} (once; cached in ${BIN_DIR})"
# Run outside any module so the repository's go.mod has no say.
(cd "${work}" && GOBIN="${work}" GOFLAGS=-buildvcs=false go install ${tags:+-tags "${tags}"} "${package}@${version}" >&2)
mv -f "${work}/${name}" "${target}"

log "${name} ${version} ready"
echo "${target}"
