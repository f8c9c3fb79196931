#!/usr/bin/env bash
# Start-up cost of a container through real clients, lasso-runc against runc and crun, measured
# side by side in one run: `podman run --rm IMAGE true` (podman + conmon) and `ctr run --rm`
# (containerd's runc shim v2 with --runc-binary), plus lasso-runc with `run.lasso.profile=standard`
# (the opt-in policy and its exec-gate monitor). Prints hyperfine's table and the ratios.
#
#   cargo build --release --bin lasso-runc && sudo benches/clients.sh [RUNS]
#
# LASSO_RUNC=PATH picks another build. Runs as root, in a private mount namespace of its own,
# with every config, store, socket and state in a temp dir and containers under a cgroup of its
# own; all of it is removed on exit.
#
# crun 1.8 refuses this machine's hybrid cgroup layout ("cgroups in hybrid mode not supported"),
# so crun runs through a wrapper that hides the cgroup2 mount /sys/fs/cgroup/unified in a mount
# namespace of its own: crun then sees (and uses) the v1 controllers, as runc does. The wrapper
# costs an unshare, a shell and a mount per crun call (podman makes three); the script measures
# that cost too, so crun's figure can be read with and without it.
set -euo pipefail

runs=${1:-10}
repo=$(cd "$(dirname "$0")/.." && pwd)
lasso=${LASSO_RUNC:-$repo/target/release/lasso-runc}

if [ "${LASSO_BENCH_IN_NS:-}" != 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "benches/clients.sh: run as root (it starts containerd and podman)" >&2; exit 2; }
  for t in podman conmon containerd ctr hyperfine runc crun jq busybox; do
    command -v "$t" >/dev/null || { echo "benches/clients.sh: $t is missing (apt-get install -y podman conmon containerd hyperfine runc crun jq busybox-static)" >&2; exit 2; }
  done
  LASSO_BENCH_IN_NS=1 exec unshare --mount --propagation private "$0" "$@"
fi

tmp=$(mktemp -d /tmp/lasso-bench-clients-XXXXXX)
chmod 755 "$tmp"
cg=lasso-bench-clients-$$
ctrd_pid=
cleanup() {
  set +e
  [ -n "${podman_ok:-}" ] && pod rm -af -t 0 >/dev/null 2>&1
  if [ -n "$ctrd_pid" ]; then
    kill "$ctrd_pid" 2>/dev/null
    wait "$ctrd_pid" 2>/dev/null
  fi
  # Whatever is left in our cgroups was started by this script's clients.
  for h in /sys/fs/cgroup/*/"$cg" /sys/fs/cgroup/"$cg"; do
    [ -d "$h" ] || continue
    find "$h" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null
  done
  sleep 0.2
  for h in /sys/fs/cgroup/*/"$cg" /sys/fs/cgroup/"$cg"; do
    [ -d "$h" ] && find "$h" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  awk -v t="$tmp/" 'index($5, t) == 1 {print $5}' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
  umount -l /run 2>/dev/null
  if [ -n "${made_varlib:-}" ]; then umount -l /var/lib/containers; rmdir /var/lib/containers; fi
  rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT

# Clients keep some state at fixed paths (podman under /run and /var/lib/containers/cache,
# shims in /run/containerd/s): in this namespace those are the temp dir's.
mkdir -p "$tmp/run" "$tmp/varlib"
mount --bind "$tmp/run" /run
if [ ! -d /var/lib/containers ]; then mkdir /var/lib/containers; made_varlib=1; fi
mount --bind "$tmp/varlib" /var/lib/containers

# The image: busybox-static and its applet links, one layer, as a docker-archive.
img=localhost/lasso-bench/busybox:latest
root=$tmp/img/rootfs
mkdir -p "$root"/{bin,etc,proc,sys,dev,tmp,root}
cp /bin/busybox "$root/bin/busybox"
for a in $(busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
echo 'root:x:0:' > "$root/etc/group"
arch=$(uname -m); case $arch in x86_64) arch=amd64;; aarch64) arch=arm64;; esac
d=$tmp/img/docker; mkdir -p "$d"
tar --numeric-owner --owner=0 --group=0 -C "$root" -cf "$tmp/img/layer.tar" .
lh=$(sha256sum "$tmp/img/layer.tar" | cut -d' ' -f1)
mkdir -p "$d/$lh" && mv "$tmp/img/layer.tar" "$d/$lh/layer.tar"
printf '{"architecture":"%s","os":"linux","config":{"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$arch" "$lh" > "$d/config.json"
ch=$(sha256sum "$d/config.json" | cut -d' ' -f1)
mv "$d/config.json" "$d/$ch.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$ch" "$img" "$lh" > "$d/manifest.json"
tar -C "$d" -cf "$tmp/img/busybox.tar" .

crun=$(command -v crun)
{
  echo '#!/bin/sh'
  echo "exec unshare --mount --propagation private sh -c 'mount -t tmpfs none /sys/fs/cgroup/unified && exec $crun \"\$@\"' crun \"\$@\""
} > "$tmp/crun-v1"
chmod 755 "$tmp/crun-v1"
declare -A rt=([runc]=$(command -v runc) [crun]=$tmp/crun-v1)
if [ -x "$lasso" ]; then
  rt[lasso-runc]=$lasso
