# csi-attacher Makefile. `make` (or `make help`) lists the targets.

# Images built by docker-build and used by deploy / deploy-sample.
IMG ?= csi-attacher:latest
FAKEDRIVER_IMG ?= csi-attacher-fakedriver:latest
# Stamped into the binary as main.version, main.commit and main.buildDate
# (printed by --version).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS = -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.buildDate=$(BUILD_DATE)
BUILD_ARGS = --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --build-arg BUILD_DATE=$(BUILD_DATE)
# Platforms of docker-buildx: those the reference attacher's images are built for.
PLATFORMS ?= linux/amd64,linux/arm64,linux/ppc64le,linux/s390x

CONTAINER_TOOL ?= docker
KUBECTL ?= kubectl

# Packages and extra flags for `make test`, e.g.
#   make test TEST_PKGS=./controllers/... GINKGO_ARGS='-ginkgo.focus=detach -ginkgo.v'
# GINKGO_ARGS go after -args, so only use them with packages that run Ginkgo.
TEST_PKGS ?= ./...
TEST_ARGS ?=
GINKGO_ARGS ?=
# Per fuzz target, for `make fuzz`.
FUZZTIME ?= 30s
# Flags for `make bench` and `make bench-e2e`, e.g. BENCH_ARGS=--csi-latency=1s
# (see hack/bench/doc.go; attacher flags go after --).
BENCH_ARGS ?=
# `make run` against the cluster in $KUBECONFIG and a driver listening on CSI_ADDRESS.
CSI_ADDRESS ?= /tmp/csi.sock
RUN_ARGS ?= --leader-election=false --v=5

# Recipe lines run in bash with -e and pipefail, so a failing step or
# command substitution stops the target.
SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

# Go files in the tree that git does not ignore (tracked or not yet added).
GO_FILES = $$(git ls-files --cached --others --exclude-standard -- '*.go')
# Pinned tools, built once into the cache outside the clone (see hack/install-tools.sh).
KUSTOMIZE = kustomize="$$(hack/install-tools.sh kustomize)"
PROMTOOL = promtool="$$(hack/install-tools.sh promtool)"
# kube-apiserver and etcd for envtest, built once (see hack/install-envtest.sh).
ENVTEST_ASSETS = assets="$$(hack/install-envtest.sh)"; export KUBEBUILDER_ASSETS="$$assets"

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN { FS = ":.*## " } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5); next } \
	  /^[a-zA-Z0-9_-]+:.*## / { printf "  \033[36m%-17s\033[0m %s\n", $$1, $$2 }' \
	  $(MAKEFILE_LIST)
	@echo
	@echo "Variables: IMG=$(IMG) FAKEDRIVER_IMG=$(FAKEDRIVER_IMG) FUZZTIME=$(FUZZTIME)"

##@ Development

.PHONY: fmt
fmt: ## Format the Go files with gofmt -w.
	files="$(GO_FILES)"; [[ -z "$$files" ]] || gofmt -w $$files

.PHONY: vet
vet: ## Run go vet ./...
	go vet ./...

.PHONY: lint
lint: ## Fail on unformatted Go files (listing them), then go vet.
	files="$(GO_FILES)"; \
	unformatted="$$( [[ -z "$$files" ]] || gofmt -l $$files )"; \
	if [[ -n "$$unformatted" ]]; then \
	  echo "These files need gofmt (run 'make fmt'):"; echo "$$unformatted"; exit 1; \
	fi
	go vet ./...

.PHONY: manifests-check
manifests-check: ## Render every kustomization in config/ and check the result (go test ./hack/manifests/).
	$(KUSTOMIZE); \
	for dir in config/rbac config/components/sidecar config/samples/fakedriver config/samples config/default \
	    config/flowcontrol config/prometheus; do \
	  echo "kustomize build $$dir"; \
	  "$$kustomize" build "$$dir" >/dev/null; \
	done; \
	KUSTOMIZE="$$kustomize" go test -count=1 ./hack/manifests/

.PHONY: monitoring-check
monitoring-check: ## Check the alerting rules in config/prometheus/rules and run their unit tests with promtool.
	$(PROMTOOL); \
	"$$promtool" check rules config/prometheus/rules/attacher.rules.yaml; \
	"$$promtool" test rules config/prometheus/rules/attacher.rules.test.yaml

.PHONY: test
test: lint manifests-check monitoring-check ## Run the unit and envtest suites (TEST_PKGS, TEST_ARGS, GINKGO_ARGS).
	$(ENVTEST_ASSETS); \
	go test $(TEST_PKGS) -count=1 $(TEST_ARGS) $(if $(strip $(GINKGO_ARGS)),-args $(GINKGO_ARGS))

# Size of `make e2e`; KWOK_VERSION is the kwok the suite runs (built by
# hack/install-envtest.sh e2e).
E2E_NODES ?= 10
E2E_PODS ?= 50
KWOK_VERSION ?= v0.8.0
export KWOK_VERSION

.PHONY: e2e
e2e: ## Run the e2e suite (test/e2e): real kube-controller-manager, kube-scheduler, kwok nodes, the built attacher (E2E_NODES, E2E_PODS, GINKGO_ARGS).
	assets="$$(hack/install-envtest.sh e2e)"; export KUBEBUILDER_ASSETS="$$assets"; \
	E2E_NODES=$(E2E_NODES) E2E_PODS=$(E2E_PODS) go test -tags e2e ./test/e2e/ -count=1 -timeout 60m -v \
	  -args -ginkgo.v $(GINKGO_ARGS)

