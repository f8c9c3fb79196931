#!/usr/bin/env bash
# Start-up benchmark of lasso-runc against crun, runc and bubblewrap on the same busybox bundle,
# with hyperfine, in one run on this machine. Needs root, busybox-static, crun, runc,
# bubblewrap, hyperfine. Usage: benches/runc.sh [path/to/lasso-runc] (default: the release
# build). Prints hyperfine's table and the ratios of lasso-runc to each other runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
LASSO=${1:-target/release/lasso-runc}
[ -x "$LASSO" ] || { echo "build it first: cargo build --release --bin lasso-runc" >&2; exit 1; }
LASSO=$(realpath "$LASSO")
RUNS=${RUNS:-100}

# crun 1.8 refuses this machine's hybrid cgroups ("cgroups in hybrid mode not supported"). The
# whole benchmark therefore runs in a private mount namespace where the cgroup2 mount (which
# holds only hugetlb here) is unmounted: every runtime sees the same v1 hierarchies and all of
# them, crun included, run with cgroups enabled. Nothing of this reaches the host's mounts.
if [ -z "${LASSO_BENCH_NS:-}" ] && grep -q ' /sys/fs/cgroup/unified ' /proc/self/mountinfo; then
  exec env LASSO_BENCH_NS=1 unshare --mount --propagation private -- "$0" "$LASSO"
fi
if [ -n "${LASSO_BENCH_NS:-}" ]; then umount -l /sys/fs/cgroup/unified; fi

work=$(mktemp -d /tmp/lasso-bench.XXXXXX)
cleanup() {
  for rt in "$LASSO" runc; do "$rt" --root "$work/state-$(basename "$rt")" delete --force bench >/dev/null 2>&1 || true; done
  crun --root "$work/state-crun" delete --force bench >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
ln -s busybox "$work/bundle/rootfs/bin/true"
ln -s busybox "$work/bundle/rootfs/bin/sh"
"$LASSO" spec --bundle "$work/bundle"
# Same bundle for every runtime: /bin/true, no terminal, the default namespaces and mounts.
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
s = json.load(open(p))
s["process"]["terminal"] = False
s["process"]["args"] = ["/bin/true"]
s["ociVersion"] = "1.0.2-dev"  # crun 1.8 refuses newer versions
json.dump(s, open(p, "w"), indent=2)
PY
B="$work/bundle"
L="$LASSO --root $work/state-lasso"
R="runc --root $work/state-runc"
C="crun --root $work/state-crun"
BW="bwrap --unshare-all --die-with-parent --bind $B/rootfs / --proc /proc --dev /dev /bin/true"

hyperfine -N --warmup 10 --runs "$RUNS" --export-json "$work/run.json" \
  -n lasso-runc "$L run --bundle $B bench" \
  -n crun "$C run --bundle $B bench" \
  -n runc "$R run --bundle $B bench" \
  -n bwrap "$BW"

cycle() { echo "$1 create --bundle $B bench && $1 start bench && $1 delete --force bench"; }
hyperfine --warmup 5 --runs "$RUNS" --export-json "$work/cycle.json" \
  -n lasso-runc "$(cycle "$L")" \
  -n crun "$(cycle "$C")" \
  -n runc "$(cycle "$R")"

python3 - "$work/run.json" "$work/cycle.json" <<'PY'
import json, sys
for path, title in zip(sys.argv[1:], ["run /bin/true", "create -> start -> delete"]):
    res = {r["command"]: r["median"] * 1000 for r in json.load(open(path))["results"]}
    ours = res["lasso-runc"]
    print(f"\n{title}: medians in ms, ratio = lasso-runc / other (< 1.0: lasso-runc faster)")
    for name, ms in res.items():
        print(f"  {name:<11} {ms:8.2f} ms   ratio {ours / ms:5.2f}")
PY
