#!/usr/bin/env python3
"""Side-by-side start-up phases of several lasso builds under a changing load: N rounds, each runs
`LASSO_PHASES=1 LASSO run --profile offline -- /bin/true` once per config in a rotated order, and
prints per mark (time since spawn) and per interval between two marks the median of each config
and, in brackets, the median of the per-round differences against the first config. Intervals
inside one run are much less disturbed by other load than times since spawn.

Usage: benches/phases_ab.py N CONFIGS MARKS
  CONFIGS: comma-separated lasso binaries (copies, not target/); VAR@PATH also sets VAR=1
  MARKS:   comma-separated marks to print as times since spawn (intervals are fixed below)
Run it in a directory lasso accepts as a workspace (owned by an unprivileged user), e.g.
  benches/phases_ab.py 600 /tmp/base,/tmp/new init-ready,started
"""
import os, statistics, subprocess, sys, time
n = int(sys.argv[1]); configs = sys.argv[2].split(","); marks = sys.argv[3].split(",")
env = dict(os.environ, LASSO_PHASES="1")
def one(spec):
    e2 = dict(env); bin = spec
    if "@" in spec:
        var, bin = spec.split("@", 1); e2[var] = "1"
    s = time.clock_gettime_ns(time.CLOCK_MONOTONIC)//1000
    p = subprocess.run([bin,"run","--profile","offline","--","/bin/true"], env=e2, capture_output=True, text=True)
    e = time.clock_gettime_ns(time.CLOCK_MONOTONIC)//1000
    if p.returncode: sys.exit(p.stderr[-300:])
    m = {}
    for l in p.stderr.splitlines():
        f = l.split()
        if len(f) == 4 and f[0] == "PHASE": m.setdefault(f[3], int(f[1]) - s)
    m["exit"] = e - s
    return m
for c in configs * 3: one(c)
res = {c: [] for c in configs}
k = len(configs)
for i in range(n):
    order = configs[i % k:] + configs[:i % k]
    for c in order: res[c].append(one(c))
base = configs[0]
print("load:", os.getloadavg())
for mk in marks + ["exit"]:
    row = f"{mk:15s}"
    for c in configs:
        v = [r[mk] for r in res[c] if mk in r]
        med = statistics.median(v)/1000
        if c == base: row += f" | {med:7.3f}"
        else:
            d = [(y[mk]-x[mk])/1000 for x, y in zip(res[base], res[c]) if mk in x and mk in y]
            row += f" | {med:7.3f} ({statistics.median(d):+.3f})"
    print(row)
ivs = [("init-masks","init-masked"),("init-start","init-ready"),("prepared","claimed"),("claimed","clone"),("clone","cloned"),("cloned","init-ready"),("init-ready","created"),("init-ready","init-setup-done"),("init-ready","init-go"),("init-ready","started"),("clone","started"),("prepared","started"),("started","gate-attached")]
for a, b in ivs:
    row = f"{a+'->'+b:28s}"
    vals = {}
    for c in configs:
        vals[c] = [ (r[b]-r[a])/1000 if a in r and b in r else None for r in res[c]]
    for c in configs:
        v = [x for x in vals[c] if x is not None]
        if not v:
            row += " |    n/a"; continue
        med = statistics.median(v)
        if c == base: row += f" | {med:6.3f}"
        else:
            d = [y-x for x, y in zip(vals[base], vals[c]) if x is not None and y is not None]
            row += f" | {med:6.3f} ({statistics.median(d):+.3f})" if d else f" | {med:6.3f}"
    print(row)
print("configs:", configs)
