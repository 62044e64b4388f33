# syntax=docker/dockerfile:1
#
# docker build -t csi-attacher:latest .                                  # the attacher (default target)
# docker build --target fakedriver -t csi-attacher-fakedriver:latest .   # the fake CSI driver for config/samples

FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev

WORKDIR /workspace
# Dependencies first, so source edits do not invalidate this layer.
COPY go.mod go.sum ./
RUN go mod download

COPY main.go main.go
COPY controllers/ controllers/
COPY internal/ internal/
COPY hack/fakedriver/ hack/fakedriver/

# Static binaries, no VCS stamping (.git is not in the build context).
ENV CGO_ENABLED=0
RUN GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION}" -o /workspace/csi-attacher . \
 && GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -buildvcs=false \
      -ldflags "-s -w" -o /workspace/fakedriver ./hack/fakedriver

# The fake CSI driver used by config/samples and the demo: `--target fakedriver`.
FROM gcr.io/distroless/static:nonroot AS fakedriver
WORKDIR /
COPY --from=builder /workspace/fakedriver /fakedriver
USER 65532:65532
ENTRYPOINT ["/fakedriver"]

# The attacher. Last stage, so it is what a plain `docker build` produces.
FROM gcr.io/distroless/static:nonroot AS csi-attacher
WORKDIR /
COPY --from=builder /workspace/csi-attacher /csi-attacher
USER 65532:65532
ENTRYPOINT ["/csi-attacher"]
