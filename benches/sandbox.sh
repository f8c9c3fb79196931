#!/usr/bin/env bash
# Start-up cost of a lasso sandbox against the other runtimes on this machine, in one run:
#   lasso run -- /bin/true   (host view, all hardening: userns, seccomp, Landlock, caps, no network)
#   crun run / runc run      (a busybox bundle from `runc spec`, rootful)
#   bwrap --unshare-all      (host /usr bound read-only)
# plus the time from `lasso up --detach` to the agent's first output and the monitor's resident
# memory. Root only (runc/crun run rootful; lasso maps the agent to the workspace owner).
# Usage: benches/sandbox.sh [RUNS]   (needs hyperfine, busybox-static, crun, runc, bubblewrap)
set -euo pipefail
RUNS=${1:-50}
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
cargo build --release --bin lasso >&2
LASSO=$PWD/target/release/lasso

work=$(mktemp -d /tmp/lasso-bench.XXXXXX)
cleanup() {
    for rt in runc crun; do "$rt" --root "$work/$rt-state" delete -f bench >/dev/null 2>&1 || true; done
    "$LASSO" down -t 0 >/dev/null 2>&1 || true
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT
chmod 755 "$work"
mkdir -p "$work/proj" "$work/bundle/rootfs/bin"
chown 4321:4321 "$work/proj"
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
ln -s busybox "$work/bundle/rootfs/bin/true"
(cd "$work/bundle" && runc spec && sed -i 's/"terminal": true/"terminal": false/; s/"sh"/"\/bin\/true"/' config.json)
# crun refuses hybrid cgroups; give it none, which favours it.
CRUN_CG=""
if [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]; then CRUN_CG="--cgroup-manager=disabled"; fi

cd "$work/proj"
# Each contender once first: one that cannot run here (crun 1.8 refuses hybrid cgroups) is
# reported and left out rather than failing the whole comparison.
declare -a BENCH=(-n lasso "$LASSO run -- /bin/true")
try() {
    local name=$1 cmd=$2
    if $cmd >/dev/null 2>"$work/$name.err"; then BENCH+=(-n "$name" "$cmd")
    else echo "$name left out: $(head -c 200 "$work/$name.err")" >&2; fi
}
try crun "crun $CRUN_CG --root $work/crun-state run --bundle $work/bundle bench"
try runc "runc --root $work/runc-state run --bundle $work/bundle bench"
try bwrap "bwrap --unshare-all --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 --proc /proc --dev /dev /bin/true"
BENCH+=(-n bare /bin/true)
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs" >&2
hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$work/result.json" "${BENCH[@]}" >&2

python3 - "$work/result.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
lasso = r["lasso"]["median"]
print(f"{'command':<8} {'median ms':>10} {'lasso / it':>11}")
for name, x in r.items():
    print(f"{name:<8} {x['median']*1000:>10.2f} {lasso / x['median']:>11.2f}")
PY

# Time to the agent's first output through `up`, and the monitor's memory.
t0=$(date +%s%N)
id=$("$LASSO" up --detach --agent shell -- /bin/sh -c 'echo first; sleep 30')
until [ -S "/run/lasso/$id/attach.sock" ]; do sleep 0.001; done
t1=$(date +%s%N)
mon=$("$LASSO" status --json | python3 -c "import json,sys; print([r for r in json.load(sys.stdin) if r['id']=='$id'][0]['monitor_pid'])")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$mon/status")
echo "lasso up --detach until the sandbox runs: $(( (t1 - t0) / 1000000 )) ms"
echo "monitor resident memory: ${rss} kB"
"$LASSO" stop -t 0 "$id"
