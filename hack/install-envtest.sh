#!/usr/bin/env bash
# Builds the control-plane binaries that envtest needs (kube-apiserver and etcd)
# from their Go modules and caches them outside the clone.
#
# setup-envtest normally downloads prebuilt binaries; building them from the
# module proxy works on machines that reach nothing but the proxy. The build is
# pinned, so the cache key is the versions: a second run is a no-op.
#
# Prints the asset directory (suitable for KUBEBUILDER_ASSETS) on stdout.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.3}"
CACHE_ROOT="${CSI_ATTACHER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/csi-attacher}"
ASSETS="${CACHE_ROOT}/envtest/k8s-${KUBE_VERSION}-etcd-${ETCD_VERSION}"

log() { echo "install-envtest: $*" >&2; }

if [[ -x "${ASSETS}/kube-apiserver" && -x "${ASSETS}/etcd" ]]; then
  echo "${ASSETS}"
  exit 0
fi

mkdir -p "${ASSETS}"
WORK="$(mktemp -d)"
trap 'rm -rf "${WORK}"' EXIT

# The staging version that matches a Kubernetes release: v1.37.2 -> v0.37.2.
STAGING_VERSION="v0.${KUBE_VERSION#v1.}"

if [[ ! -x "${ASSETS}/etcd" ]]; then
  log "building etcd ${ETCD_VERSION} (a few minutes)"
  mkdir -p "${WORK}/etcd"
  (
    cd "${WORK}/etcd"
    go mod init envtest-etcd >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >&2
    CGO_ENABLED=0 go build -trimpath -o "${ASSETS}/etcd.tmp" go.etcd.io/etcd/server/v3
  )
  mv "${ASSETS}/etcd.tmp" "${ASSETS}/etcd"
fi

if [[ ! -x "${ASSETS}/kube-apiserver" ]]; then
  log "building kube-apiserver ${KUBE_VERSION} (about 20 minutes on 2 cores; cached afterwards)"
  mkdir -p "${WORK}/kube"
  cd "${WORK}/kube"
  go mod init envtest-kube >/dev/null 2>&1
  # k8s.io/kubernetes refers to its staging modules as v0.0.0 with local
  # replace directives; outside its repository every one of them has to be
  # pinned to the published version of the same release.
  modfile="$(go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')"
  mapfile -t staging < <(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "${modfile}")
  if [[ ${#staging[@]} -eq 0 ]]; then
    log "no staging replace directives found in ${modfile}"
    exit 1
  fi
  args=()
  for m in "${staging[@]}"; do
    args+=("-replace=${m}=${m}@${STAGING_VERSION}")
  done
  go mod edit "${args[@]}"
  go get "k8s.io/kubernetes@${KUBE_VERSION}" >&2
  go get k8s.io/kubernetes/cmd/kube-apiserver >&2
  CGO_ENABLED=0 go build -trimpath -o "${ASSETS}/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  mv "${ASSETS}/kube-apiserver.tmp" "${ASSETS}/kube-apiserver"
fi

log "envtest binaries ready in ${ASSETS}"
echo "${ASSETS}"
