# ebpf-proxy — top-level targets. `sudo make demo` and `sudo make test` work on a fresh
# Debian 12 machine: both install what they need first (`make deps`, idempotent).

SHELL := /bin/bash
DOTNET ?= dotnet
CONFIG ?= Release
ARTIFACTS := $(CURDIR)/artifacts
BPF_OUT := $(ARTIFACTS)/bpf
BIN := $(ARTIFACTS)/bin
APT_PACKAGES := clang llvm libbpf-dev libbpf1 bpftool iproute2 libelf1 linux-libc-dev make socat etcd-server openssl xz-utils prometheus \
	golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v2-dev golang-github-xeipuuv-gojsonschema-dev
# golang-go and the Go libraries: tools/chart-render, Helm's template engine for the chart tests (no
# helm binary can be installed here).
# kube-apiserver and kube-controller-manager for the real-API tests (read-only; see its README.md).
# CI runs in a fresh clone elsewhere: point K8S_SHARED at the folder there.
# (A worktree one level further down finds it at ../../shared/k8s; a clone anywhere else on this
# workplace's machines finds the fixed /work/shared/k8s.)
K8S_SHARED ?= $(firstword $(wildcard $(CURDIR)/../shared/k8s $(CURDIR)/../../shared/k8s /work/shared/k8s) $(CURDIR)/../shared/k8s)
K8S_ASSETS := $(ARTIFACTS)/k8s
export DOTNET_CLI_TELEMETRY_OPTOUT=1
export DOTNET_NOLOGO=1
export DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

.PHONY: all deps bpf build chart-render image image-rootfs k8s-assets test test-unit demo bench clean soak-restarts

all: build

## deps: install the system packages the build and the tests need (idempotent; prometheus is for
## the metrics E2E test, which scrapes the daemon with a real Prometheus).
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" != 0 ]; then echo "make deps needs root to install:$$missing" >&2; exit 1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@command -v $(DOTNET) >/dev/null || { echo "the .NET 10 SDK is required (dotnet not found on PATH)" >&2; exit 1; }

## bpf: compile the datapath objects.
bpf: deps
	$(MAKE) -C bpf OUT=$(BPF_OUT)

## build: the datapath objects and the ebpf-proxy executable. The executable is published
## ReadyToRun for this machine's runtime identifier: its restore also fetches the runtime pack and
## crossgen2 from NuGet, like every other package (nothing for `make deps` to install).
build: bpf
	$(DOTNET) build EbpfProxy.sln -c $(CONFIG) -nologo -v quiet
	$(DOTNET) publish src/EbpfProxy/EbpfProxy.csproj -c $(CONFIG) -nologo -v quiet -o $(BIN)
	cp $(BPF_OUT)/*.bpf.o $(BIN)/
	$(MAKE) --no-print-directory chart-render

## chart-render: `helm template` for the chart tests (tools/chart-render: text/template, sprig and
## gojsonschema from Debian's Go packages, built in GOPATH mode; no network).
chart-render: $(ARTIFACTS)/chart-render
$(ARTIFACTS)/chart-render: tools/chart-render/main.go
	mkdir -p $(ARTIFACTS)
	GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=$(ARTIFACTS)/go-cache go build -o $@ tools/chart-render/main.go

## image: the container image localhost/ebpf-proxy:<appVersion> (Containerfile) from the build's
## artefacts, with buildah; builds a Debian minbase with debootstrap when the standard base is not
## in local storage (docs/image.md). Not part of `make test`.
IMAGE_PACKAGES := buildah podman debootstrap
image: build
	@missing=""; for p in $(IMAGE_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi
	ARTIFACTS=$(ARTIFACTS) ./scripts/build-image.sh

## image-rootfs: unpacks the image into artifacts/image/rootfs and checks its /app against
## artifacts/bin; the least-privilege tests then run the daemon from that filesystem.
image-rootfs:
	ARTIFACTS=$(ARTIFACTS) ./scripts/unpack-image.sh

## k8s-assets: the control plane of the real-API tests, envtest style: kube-apiserver and
## kube-controller-manager decompressed from $(K8S_SHARED) into $(K8S_ASSETS) (checked against its
## SHA256SUMS), etcd linked from the etcd-server package. The tests find the folder through
## EBPF_PROXY_K8S_ASSETS; without it they skip (and fail under EBPF_PROXY_REQUIRE_PRIVILEGED=1).
k8s-assets: deps
	@if [ ! -f "$(K8S_SHARED)/SHA256SUMS" ]; then \
		echo "k8s-assets: no $(K8S_SHARED)/SHA256SUMS (set K8S_SHARED): the real-API tests will skip" >&2; exit 0; fi; \
	mkdir -p $(K8S_ASSETS); \
	for b in kube-apiserver kube-controller-manager; do \
		if ! (cd $(K8S_ASSETS) && grep " $$b\$$" "$(K8S_SHARED)/SHA256SUMS" | sha256sum -c --status 2>/dev/null); then \
			echo "k8s-assets: $$b"; xz -dc "$(K8S_SHARED)/$$b.xz" > $(K8S_ASSETS)/$$b.tmp && chmod +x $(K8S_ASSETS)/$$b.tmp && mv $(K8S_ASSETS)/$$b.tmp $(K8S_ASSETS)/$$b; \
			(cd $(K8S_ASSETS) && grep " $$b\$$" "$(K8S_SHARED)/SHA256SUMS" | sha256sum -c --quiet) || { rm -f $(K8S_ASSETS)/$$b; echo "k8s-assets: $$b does not match $(K8S_SHARED)/SHA256SUMS" >&2; exit 1; }; \
		fi; \
	done; \
	ln -sf "$$(command -v etcd)" $(K8S_ASSETS)/etcd

## test: every test (unit, kernel, end to end); kernel tests need root.
test: build k8s-assets
	EBPF_PROXY_K8S_ASSETS=$${EBPF_PROXY_K8S_ASSETS:-$$( [ -x $(K8S_ASSETS)/kube-apiserver ] && echo $(K8S_ASSETS))} ./scripts/run-tests.sh $(CONFIG)

## test-unit: tests that need no privileges.
test-unit: build
	EBPF_PROXY_TEST_FILTER=unit ./scripts/run-tests.sh $(CONFIG)

## demo: the seed scenario (3 echo backends behind 10.96.0.42:80) in network namespaces.
demo: build
	$(DOTNET) run --no-build -c $(CONFIG) --project tools/EbpfProxy.Demo -- --ebpf-proxy $(BIN)/ebpf-proxy --manifests examples/echo

## bench: scale runs, reported side by side (not part of `make test`); see docs/benchmarks.md.
bench: build
	$(DOTNET) build bench/EbpfProxy.Bench -c $(CONFIG) -nologo -v quiet
	$(DOTNET) bench/EbpfProxy.Bench/bin/$(CONFIG)/net10.0/EbpfProxy.Bench.dll control-plane
	$(DOTNET) bench/EbpfProxy.Bench/bin/$(CONFIG)/net10.0/EbpfProxy.Bench.dll api-scale --ebpf-proxy $(BIN)/ebpf-proxy --changes 200
	$(DOTNET) bench/EbpfProxy.Bench/bin/$(CONFIG)/net10.0/EbpfProxy.Bench.dll policy-scale --bpf-dir $(BPF_OUT)

clean:
	rm -rf $(ARTIFACTS)
	$(DOTNET) clean EbpfProxy.sln -nologo -v quiet || true
