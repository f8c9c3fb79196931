#!/usr/bin/env python3
"""Alternating A/B of two lasso builds on the wall clock: each round runs `LASSO_PHASES=1 lasso
run --profile offline -- /bin/true` with A and with B (which goes first alternates), and the
script prints, per span between phase marks (`src/phases.rs`), the median of A, of B, and the
median of the paired differences B - A: the figure that survives a changing load.

Usage: benches/phases_ab.py A B ROUNDS [MARK,MARK,...]   (default marks main,planned,prepared,exit;
run it in a directory lasso accepts as a workspace, e.g. one owned by an unprivileged user)
"""
import os, statistics, subprocess, sys, time
a, b, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
marks = sys.argv[4].split(",") if len(sys.argv) > 4 else ["main", "planned", "prepared", "exit"]
env = dict(os.environ, LASSO_PHASES="1")
def one(binary):
    start = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    p = subprocess.run([binary, "run", "--profile", "offline", "--", "/bin/true"], env=env, capture_output=True, text=True)
    end = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    if p.returncode != 0:
        sys.exit(p.stderr[-300:])
    seen = {"exit": end - start}
    for line in p.stderr.splitlines():
        if line.startswith("PHASE "):
            _, us, _pid, name = line.split(maxsplit=3)
            seen.setdefault(name, int(us) - start)
    return seen
for _ in range(3):
    one(a); one(b)
ra, rb = [], []
for i in range(rounds):
    if i % 2:
        x = one(a); y = one(b)
    else:
        y = one(b); x = one(a)
    ra.append(x); rb.append(y)
def span(r, m0, m1):
    return (r[m1] - (r[m0] if m0 != "spawn" else 0)) / 1000
pairs = [("spawn", marks[0])] + list(zip(marks, marks[1:]))
print(f"{rounds} alternating rounds; load {os.getloadavg()[0]:.1f}")
print(f"{'span':30} {'A med':>8} {'B med':>8} {'med(B-A)':>9}")
for m0, m1 in pairs + [("spawn", "exit")]:
    xa = [span(r, m0, m1) for r in ra]; xb = [span(r, m0, m1) for r in rb]
    d = [q - p for p, q in zip(xa, xb)]
    print(f"{m0+'->'+m1:30} {statistics.median(xa):8.3f} {statistics.median(xb):8.3f} {statistics.median(d):+9.3f}")
