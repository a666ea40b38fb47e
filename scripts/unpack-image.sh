#!/usr/bin/env bash
# make image-rootfs: unpacks the built image's filesystem into artifacts/image/rootfs (for the
# least-privilege test, which runs the daemon from it) and checks that its /app holds exactly the
# artefacts of make build (artifacts/bin), file by file.
set -euo pipefail
cd "$(dirname "$0")/.."
ARTIFACTS=${ARTIFACTS:-$PWD/artifacts}
VERSION=${VERSION:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/ebpf-proxy/Chart.yaml)}
IMAGE=${IMAGE:-localhost/ebpf-proxy:$VERSION}
ROOTFS=$ARTIFACTS/image/rootfs

podman image exists "$IMAGE" || { echo "no image $IMAGE: run make image" >&2; exit 1; }
rm -rf "$ROOTFS"
mkdir -p "$ROOTFS"
# No container is run (podman cannot run one here): the image's layers are mounted and copied.
mnt=$(podman image mount "$IMAGE")
trap 'podman image unmount "$IMAGE" >/dev/null' EXIT
cp -a "$mnt/." "$ROOTFS/"
podman image inspect --format '{{json .Config}}' "$IMAGE" > "$ARTIFACTS/image/config.json"

# The same artefacts as make build: every file of artifacts/bin, identical, and nothing else.
diff <(cd "$ARTIFACTS/bin" && find . -type f | sort | xargs sha256sum) \
     <(cd "$ROOTFS/app" && find . -type f ! -name LICENSE | sort | xargs sha256sum) \
  || { # The mount points a runtime creates for the chart's volumes (the tests mount them read-only).
# /var/run is a symlink to /run in Debian: create the folder under /run, never through the link
# (an absolute link would resolve on the host).
mkdir -p "$ROOTFS/host/sys/fs/cgroup" "$ROOTFS/run/secrets/kubernetes.io/serviceaccount"
echo "image-rootfs: $IMAGE's /app differs from artifacts/bin" >&2; exit 1; }
# The mount points a runtime creates for the chart's volumes (the tests mount them read-only).
# /var/run is a symlink to /run in Debian: create the folder under /run, never through the link
# (an absolute link would resolve on the host).
mkdir -p "$ROOTFS/host/sys/fs/cgroup" "$ROOTFS/run/secrets/kubernetes.io/serviceaccount"
echo "image-rootfs: $ROOTFS; /app holds the $(find "$ARTIFACTS/bin" -type f | wc -l) files of artifacts/bin"
