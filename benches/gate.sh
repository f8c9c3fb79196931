#!/usr/bin/env bash
# What the exec gate costs. Two workloads, each run gated and ungated through the same helper
# process (the gate test suite's helper, built in release mode), measured with hyperfine:
#   1. a shell loop of N (2,000) /bin/true execs: the added cost per exec (goal: < 50 µs median);
#   2. a syscall-heavy workload without execs (dd, 1 byte at a time): should show no difference,
#      since only execve/execveat reach the monitor.
# Both sides carry an allow-all seccomp filter standing in for the sandbox's baseline filter, so the
# comparison is "sandbox" vs "sandbox + gate" rather than "no seccomp at all" vs "gate".
# Needs root and hyperfine. Usage: benches/gate.sh   (N=2000 RUNS=10 to change the sizes;
# GATE_HELPER=... to skip the build)
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
# machine's load between the two phases lands in the difference. Alternating the two and taking
# the median of the per-pair differences keeps most of that out on a shared machine.
PAIRS=${PAIRS:-15}
ungated=$(helper 0 "$loop_argv"); gated=$(helper 1 "$loop_argv")
python3 - "$PAIRS" "$N" "$ungated" "$gated" <<'PY'
import os, resource, statistics, subprocess, sys, time
pairs, n, cmds = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:5]
def once(cmd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(["/bin/sh", "-c", cmd], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu
walls, cpus = [], []
for i in range(pairs):
    order = [0, 1] if i % 2 == 0 else [1, 0]
    r = {k: once(cmds[k]) for k in order}
    walls.append((r[1][0] - r[0][0]) / n * 1e6)
    cpus.append((r[1][1] - r[0][1]) / n * 1e6)
q = statistics.quantiles(walls, n=4)
print(f"paired ({pairs} pairs, alternating): added per exec, median {statistics.median(walls):.1f} µs wall "
      f"(quartiles {q[0]:.1f} .. {q[2]:.1f}), median {statistics.median(cpus):.1f} µs CPU; "
      f"load average {os.getloadavg()[0]:.1f}")
PY
