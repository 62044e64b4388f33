# syntax=docker/dockerfile:1
#
# docker build -t csi-attacher:latest .                                  # the attacher (default target)
# docker build --target fakedriver -t csi-attacher-fakedriver:latest .   # the fake CSI driver for config/samples
# make docker-buildx IMG=...                                             # linux/amd64, arm64, ppc64le, s390x

# The builder runs on the build machine's own platform and cross-compiles
# for the target platform (TARGETOS/TARGETARCH, set by BuildKit for each
# --platform), so a multi-platform build needs no emulation.
FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
# Printed by --version; the Makefile passes all three.
ARG VERSION=dev
ARG COMMIT=unknown
ARG BUILD_DATE=unknown

WORKDIR /workspace
# Dependencies first, so source edits do not invalidate this layer.
COPY go.mod go.sum ./
RUN go mod download

# The main package: every non-test .go file at the root.
COPY *.go ./
COPY controllers/ controllers/
COPY internal/ internal/
# The RBAC the attacher reviews its rights against, embedded (go:embed).
COPY config/rbac/ config/rbac/
COPY hack/fakedriver/ hack/fakedriver/

# Static binaries, no VCS stamping (.git is not in the build context).
ENV CGO_ENABLED=0
RUN GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.buildDate=${BUILD_DATE}" \
      -o /workspace/csi-attacher . \
 && GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -buildvcs=false \
      -ldflags "-s -w" -o /workspace/fakedriver ./hack/fakedriver

# The fake CSI driver used by config/samples and the demo: `--target fakedriver`.
# It runs as 65532, so its socket belongs to 65532 and the samples run the
# attacher non-root as that user too.
FROM gcr.io/distroless/static:nonroot AS fakedriver
WORKDIR /
COPY --from=builder /workspace/fakedriver /fakedriver
USER 65532:65532
ENTRYPOINT ["/fakedriver"]

# The attacher. Last stage, so it is what a plain `docker build` produces.
#
# It runs as root by default, as the reference attacher's image does, so
# that it is a drop-in replacement: a driver running as root creates its
# socket root-owned with mode 0755, and only its owner may connect to it.
# The shipped manifests never rely on that default: config/components/sidecar
# states the user explicitly and drops every capability (root without
# CAP_DAC_OVERRIDE opens only what root owns), and the samples run it as
# 65532 because their driver does. A socket the attacher may not open is
# logged at error level with its owner, mode and the fix.
FROM gcr.io/distroless/static:latest AS csi-attacher
WORKDIR /
COPY --from=builder /workspace/csi-attacher /csi-attacher
USER 0:0
ENTRYPOINT ["/csi-attacher"]