.PHONY: demo
demo: ## Run the demo (hack/demo) against envtest and the fake driver.
	$(ENVTEST_ASSETS); go run ./hack/demo

.PHONY: bench
bench: ## Run the throughput benchmark (hack/bench) with BENCH_ARGS.
	$(ENVTEST_ASSETS); go run ./hack/bench $(BENCH_ARGS)

.PHONY: bench-e2e
bench-e2e: ## Run the cluster benchmark: N Pods (default 1000) of StatefulSets on 50 kwok nodes (hack/bench -cluster, BENCH_ARGS).
	assets="$$(hack/install-envtest.sh e2e)"; export KUBEBUILDER_ASSETS="$$assets"; go run ./hack/bench -cluster $(BENCH_ARGS)

.PHONY: soak
soak: ## Run the fault-injection soak (hack/soak, a few minutes; not part of test) with SOAK_ARGS.
	$(ENVTEST_ASSETS); go run ./hack/soak $(SOAK_ARGS)

.PHONY: fuzz
fuzz: ## Run every Go fuzz target for FUZZTIME each.
	targets="$$(go test -list '^Fuzz' ./... | awk '/^Fuzz/ { names = names " " $$1; next } \
	  /^ok/ { n = split(names, a, " "); for (i = 1; i <= n; i++) print $$2, a[i]; names = "" }')"; \
	if [[ -z "$$targets" ]]; then echo "No fuzz targets found"; exit 0; fi; \
	set -- $$targets; \
	while [[ $$# -gt 0 ]]; do \
	  pkg="$$1"; target="$$2"; shift 2; \
	  echo "fuzzing $$pkg $$target for $(FUZZTIME)"; \
	  go test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) "$$pkg"; \
	done

##@ Build

.PHONY: build
build: ## Build bin/csi-attacher and bin/fakedriver.
	go build -ldflags "$(LDFLAGS)" -o bin/csi-attacher .
	go build -o bin/fakedriver ./hack/fakedriver

.PHONY: run
run: ## Run the attacher locally against KUBECONFIG and the driver at CSI_ADDRESS (RUN_ARGS).
	go run -ldflags "$(LDFLAGS)" . --csi-address=$(CSI_ADDRESS) $(RUN_ARGS)

.PHONY: docker-build
docker-build: ## Build the attacher image IMG and the fake driver image FAKEDRIVER_IMG.
	$(CONTAINER_TOOL) build $(BUILD_ARGS) -t $(IMG) .
	$(CONTAINER_TOOL) build $(BUILD_ARGS) --target fakedriver -t $(FAKEDRIVER_IMG) .

# The builder stage runs on the build machine (--platform=$BUILDPLATFORM in
# the Dockerfile) and cross-compiles for each target with TARGETOS and
# TARGETARCH, so no emulation is needed. buildx cannot load a multi-platform
# image into the local engine, hence --push.
.PHONY: docker-buildx
docker-buildx: ## Build and push IMG and FAKEDRIVER_IMG for PLATFORMS (linux/amd64,arm64,ppc64le,s390x) with docker buildx.
	- $(CONTAINER_TOOL) buildx create --name csi-attacher-builder
	$(CONTAINER_TOOL) buildx use csi-attacher-builder
	status=0; \
	$(CONTAINER_TOOL) buildx build --push --platform=$(PLATFORMS) $(BUILD_ARGS) -t $(IMG) . || status=$$?; \
	[[ $$status -ne 0 ]] || $(CONTAINER_TOOL) buildx build --push --platform=$(PLATFORMS) $(BUILD_ARGS) \
	  --target fakedriver -t $(FAKEDRIVER_IMG) . || status=$$?; \
	$(CONTAINER_TOOL) buildx rm csi-attacher-builder || true; \
	exit $$status

.PHONY: docker-push
docker-push: ## Push IMG and FAKEDRIVER_IMG.
	$(CONTAINER_TOOL) push $(IMG)
	$(CONTAINER_TOOL) push $(FAKEDRIVER_IMG)

##@ Deployment

.PHONY: deploy
deploy: ## Deploy config/default (the sample driver with the attacher as sidecar, IMG and FAKEDRIVER_IMG) to the cluster in KUBECONFIG.
	$(KUSTOMIZE); \
	(cd config/default && "$$kustomize" edit set image csi-attacher=$(IMG) csi-attacher-fakedriver=$(FAKEDRIVER_IMG)); \
	"$$kustomize" build config/default | $(KUBECTL) apply -f -

.PHONY: undeploy
undeploy: ## Delete what deploy created.
	$(KUSTOMIZE); \
	"$$kustomize" build config/default | $(KUBECTL) delete --ignore-not-found=true -f -

.PHONY: deploy-sample
deploy-sample: ## Deploy config/samples, the example overlay: as deploy, in namespace csi-attacher-sample (IMG, FAKEDRIVER_IMG).
	$(KUSTOMIZE); \
	(cd config/samples && "$$kustomize" edit set image csi-attacher=$(IMG) csi-attacher-fakedriver=$(FAKEDRIVER_IMG)); \
	"$$kustomize" build config/samples | $(KUBECTL) apply -f -

.PHONY: undeploy-sample
undeploy-sample: ## Delete what deploy-sample created.
	$(KUSTOMIZE); \
	"$$kustomize" build config/samples | $(KUBECTL) delete --ignore-not-found=true -f -
