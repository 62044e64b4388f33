#!/usr/bin/env bash
# Builds the reference attacher, kubernetes-csi/external-attacher, at a pinned
# version into the tools cache outside the clone and prints its path. The
# scale benchmark (`make bench-scale`, hack/bench -scale) runs it side by side
# with this repository's attacher.
#
#   hack/install-reference-attacher.sh   -> .../csi-attacher/bin/external-attacher-v4.13.0
#
# It is built from the Go module proxy with the local Go toolchain, so nothing
# but the proxy has to be reachable. `go install module@version` refuses
# modules with replace directives, and external-attacher pins its k8s.io
# modules with some, so the build goes through a temporary module (as
# hack/install-envtest.sh does for kube-apiserver): the same replace
# directives, `go get` of the pinned version, `go build -o`. Nothing of the
# reference ends up in this repository; only the binary, in the cache.
#
# Only the path goes to stdout; progress goes to stderr.
set -euo pipefail

# v4.13.0 is the newest tag of github.com/kubernetes-csi/external-attacher/v4
# on the proxy (`go list -m -versions github.com/kubernetes-csi/external-attacher/v4`);
# its go.mod says go 1.26.0.
REFERENCE_VERSION="${REFERENCE_VERSION:-v4.13.0}"
MODULE=github.com/kubernetes-csi/external-attacher/v4

CACHE_ROOT="${CSI_ATTACHER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/csi-attacher}"
BIN_DIR="${CACHE_ROOT}/bin"
target="${BIN_DIR}/external-attacher-${REFERENCE_VERSION}"

log() { echo "install-reference-attacher: $*" >&2; }

if [[ -x "${target}" ]]; then
  echo "${target}"
  exit 0
fi

mkdir -p "${BIN_DIR}"
# Build in a private directory next to the target, then rename: concurrent
# runs never see a half-written binary.
work="$(mktemp -d "${BIN_DIR}/.external-attacher.XXXXXX")"
trap 'rm -rf "${work}"' EXIT

log "building ${MODULE}/cmd/csi-attacher@${REFERENCE_VERSION} (once; cached in ${BIN_DIR})"
(
  cd "${work}"
  export GOFLAGS=-mod=mod CGO_ENABLED=0
  go mod init reference-attacher >/dev/null 2>&1
  modfile="$(go mod download -json "${MODULE}@${REFERENCE_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')"
  # Its replace directives pin k8s.io modules ("replace k8s.io/api => k8s.io/api v0.37.0");
  # a dependent module has to repeat them.
  args=()
  while read -r from to version; do
    args+=("-replace=${from}=${to}@${version}")
  done < <(sed -n 's#^replace[[:space:]]*\([^[:space:]]*\)[[:space:]]*=>[[:space:]]*\([^[:space:]]*\)[[:space:]]*\(v[^[:space:]]*\)[[:space:]]*$#\1 \2 \3#p' "${modfile}")
  if [[ ${#args[@]} -gt 0 ]]; then
    go mod edit "${args[@]}"
  fi
  go get "${MODULE}@${REFERENCE_VERSION}" >&2
  go get "${MODULE}/cmd/csi-attacher@${REFERENCE_VERSION}" >&2
  go build -trimpath -ldflags "-X main.version=${REFERENCE_VERSION}" -o "${work}/csi-attacher" "${MODULE}/cmd/csi-attacher"
)
mv -f "${work}/csi-attacher" "${target}"

log "external-attacher ${REFERENCE_VERSION} ready"
echo "${target}"
