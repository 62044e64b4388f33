#!/usr/bin/env bash
# Provides the control-plane binaries envtest needs (kube-apiserver and etcd)
# and prints their directory, for KUBEBUILDER_ASSETS.
#
# setup-envtest normally downloads prebuilt binaries; this script builds them
# from their Go modules instead, so it works on machines that reach nothing
# but the Go module proxy. The versions are pinned, and the result is cached
# in setup-envtest's own folder layout outside the clone: machines that
# already have the official binaries there skip the build, and a second run
# is a no-op.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.3}"
GOOS_ARCH="$(go env GOOS)-$(go env GOARCH)"
ASSETS="${ENVTEST_ASSETS_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/kubebuilder-envtest/k8s/${KUBE_VERSION#v}-${GOOS_ARCH}}"

log() { echo "install-envtest: $*" >&2; }
have() { [[ -x "$1/kube-apiserver" && -x "$1/etcd" ]]; }

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]] && have "${KUBEBUILDER_ASSETS}"; then
  echo "${KUBEBUILDER_ASSETS}"
  exit 0
fi
if have "${ASSETS}"; then
  echo "${ASSETS}"
  exit 0
fi

mkdir -p "${ASSETS}"
# One build at a time: `make test` and `make demo` may start together.
exec 9>"${ASSETS}.lock"
flock 9
if have "${ASSETS}"; then
  echo "${ASSETS}"
  exit 0
fi

WORK="$(mktemp -d)"
trap 'rm -rf "${WORK}"' EXIT
export GOFLAGS=-mod=mod CGO_ENABLED=0

if [[ ! -x "${ASSETS}/etcd" ]]; then
  log "building etcd ${ETCD_VERSION} (a few minutes the first time)"
  mkdir -p "${WORK}/etcd"
  (
    cd "${WORK}/etcd"
    go mod init envtest-etcd >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >/dev/null
    go build -trimpath -o "${ASSETS}/etcd.tmp" go.etcd.io/etcd/server/v3
  )
  mv "${ASSETS}/etcd.tmp" "${ASSETS}/etcd"
fi

if [[ ! -x "${ASSETS}/kube-apiserver" ]]; then
  log "building kube-apiserver ${KUBE_VERSION} (about 20 minutes on 2 cores the first time; cached afterwards)"
  mkdir -p "${WORK}/kube"
  cd "${WORK}/kube"
  go mod init envtest-kube >/dev/null 2>&1
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces
  # them with local directories; outside its repository each one has to be
  # pinned to the published version of the same release (v1.37.2 -> v0.37.2).
  staging_version="v0.${KUBE_VERSION#v1.}"
  modfile="$(go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')"
  mapfile -t staging < <(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "${modfile}")
  if [[ ${#staging[@]} -eq 0 ]]; then
    log "no staging replace directives found in ${modfile}"
    exit 1
  fi
  args=()
  for m in "${staging[@]}"; do
    args+=("-replace=${m}=${m}@${staging_version}")
  done
  go mod edit "${args[@]}"
  go get "k8s.io/kubernetes@${KUBE_VERSION}" >/dev/null 2>&1
  go get k8s.io/kubernetes/cmd/kube-apiserver >/dev/null 2>&1
  go build -trimpath -ldflags "-X k8s.io/component-base/version.gitVersion=${KUBE_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${KUBE_VERSION#v1.}" \
    -o "${ASSETS}/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  mv "${ASSETS}/kube-apiserver.tmp" "${ASSETS}/kube-apiserver"
fi

log "envtest binaries ready in ${ASSETS}"
echo "${ASSETS}"
