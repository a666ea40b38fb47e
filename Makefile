# ebpf-proxy — top-level targets. `sudo make demo` and `sudo make test` work on a fresh
# Debian 12 machine: both install what they need first (`make deps`, idempotent).

SHELL := /bin/bash
DOTNET ?= dotnet
CONFIG ?= Release
ARTIFACTS := $(CURDIR)/artifacts
BPF_OUT := $(ARTIFACTS)/bpf
BIN := $(ARTIFACTS)/bin
APT_PACKAGES := clang llvm libbpf-dev libbpf1 bpftool iproute2 libelf1 linux-libc-dev make socat prometheus
export DOTNET_CLI_TELEMETRY_OPTOUT=1
export DOTNET_NOLOGO=1
export DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

.PHONY: all deps bpf build test test-unit demo bench clean

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

## test: every test (unit, kernel, end to end); kernel tests need root.
test: build
	./scripts/run-tests.sh $(CONFIG)

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
