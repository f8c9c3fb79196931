#!/usr/bin/env bash
# What the exec gate costs. Two workloads, each run gated and ungated through the same helper
# process (the gate test suite's helper, built in release mode), measured with hyperfine:
#   1. a shell loop of N (2,000) /bin/true execs: the added cost per exec (goal: < 50 µs median);
#   2. a syscall-heavy workload without execs (dd, 1 byte at a time): should show no difference,
#      since only execve/execveat reach the monitor.
# Both sides carry an allow-all seccomp filter standing in for the sandbox's baseline filter, so the
# comparison is "sandbox" vs "sandbox + gate" rather than "no seccomp at all" vs "gate".
# Needs root, hyperfine and a C compiler. Usage: benches/gate.sh   (N=2000 RUNS=10 to change the
# sizes; GATE_HELPER=... to skip the build; GATE_BEFORE=path/to/an/older/helper adds that build to
# the paired runs, side by side; FLOOR=0 skips the floor).
# 3. the floor of the design (benches/gate_floor.c): bare exec, seccomp notify + CONTINUE, and
#    notify + the ptrace round, with nothing else done, in the same run.
# 4. with LASSO=path/to/lasso (and optionally LASSO_BEFORE=an older build): the same loop in a
#    real `lasso run --agent shell` sandbox (audit log, counts file, the profile's decider),
#    minus a loop of N shell builtins, in paired rotating rounds: exec plus gate per exec, to set
#    beside the helper's ungated exec cost.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-2000}
RUNS=${RUNS:-10}
command -v hyperfine >/dev/null || { echo "gate.sh: hyperfine is needed (apt-get install -y hyperfine)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "gate.sh: run as root (the monitor traces the workload)" >&2; exit 2; }

# GATE_HELPER=path/to/gate_commands-HASH reuses a helper built before (no cargo run here).
bin=${GATE_HELPER:-$(cargo test --release --test gate_commands --no-run --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*gate_commands[^"]*"' | tail -n1 | cut -d'"' -f4)}
[ -x "$bin" ] || { echo "gate.sh: could not build the gate helper" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# One command line for hyperfine: the helper forks the workload, gated when ON=1.
helper() { # ON ARGV_JSON
  printf 'env LASSO_GATE_HELPER=1 LASSO_GATE_BASELINE=1 LASSO_GATE_ON=%s LASSO_GATE_DIR=/tmp LASSO_GATE_AUDIT=/dev/null LASSO_GATE_OUT=/dev/null LASSO_GATE_ERR=/dev/null LASSO_GATE_BLOCK=[] LASSO_GATE_ARGV=%q %q --exact helper_process --nocapture --test-threads=1' "$1" "$2" "$bin"
}

loop_argv="[\"/bin/sh\",\"-c\",\"i=0; while [ \$i -lt $N ]; do /bin/true; i=\$((i+1)); done\"]"
dd_argv='["/bin/dd","if=/dev/zero","of=/dev/null","bs=1","count=1000000","status=none"]'

hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$out/loop.json" \
  -n "loop of $N execs, no gate" "$(helper 0 "$loop_argv")" \
  -n "loop of $N execs, gated" "$(helper 1 "$loop_argv")"
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$out/dd.json" \
  -n "dd 2M syscalls, no gate" "$(helper 0 "$dd_argv")" \
  -n "dd 2M syscalls, gated" "$(helper 1 "$dd_argv")"

if [ "${FLOOR:-1}" = 1 ]; then
  cc -O2 -Wall -o "$out/gate_floor" benches/gate_floor.c
  "$out/gate_floor" "$N" "${FLOOR_ROUNDS:-7}"
fi

python3 - "$out" "$N" <<'PY'
import json, sys
out, n = sys.argv[1], int(sys.argv[2])
def load(name):
    return json.load(open(f"{out}/{name}.json"))["results"]
loop, dd = load("loop"), load("dd")
med = lambda r: r["median"]
cpu = lambda r: r["user"] + r["system"]  # mean CPU of the whole tree, monitor threads included
print(f"exec loop: median {med(loop[0])*1e3:.1f} ms ungated, {med(loop[1])*1e3:.1f} ms gated: "
      f"{(med(loop[1])-med(loop[0]))/n*1e6:.1f} µs added per exec, wall clock (goal < 50 µs); "
      f"CPU added {(cpu(loop[1])-cpu(loop[0]))/n*1e6:.1f} µs per exec")
print(f"syscall-heavy, no exec: median {med(dd[0])*1e3:.1f} ms ungated, {med(dd[1])*1e3:.1f} ms gated "
      f"({(med(dd[1])/med(dd[0])-1)*100:+.1f} %); CPU {cpu(dd[0])*1e3:.0f} ms vs {cpu(dd[1])*1e3:.0f} ms")
PY

# Paired runs: hyperfine measures all ungated runs, then all gated ones, so a change in the
# machine's load between the two phases lands in the difference. Rotating the runs and taking
# the median of the per-round differences keeps most of that out on a shared machine. With
# GATE_BEFORE, each round also runs the older helper gated, so both builds meet the same load.
PAIRS=${PAIRS:-15}
cmds=("$(helper 0 "$loop_argv")" "$(helper 1 "$loop_argv")")
if [ -n "${GATE_BEFORE:-}" ]; then
  [ -x "$GATE_BEFORE" ] || { echo "gate.sh: GATE_BEFORE=$GATE_BEFORE is not an executable" >&2; exit 2; }
  cmds+=("$(bin=$GATE_BEFORE; helper 1 "$loop_argv")")
fi
python3 - "$PAIRS" "$N" "${cmds[@]}" <<'PY'
import os, resource, statistics, subprocess, sys, time
pairs, n, cmds = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
names = ["gated", "gated, before"]
def once(cmd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(["/bin/sh", "-c", cmd], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu
walls = {k: [] for k in range(1, len(cmds))}
cpus = {k: [] for k in range(1, len(cmds))}
for i in range(pairs):
    order = list(range(len(cmds)))
    order = order[i % len(order):] + order[:i % len(order)]
    r = {k: once(cmds[k]) for k in order}
    for k in walls:
        walls[k].append((r[k][0] - r[0][0]) / n * 1e6)
        cpus[k].append((r[k][1] - r[0][1]) / n * 1e6)
for k in walls:
    q = statistics.quantiles(walls[k], n=4)
    print(f"paired ({pairs} rounds, rotating), {names[k-1]}: added per exec, median "
          f"{statistics.median(walls[k]):.1f} µs wall (quartiles {q[0]:.1f} .. {q[2]:.1f}), "
          f"median {statistics.median(cpus[k]):.1f} µs CPU")
print(f"load average {os.getloadavg()[0]:.1f}")
PY

if [ -n "${LASSO:-}" ]; then
  real=("$LASSO")
  [ -n "${LASSO_BEFORE:-}" ] && real+=("$LASSO_BEFORE")
  work=$(mktemp -d)
  python3 - "$PAIRS" "$N" "$work" "${real[@]}" <<'PY'
import resource, statistics, subprocess, sys, time
pairs, n, work, bins = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
loop = lambda body: f"i=0; while [ $i -lt {n} ]; do {body}; i=$((i+1)); done"
def once(lasso, body):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([lasso, "run", "--agent", "shell", "--", "/bin/sh", "-c", loop(body)],
                   cwd=work, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
per = {b: [] for b in bins}
cpu = {b: [] for b in bins}
for i in range(pairs):
    order = bins[i % len(bins):] + bins[:i % len(bins)]
    for b in order:
        (w1, c1), (w0, c0) = once(b, "/bin/true"), once(b, ":")
        per[b].append((w1 - w0) / n * 1e6)
        cpu[b].append((c1 - c0) / n * 1e6)
for k, b in enumerate(bins):
    name = "lasso run" if k == 0 else "lasso run, before"
    q = statistics.quantiles(per[b], n=4)
    print(f"{name}: exec + gate per exec in a real sandbox, median {statistics.median(per[b]):.1f} µs "
          f"wall (quartiles {q[0]:.1f} .. {q[2]:.1f}, {pairs} rounds), "
          f"median {statistics.median(cpu[b]):.1f} µs CPU (the monitor's and the sandbox's)")
PY
  rmdir "$work" 2>/dev/null || true
fi
