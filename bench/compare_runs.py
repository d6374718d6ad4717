#!/usr/bin/python3
"""Compares oci-fs bench runs of two binaries, row by row: the median seconds of each
(layer, scenario) over the runs given, their ratio, and the peak RSS (the largest of the runs).

    bench/compare_runs.py BEFORE_DIR[,BEFORE_DIR...] AFTER_DIR[,AFTER_DIR...]

Each DIR is a run's --out directory (its results.json). Prints a markdown table and the
rows that moved most against the change.
"""
import json, sys, statistics
from pathlib import Path
def load(paths):
    runs = []
    for p in paths:
        rows = json.loads(Path(p, "results.json").read_text())["rows"]
        d = {}
        seen = {}
        for r in rows:
            k = (r["layer"], r["scenario"])
            seen[k] = seen.get(k, 0) + 1
            if seen[k] > 1: k = (r["layer"], r["scenario"] + f" #{seen[k]}")
            d[k] = r
        runs.append(d)
    return runs
before = load(sys.argv[1].split(","))
after = load(sys.argv[2].split(","))
print("| layer | scenario | before s | after s | after/before | before RSS | after RSS |")
print("|---|---|---:|---:|---:|---:|---:|")
worst = []
for k in before[0]:
    bs = [r[k]["seconds"] for r in before if k in r and r[k].get("seconds") is not None]
    as_ = [r[k]["seconds"] for r in after if k in r and r[k].get("seconds") is not None]
    br = [r[k].get("rss_mib") or 0 for r in before if k in r]
    ar = [r[k].get("rss_mib") or 0 for r in after if k in r]
    if not bs or not as_: continue
    b, a = statistics.median(bs), statistics.median(as_)
    ratio = a / b if b else float("nan")
    worst.append((ratio, k))
    print(f"| {k[0]} | {k[1]} | {b:.3f} | {a:.3f} | {ratio:.2f} | {max(br):.1f} | {max(ar):.1f} |")
print()
print("runs:", len(before), len(after))
for ratio, k in sorted(worst, reverse=True)[:8]:
    print(f"slowest-moving: {k}: {ratio:.2f}")