else
  echo "lasso-runc not found at $lasso (cargo build --release --bin lasso-runc); measuring runc and crun only" >&2
fi
names=(); for n in lasso-runc runc crun; do [ -n "${rt[$n]:-}" ] && names+=("$n"); done

# Podman, configured entirely in the temp dir.
{
  echo '[containers]'
  echo 'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]'
  echo '[engine]'
  echo 'cgroup_manager = "cgroupfs"'
  echo 'events_logger = "file"'
  echo "events_logfile_path = \"$tmp/events.log\""
  echo 'lock_type = "file"'
  echo "tmp_dir = \"$tmp/podman-tmp\""
  echo "volume_path = \"$tmp/volumes\""
  echo 'runtime_supports_json = ["crun", "runc", "lasso-runc"]'
  echo '[engine.runtimes]'
  for n in "${names[@]}"; do echo "$n = [\"${rt[$n]}\"]"; done
  echo '[network]'
  echo "network_config_dir = \"$tmp/networks\""
} > "$tmp/containers.conf"
printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/storage"\nrunroot = "%s/prun"\n' "$tmp" "$tmp" > "$tmp/storage.conf"
export CONTAINERS_CONF=$tmp/containers.conf CONTAINERS_STORAGE_CONF=$tmp/storage.conf
podman_global="--root $tmp/storage --runroot $tmp/prun --tmpdir $tmp/podman-tmp --cgroup-manager cgroupfs --events-backend file"
pod() { podman $podman_global "$@"; }
pod load -q -i "$tmp/img/busybox.tar" >/dev/null
podman_ok=1

# containerd, configured entirely in the temp dir.
cat > "$tmp/containerd.toml" <<EOF
version = 2
root = "$tmp/containerd/root"
state = "$tmp/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$tmp/containerd.sock"
EOF
mkdir -p "/sys/fs/cgroup/pids/$cg" 2>/dev/null || mkdir -p "/sys/fs/cgroup/$cg"
# The audit key ring of annotated containers stays in the temp dir (containerd's shims pass
# their environment on to the runtime; conmon does not, so podman's use root's /etc/lasso).
LASSO_CONFIG_DIR=$tmp/keys containerd --config "$tmp/containerd.toml" >"$tmp/containerd.log" 2>&1 &
ctrd_pid=$!
ctr_() { ctr --address "$tmp/containerd.sock" -n bench "$@"; }
for _ in $(seq 100); do ctr_ version >/dev/null 2>&1 && break; sleep 0.1; done
ctr_ images import "$tmp/img/busybox.tar" >/dev/null

pcmds=(); ccmds=()
for n in "${names[@]}"; do
  pcmds+=(-n "podman $n" "podman $podman_global run --rm --pull never --runtime $n --network none --cgroup-parent /$cg/podman $img true")
  ccmds+=(-n "ctr $n" "ctr --address $tmp/containerd.sock -n bench run --rm --runc-binary ${rt[$n]} --runc-root $tmp/runc-root/$n --cgroup /$cg/ctr/bench-$n $img bench-$n true")
done
# lasso-runc once more with the opt-in policy: the profile's seccomp baseline, Landlock, and the
# exec gate's monitor (forked by create, tracing init, writing the container's own audit log).
if [ -n "${rt[lasso-runc]:-}" ]; then
  prof="run.lasso.profile=standard"
  pcmds+=(-n "podman lasso-runc+profile" "podman $podman_global run --rm --pull never --runtime lasso-runc --network none --cgroup-parent /$cg/podman --annotation $prof --annotation run.lasso.audit=$tmp/audit/podman $img true")
  ccmds+=(-n "ctr lasso-runc+profile" "ctr --address $tmp/containerd.sock -n bench run --rm --runc-binary ${rt[lasso-runc]} --runc-root $tmp/runc-root/lasso-runc --cgroup /$cg/ctr/bench-profile --annotation $prof --annotation run.lasso.audit=$tmp/audit/ctr $img bench-profile true")
fi
# One plain run of each first, so a failing runtime shows its error instead of a bare status.
for ((i = 2; i < ${#pcmds[@]}; i += 3)); do sh -c "${pcmds[i]}" || { echo "failed: ${pcmds[i]}" >&2; exit 1; }; done
for ((i = 2; i < ${#ccmds[@]}; i += 3)); do sh -c "${ccmds[i]}" || { echo "failed: ${ccmds[i]}" >&2; exit 1; }; done
hyperfine -N --warmup 2 --runs "$runs" --export-json "$tmp/podman.json" "${pcmds[@]}"
hyperfine -N --warmup 2 --runs "$runs" --export-json "$tmp/ctr.json" "${ccmds[@]}"
hyperfine -N --warmup 2 --runs "$runs" -n "crun wrapper overhead, per call" \
  "unshare --mount --propagation private sh -c 'mount -t tmpfs none /sys/fs/cgroup/unified && exec true'"

echo
echo "median ms, and ratio to runc (below 1: faster than runc)"
for f in podman ctr; do
  jq -r '(.results[] | select(.command | endswith(" runc")) | .median) as $r
         | .results[] | "\(.command)\t\(.median*1000 | floor) ms\t\(.median/$r*100 | round / 100)"' "$tmp/$f.json"
done
