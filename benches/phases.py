#!/usr/bin/env python3
"""Where a `lasso run` goes on the wall clock: runs `LASSO_PHASES=1 lasso run --profile offline
-- /bin/true` N times (after 3 warm-up runs) and prints, per phase mark (`src/phases.rs`), the
median time since this script spawned lasso and the step from the mark before it, in the order
of the medians. Marks come from the runtime, its threads and init; a step is only a cost of the
critical path when the mark before it is on the same path.

Usage: benches/phases.py [LASSO] [N]   (default target/release/lasso, 40 runs; run it in a
directory lasso accepts as a workspace, e.g. one owned by an unprivileged user)
"""
import os
import statistics
import subprocess
import sys
import time

lasso = sys.argv[1] if len(sys.argv) > 1 else "target/release/lasso"
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 40
env = dict(os.environ, LASSO_PHASES="1")
cmd = [lasso, "run", "--profile", "offline", "--", "/bin/true"]
marks = []
for i in range(runs + 3):
    start = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    end = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    if p.returncode != 0:
        sys.exit(f"lasso run failed ({p.returncode}): {p.stderr.strip()[-300:]}")
    if i < 3:
        continue
    seen = {"spawn": 0, "exit": end - start}
    for line in p.stderr.splitlines():
        if line.startswith("PHASE "):
            _, us, _pid, name = line.split(maxsplit=3)
            seen.setdefault(name, int(us) - start)
    marks.append(seen)
names = set().union(*marks)
median = {n: statistics.median(m[n] for m in marks if n in m) for n in names}
before = 0
print(f"{'ms since spawn':>14} {'step':>8}  mark   ({runs} runs, medians)")
for name in sorted(median, key=median.get):
    print(f"{median[name] / 1000:14.3f} {(median[name] - before) / 1000:+8.3f}  {name}")
    before = median[name]
