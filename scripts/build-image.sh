#!/usr/bin/env bash
# make image: builds the ebpf-proxy image (Containerfile) from the `make build` artefacts with
# buildah, and prints its size. See docs/image.md.
#
# This machine reaches no container registry and cannot run OCI containers (crun's setrlimit
# fails, hybrid v1/v2 cgroups), so:
#   - the base: the Containerfile's standard one (debian:bookworm-slim) when it is in local
#     storage; otherwise the same Debian release built from Debian's archive with
#     `debootstrap --variant=minbase`, trimmed the way the slim image is (no docs, man pages,
#     locales, apt lists) and imported with `podman import` as $LOCAL_BASE, passed as BASE;
#   - the build: `buildah bud --isolation chroot`, which runs the RUN step in a chroot instead of
#     an OCI runtime container (no setrlimit, no cgroup), with the host's network for apt.
set -euo pipefail
cd "$(dirname "$0")/.."

ARTIFACTS=${ARTIFACTS:-$PWD/artifacts}
BIN=$ARTIFACTS/bin
CTX=$ARTIFACTS/image/context
STANDARD_BASE=${STANDARD_BASE:-docker.io/library/debian:bookworm-slim}
LOCAL_BASE=${LOCAL_BASE:-localhost/ebpf-proxy-base:bookworm}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
VERSION=${VERSION:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/ebpf-proxy/Chart.yaml)}
IMAGE=${IMAGE:-localhost/ebpf-proxy:$VERSION}
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
SOURCE=$(git remote get-url origin 2>/dev/null || echo unknown)

for tool in buildah podman; do
  command -v $tool >/dev/null || { echo "make image needs $tool (apt-get install buildah podman debootstrap)" >&2; exit 1; }
done
[ -x "$BIN/ebpf-proxy" ] && ls "$BIN"/*.bpf.o >/dev/null 2>&1 || { echo "no $BIN/ebpf-proxy or BPF objects: run make build" >&2; exit 1; }

# The context: the artefacts of make build as they are, and the runtime they target.
rm -rf "$CTX"
mkdir -p "$CTX/app" "$CTX/dotnet/shared"
cp -a "$BIN/." "$CTX/app/"
dotnet_root=$(dirname "$(readlink -f "$(command -v dotnet)")")
fx_version=$(sed -n 's/.*"version": *"\([0-9.]*\)".*/\1/p' "$BIN/ebpf-proxy.runtimeconfig.json" | head -1)
for fw in Microsoft.NETCore.App Microsoft.AspNetCore.App; do
  # The newest patch of the targeted major.minor, as roll-forward picks it.
  v=$(ls "$dotnet_root/shared/$fw" | grep "^${fx_version%.*}\." | sort -V | tail -1)
  [ -n "$v" ] || { echo "no $fw ${fx_version%.*}.x runtime under $dotnet_root/shared" >&2; exit 1; }
  mkdir -p "$CTX/dotnet/shared/$fw"
  cp -a "$dotnet_root/shared/$fw/$v" "$CTX/dotnet/shared/$fw/"
done
cp -a "$dotnet_root/host" "$CTX/dotnet/"
cp -a "$dotnet_root/dotnet" "$CTX/dotnet/"
cp LICENSE "$CTX/app/LICENSE"

# The base.
if podman image exists "$STANDARD_BASE"; then
  base=$STANDARD_BASE
else
  base=$LOCAL_BASE
  if ! podman image exists "$LOCAL_BASE"; then
    command -v debootstrap >/dev/null || { echo "$STANDARD_BASE is not in local storage and debootstrap is missing" >&2; exit 1; }
    echo "image: $STANDARD_BASE is not in local storage; building $LOCAL_BASE with debootstrap --variant=minbase $SUITE"
    rootfs=$ARTIFACTS/image/base-rootfs
    rm -rf "$rootfs"
    debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR" >"$ARTIFACTS/image/debootstrap.log" 2>&1 \
      || { tail -20 "$ARTIFACTS/image/debootstrap.log" >&2; exit 1; }
    # What the slim image leaves out.
    rm -rf "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
      "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/info/* \
      "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
    tar -C "$rootfs" --numeric-owner -c . | podman import \
      --change 'CMD ["bash"]' --message "debootstrap --variant=minbase $SUITE, trimmed like the slim image" - "$LOCAL_BASE"
    rm -rf "$rootfs"
  fi
fi

echo "image: building $IMAGE on $base"
buildah bud --isolation chroot --layers=false -f Containerfile \
  --build-arg BASE="$base" --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" --build-arg SOURCE="$SOURCE" \
  -t "$IMAGE" "$CTX"
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
echo "image: $IMAGE, $((size / 1000000)) MB uncompressed ($size bytes)"
