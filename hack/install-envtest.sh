#!/usr/bin/env bash
# Provides the control-plane binaries the tests need and prints their
# directory, for KUBEBUILDER_ASSETS.
#
#   hack/install-envtest.sh        kube-apiserver and etcd (envtest, `make test`)
#   hack/install-envtest.sh e2e    also kube-controller-manager, kube-scheduler
#                                  and kwok with its stages (`make e2e`)
#
# setup-envtest normally downloads prebuilt binaries; this script builds them
# from their Go modules instead, so it works on machines that reach nothing
# but the Go module proxy. The versions are pinned, and the result is cached
# in setup-envtest's own folder layout outside the clone: machines that
# already have the official binaries there skip the build, and a second run
# is a no-op. All Kubernetes binaries are built with the same flags, so the
# second and third reuse the Go build cache of the first.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.3}"
# kwok simulates nodes and their Pods for the e2e suite. v0.8.0 is built
# against k8s.io/client-go v0.36, which speaks to a 1.37 API server.
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
GOOS_ARCH="$(go env GOOS)-$(go env GOARCH)"
ASSETS="${ENVTEST_ASSETS_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/kubebuilder-envtest/k8s/${KUBE_VERSION#v}-${GOOS_ARCH}}"

log() { echo "install-envtest: $*" >&2; }

case "${1:-}" in
  "") want=(kube-apiserver etcd) ;;
  e2e) want=(kube-apiserver etcd kube-controller-manager kube-scheduler "kwok-${KWOK_VERSION}" "kwok-stages-${KWOK_VERSION}.yaml") ;;
  *) echo "usage: $0 [e2e]" >&2; exit 2 ;;
esac

have() {
  local dir="$1" f
  for f in "${want[@]}"; do
    [[ -e "${dir}/${f}" ]] || return 1
  done
}

# An explicit KUBEBUILDER_ASSETS wins when it has everything.
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

# kube_build builds the named commands of k8s.io/kubernetes into ASSETS.
kube_build() {
  local cmds=() c
  for c in "$@"; do
    [[ -x "${ASSETS}/${c}" ]] || cmds+=("${c}")
  done
  [[ ${#cmds[@]} -gt 0 ]] || return 0
  log "building ${cmds[*]} ${KUBE_VERSION} (kube-apiserver alone takes about 20 minutes on 2 cores the first time; the others reuse its build cache; all are cached afterwards)"
  mkdir -p "${WORK}/kube"
  (
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
    # The main module's version is pinned in every `go get`: a bare
    # `go get k8s.io/kubernetes/cmd/...` would pull in the newest release.
    go get "k8s.io/kubernetes@${KUBE_VERSION}" >/dev/null 2>&1
    pkgs=()
    for c in "${cmds[@]}"; do
      go get "k8s.io/kubernetes/cmd/${c}@${KUBE_VERSION}" >/dev/null 2>&1
      pkgs+=("k8s.io/kubernetes/cmd/${c}")
    done
    mkdir -p out
    go build -trimpath -ldflags "-X k8s.io/component-base/version.gitVersion=${KUBE_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${KUBE_VERSION#v1.}" \
      -o out/ "${pkgs[@]}"
    for c in "${cmds[@]}"; do
      mv "out/${c}" "${ASSETS}/${c}"
    done
  )
}

kube_build kube-apiserver
[[ "${1:-}" == e2e ]] || { log "envtest binaries ready in ${ASSETS}"; echo "${ASSETS}"; exit 0; }

kube_build kube-controller-manager kube-scheduler

if [[ ! -x "${ASSETS}/kwok-${KWOK_VERSION}" ]]; then
  log "building kwok ${KWOK_VERSION}"
  # Outside any module, so kwok's own go.mod decides its dependencies.
  (cd "${WORK}" && GOBIN="${WORK}/bin" GOFLAGS=-buildvcs=false go install -trimpath "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}")
  mv "${WORK}/bin/kwok" "${ASSETS}/kwok-${KWOK_VERSION}"
fi

if [[ ! -e "${ASSETS}/kwok-stages-${KWOK_VERSION}.yaml" ]]; then
  # The kwok binary simulates nothing without stages; kwokctl normally
  # writes these defaults into its config. They ship in kwok's module:
  # node initialisation, heartbeat with a node Lease, and the fast Pod
  # lifecycle (ready, complete, delete).
  dir="$(cd "${WORK}" && GOFLAGS= go mod download -json "sigs.k8s.io/kwok@${KWOK_VERSION}" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')"
  stages=(
    kustomize/stage/node/fast/node-initialize.yaml
    kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
    kustomize/stage/pod/fast/pod-ready.yaml
    kustomize/stage/pod/fast/pod-complete.yaml
    kustomize/stage/pod/fast/pod-delete.yaml
  )
  out="${ASSETS}/kwok-stages-${KWOK_VERSION}.yaml.tmp"
  : >"${out}"
  for s in "${stages[@]}"; do
    echo "---" >>"${out}"
    cat "${dir}/${s}" >>"${out}"
  done
  mv "${out}" "${ASSETS}/kwok-stages-${KWOK_VERSION}.yaml"
fi

log "e2e binaries ready in ${ASSETS}"
echo "${ASSETS}"
