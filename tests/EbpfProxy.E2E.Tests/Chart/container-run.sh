#!/usr/bin/env bash
# Runs a command the way a container runtime runs the chart's daemon container, for the
# least-privilege tests (ChartRealApiTests): run it as
#   ip netns exec NODE unshare --mount --propagation private container-run.sh ROOTFS APP BPFFS CGROUP SECRETS UID CAPS -- CMD ARGS...
# In that private mount namespace (its mounts vanish with it; nothing is mounted on the host):
#   - the root is ROOTFS (the image's unpacked filesystem), or with ROOTFS=host a tmpfs holding
#     the host's /usr and /etc with APP at /app (the same layout, for runs without a built image);
#   - the chart's volumes: BPFFS at /sys/fs/bpf, CGROUP read-only at /host/sys/fs/cgroup, a tmpfs
#     at /tmp, SECRETS read-only as the in-cluster service account folder; proc and the network
#     namespace's sysfs;
#   - the root is remounted read-only (readOnlyRootFilesystem: true);
#   - setpriv leaves exactly CAPS (e.g. "+bpf,+net_admin,+perfmon") in the bounding set and no
#     inheritable or ambient ones, runs as UID, with no_new_privs (allowPrivilegeEscalation: false),
#     and execs CMD, which keeps this script's PID (signals reach the daemon).
set -euo pipefail
[ $# -ge 9 ] && [ "$8" = "--" ] || { echo "usage: $0 ROOTFS APP BPFFS CGROUP SECRETS UID CAPS -- CMD ARGS..." >&2; exit 2; }
rootfs=$1 app=$2 bpffs=$3 cgroup=$4 secrets=$5 uid=$6 caps=$7
shift 8
new=/mnt
# /var/run/secrets/kubernetes.io/serviceaccount inside the new root; Debian's /var/run is a link to
# /run, which must not be followed from outside (it would resolve on the host).
secrets_in=var/run/secrets/kubernetes.io/serviceaccount
if [ "$rootfs" = host ]; then
  mount -t tmpfs -o mode=0755 ctr-root "$new"
  for d in usr etc; do mkdir "$new/$d"; mount --rbind "/$d" "$new/$d"; done
  for l in bin sbin lib lib64; do [ -L "/$l" ] && ln -s "$(readlink "/$l")" "$new/$l"; done
  mkdir -p "$new/app" && mount --bind "$app" "$new/app"
  mkdir -p "$new/proc" "$new/sys" "$new/dev" "$new/tmp" "$new/host/sys/fs/cgroup" "$new/$secrets_in"
else
  mount --bind "$rootfs" "$new"
  [ -L "$new/var/run" ] && secrets_in=run/secrets/kubernetes.io/serviceaccount
  for d in host/sys/fs/cgroup $secrets_in; do
    [ -d "$new/$d" ] || { echo "$rootfs has no /$d: make image-rootfs creates it" >&2; exit 2; }
  done
fi
mount -t proc proc "$new/proc"
mount -t sysfs sysfs "$new/sys"
mount --bind "$bpffs" "$new/sys/fs/bpf"
mount --bind "$cgroup" "$new/host/sys/fs/cgroup"
mount -o remount,bind,ro "$new/host/sys/fs/cgroup"
mount --rbind /dev "$new/dev"
mount -t tmpfs -o mode=1777,size=16m tmp "$new/tmp"
mount --bind "$secrets" "$new/$secrets_in"
mount -o remount,bind,ro "$new/$secrets_in"
mount -o remount,ro,bind "$new"
exec chroot "$new" setpriv --reuid="$uid" --regid="$uid" --clear-groups --inh-caps=-all --ambient-caps=-all \
  --bounding-set=-all${caps:+,$caps} --no-new-privs -- "$@"
