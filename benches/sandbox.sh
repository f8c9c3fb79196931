#!/usr/bin/env bash
# Start-up cost of a lasso sandbox against the other runtimes on this machine, in one run:
#   lasso run --profile offline -- /bin/true   (host view, all hardening: userns, seccomp, Landlock, caps, no network)
#   crun run / runc run      (a busybox bundle from `runc spec`, rootful, cgroups on; no
#                            seccomp policy, no user namespace)
#   crun-seccomp             (crun, that bundle + a user namespace + the container engines'
#                            default seccomp policy: what `podman run` hands crun)
#   bwrap --unshare-all      (host /usr bound read-only)
# plus the time from `lasso up --detach` to the agent's first output and the monitor's resident
# memory. Root only (runc/crun run rootful; lasso maps the agent to the workspace owner).
# Usage: benches/sandbox.sh [RUNS]   (needs hyperfine, busybox-static, crun, runc, bubblewrap)
#        LASSO=target/release/lasso LASSO_BEFORE=/path/to/old/lasso benches/sandbox.sh 40
#        INTERLEAVE=60 adds rounds that run every command in turn (fair ratios under a changing load)
set -euo pipefail
RUNS=${1:-50}
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
# crun 1.8 refuses hybrid cgroups ("cgroups in hybrid mode not supported"). On such a host the
# whole comparison runs in a private mount namespace in which a tmpfs hides the cgroup2 mount
# /sys/fs/cgroup/unified: every contender sees the same v1 host (lasso and runc join only v1
# controllers on a hybrid host anyway) and none pays a wrapper per run. Earlier rounds ran crun
# alone through a per-run wrapper and subtracted the wrapper measured apart.
if [ -z "${LASSO_BENCH_V1_VIEW:-}" ] && [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ] \
    && [ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then
    export LASSO_BENCH_V1_VIEW=1
    exec unshare --mount --propagation private sh -c \
        'mount -t tmpfs lasso-bench-v1-view /sys/fs/cgroup/unified && exec "$0" "$@"' "$(realpath "$0")" "$@"
fi
# LASSO=PATH measures another build (e.g. the previous one, for a before/after in one run).
if [ -z "${LASSO:-}" ]; then
    cargo build --release --bin lasso >&2
    LASSO=$PWD/target/release/lasso
fi

work=$(mktemp -d /tmp/lasso-bench.XXXXXX)
cleanup() {
    for rt in runc crun; do "$rt" --root "$work/$rt-state" delete -f bench >/dev/null 2>&1 || true; done
    "$LASSO" down -t 0 >/dev/null 2>&1 || true
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT
chmod 755 "$work"
# Both lasso builds run as fresh copies side by side: the same binary ran ~1 ms slower per
# start from the linker's output in target/ than from a `cp` of it (page-cache layout of the
# file, not the code), which biased a target/ build against a copied previous one.
mkdir -p "$work/builds"
cp "$LASSO" "$work/builds/lasso"
LASSO=$work/builds/lasso
if [ -n "${LASSO_BEFORE:-}" ]; then
    cp "$LASSO_BEFORE" "$work/builds/lasso-before"
    LASSO_BEFORE=$work/builds/lasso-before
fi
mkdir -p "$work/proj" "$work/bundle/rootfs/"{bin,dev,proc,sys}
# The workspace's owner, whom the agent maps to: a user listed in /etc/passwd, as a real
# user is (an owner without an entry sends glibc's lookup on through nsswitch to systemd's
# userdb, ~0.4 ms per run here that no real user pays); 4321 where the host lists none.
owner=$(getent passwd | awk -F: '$3 >= 1000 && $3 < 60000 {print $3 ":" $4; exit}')
chown "${owner:-4321:4321}" "$work/proj"
echo "workspace owner: ${owner:-4321:4321 (not in /etc/passwd)}" >&2
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
ln -s busybox "$work/bundle/rootfs/bin/true"
(cd "$work/bundle" && runc spec && sed -i 's/"terminal": true/"terminal": false/; s/"sh"/"\/bin\/true"/' config.json)
# The same bundle with the hardening class lasso always applies and `runc spec` leaves out: a
# user namespace (root mapped to an unprivileged range, a cgroup namespace beside it) and the
# default seccomp policy of the container engines (containers-common's seccomp.json, which
# Podman hands crun on every `podman run`), filtered for this architecture and the bundle's
# capabilities as the engines do. Left out where that file is not installed.
SECCOMP_JSON=/usr/share/containers/seccomp.json
if [ -r "$SECCOMP_JSON" ]; then
    cp -a "$work/bundle" "$work/bundle-hardened"
    python3 - "$work/bundle-hardened/config.json" "$SECCOMP_JSON" <<'PY'
import json, sys
cfg_path, profile_path = sys.argv[1], sys.argv[2]
cfg, prof = json.load(open(cfg_path)), json.load(open(profile_path))
caps = set(cfg["process"]["capabilities"]["bounding"])
arches = {"amd64", "x86_64", "x32", "386"}
def applies(rule):
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    return not (
        (inc.get("arches") and not arches & set(inc["arches"]))
        or (inc.get("caps") and not set(inc["caps"]) <= caps)
        or (exc.get("arches") and arches & set(exc["arches"]))
        or (exc.get("caps") and caps & set(exc["caps"])))
rules = []
for r in filter(applies, prof["syscalls"]):
    rule = {"names": r["names"], "action": r["action"]}
    for k in ("args", "errnoRet"):
        if r.get(k):
            rule[k] = r[k]
    rules.append(rule)
native = [m for m in prof["archMap"] if m["architecture"] == "SCMP_ARCH_X86_64"]
linux = cfg["linux"]
linux["seccomp"] = {
    "defaultAction": prof["defaultAction"],
    "defaultErrnoRet": prof.get("defaultErrnoRet", 1),
    "architectures": [a for m in native for a in [m["architecture"], *m["subArchitectures"]]],
    "syscalls": rules,
}
linux["namespaces"] += [{"type": "user"}, {"type": "cgroup"}]
linux["uidMappings"] = linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
json.dump(cfg, open(cfg_path, "w"), indent=1)
PY
fi
cd "$work/proj"
# Each contender once first: one that cannot run here (crun 1.8 refuses hybrid cgroups) is
# reported and left out rather than failing the whole comparison.
# `offline`: the standard hardening without network (the standard profile starts pasta;
# benches/net.sh measures that). The others run without network too.
declare -a BENCH=(-n lasso "$LASSO run --profile offline -- /bin/true")
# LASSO_BEFORE=PATH adds a second lasso build to the same run.
if [ -n "${LASSO_BEFORE:-}" ]; then BENCH+=(-n lasso-before "$LASSO_BEFORE run --profile offline -- /bin/true"); fi
try() {
    local name=$1 cmd=$2
    if $cmd >/dev/null 2>"$work/$name.err"; then BENCH+=(-n "$name" "$cmd")
    else echo "$name left out: $(head -c 200 "$work/$name.err")" >&2; fi
}
try crun "crun --root $work/crun-state run --bundle $work/bundle bench"
if [ -d "$work/bundle-hardened" ]; then
    try crun-seccomp "crun --root $work/crun-state run --bundle $work/bundle-hardened bench"
fi
try runc "runc --root $work/runc-state run --bundle $work/bundle bench"
try bwrap "bwrap --unshare-all --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 --proc /proc --dev /dev /bin/true"
BENCH+=(-n bare /bin/true)
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs" >&2
hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$work/result.json" "${BENCH[@]}" >&2

python3 - "$work/result.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
lasso = r["lasso"]["median"]
print(f"{'command':<13} {'median ms':>10} {'lasso / it':>11}")
for name, x in r.items():
    print(f"{name:<13} {x['median']*1000:>10.2f} {lasso / x['median']:>11.2f}")
PY

# hyperfine runs each command's rounds in one block, so on a shared machine a load that changes
# during the run lands on some commands and not others. INTERLEAVE=N adds N rounds that run
# every command once per round (the order reversed every other round), medians per command.
if [ -n "${INTERLEAVE:-}" ]; then
    python3 - "$INTERLEAVE" "${BENCH[@]}" <<'PY'
import shlex, statistics, subprocess, sys, time
rounds, args = int(sys.argv[1]), sys.argv[2:]
cmds = [(args[i + 1], args[i + 2]) for i in range(0, len(args), 3)]
times = {name: [] for name, _ in cmds}
for r in range(rounds):
    for name, cmd in cmds if r % 2 == 0 else cmds[::-1]:
        t = time.perf_counter()
        subprocess.run(shlex.split(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times[name].append((time.perf_counter() - t) * 1000)
lasso = statistics.median(times["lasso"])
print(f"interleaved, {rounds} rounds; load average now {open('/proc/loadavg').read().split()[0]}")
print(f"{'command':<13} {'median ms':>10} {'lasso / it':>11}")
for name, t in times.items():
    print(f"{name:<13} {statistics.median(t):>10.2f} {lasso / statistics.median(t):>11.2f}")
PY
fi

# Time to the agent's first output through `up`, and the monitor's memory.
t0=$(date +%s%N)
id=$("$LASSO" up --detach --profile offline --agent shell -- /bin/sh -c 'echo first; sleep 30')
until [ -S "/run/lasso/$id/attach.sock" ]; do sleep 0.001; done
t1=$(date +%s%N)
mon=$("$LASSO" status --json | python3 -c "import json,sys; print([r for r in json.load(sys.stdin) if r['id']=='$id'][0]['monitor_pid'])")
# VmRSS of the monitor process (all its threads) while the sandbox runs, split into what is
# file-backed (pages of the lasso binary and libc it has touched: page cache, shared with
# any other process running the same binary) and anonymous (heap, stacks, copied-on-write data).
# Read 1.5 s after `up` returned: the monitor hands back its start-up pages after 1 s of quiet
# (src/sandbox/footprint.rs); the figure is what it keeps for the rest of the agent's session.
sleep 1.5
read -r rss anon file < <(awk '/^VmRSS/ {r=$2} /^RssAnon/ {a=$2} /^RssFile/ {f=$2} END {print r, a, f}' "/proc/$mon/status")
echo "lasso up --detach until the sandbox runs: $(( (t1 - t0) / 1000000 )) ms"
echo "monitor resident memory (VmRSS): ${rss} kB = ${file} kB file-backed + ${anon} kB anonymous; $(ls "/proc/$mon/task" | wc -l) threads"
"$LASSO" stop -t 0 "$id"
