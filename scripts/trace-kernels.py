#!/usr/bin/env python3
"""Where a decode step's GPU time goes, from cupti-trace.c's kernel timelines.

Usage: trace-kernels.py [--gap-us 50] [--top 40] TRACE [TRACE ...]
       (TRACE: a file of cupti-trace.c lines, its name the row, e.g. 16-mixed.trace)

A step is a run of kernels with no idle stretch longer than --gap-us
between them (the host's part of a step, a few hundred µs, separates
steps). Only the steps with the most common kernel count are kept: the
decode-only steps of the traced window.

Each step's span (first start to last end) is split exactly among its
kernels: kernel i, in start order, is charged the idle time before it
("gap": start_i after the end of every kernel before it) and the time it
alone extends the step ("ext": end_i past the latest end before it, and
past its own start). A kernel that runs entirely beside others (a
programmatic dependent launch that overlaps) is charged nothing, whatever
its duration. Kernels are keyed by name and grid, so that the products of
weights of different sizes stay apart.

With two or more traces, the last table compares the first with each
other (e.g. 16-base against 16-mixed): the keys whose gap + ext per step
differ most.
"""

import argparse
import collections
import os
import re
import shutil
import statistics
import subprocess
import sys


def demangle(names):
    """Names as c++filt writes them (the mangled ones where it is absent)."""
    names = list(names)
    if not names or shutil.which("c++filt") is None:
        return {n: n for n in names}
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True).stdout.split("\n")
    return {n: (out[i] if i < len(out) and out[i] else n) for i, n in enumerate(names)}


def short(name):
    """The function's name without its return type, templates or parameters."""
    name = re.sub(r"^void ", "", name)
    depth, cut = 0, []
    for ch in name:
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        elif depth == 0:
            cut.append(ch)
    s = "".join(cut).strip()
    return s or name


def read_trace(path):
    recs = []
    with open(path) as f:
        for line in f:
            p = line.rstrip("\n").split(" ", 7)
            if len(p) < 8:
                continue
            start, end = int(p[0]), int(p[1])
            grid = (int(p[3]), int(p[4]), int(p[5]))
            recs.append((start, end, grid, int(p[6]), p[7]))
    recs.sort(key=lambda r: r[0])
    return recs


def split_steps(recs, gap_ns):
    steps, cur, max_end = [], [], None
    for r in recs:
        if cur and r[0] - max_end > gap_ns:
            steps.append(cur)
            cur = []
        if not cur:
            max_end = r[1]
        cur.append(r)
        max_end = max(max_end, r[1])
    if cur:
        steps.append(cur)
    return steps


def analyse(path, recs, gap_us, names):
    steps = split_steps(recs, gap_us * 1000)
    counts = collections.Counter(len(s) for s in steps if len(s) > 100)
    if not counts:
        return None
    n_kernels = counts.most_common(1)[0][0]
    kept = [s for s in steps if len(s) == n_kernels]
    spans, busy = [], []
    per = collections.defaultdict(lambda: [0.0, 0.0, 0.0, 0])  # key -> gap, ext, duration sums (ns), count
    for s in kept:
        spans.append(max(r[1] for r in s) - s[0][0])
        busy.append(sum(r[1] - r[0] for r in s))
        max_end = s[0][0]
        for start, end, grid, block, name in s:
            key = "%s [%dx%dx%d]" % (short(names[name]), grid[0], grid[1], grid[2])
            gap = max(0, start - max_end)
            ext = max(0, end - max(start, max_end))
            e = per[key]
            e[0] += gap
            e[1] += ext
            e[2] += end - start
            e[3] += 1
            max_end = max(max_end, end)
    k = len(kept)
    table = {key: (v[0] / k / 1000, v[1] / k / 1000, v[2] / v[3] / 1000, v[3] / k) for key, v in per.items()}
    return {
        "row": os.path.basename(path).rsplit(".", 1)[0],
        "steps": k,
        "steps_all": len(steps),
        "kernels": n_kernels,
        "span_us": statistics.median(spans) / 1000,
        "busy_us": statistics.median(busy) / 1000,
        "table": table,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gap-us", type=float, default=50.0)
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("traces", nargs="+")
    a = ap.parse_args()
    traces = [(t, read_trace(t)) for t in a.traces]
    names = demangle({r[4] for _, recs in traces for r in recs})
    rows = [r for r in (analyse(t, recs, a.gap_us, names) for t, recs in traces) if r]
    if not rows:
        sys.exit("no decode steps found")
    print("| row | steps kept / all | kernels a step | span a step (µs) | kernel time a step (µs) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print("| %s | %d / %d | %d | %.1f | %.1f |" % (r["row"], r["steps"], r["steps_all"], r["kernels"], r["span_us"], r["busy_us"]))
    for r in rows:
        print("\n%s: the step's span by kernel, µs a step (gap: idle before it; ext: the time it alone extends the step)\n" % r["row"])
        print("| kernel [grid] | a step | mean duration | gap | ext | gap + ext |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        items = sorted(r["table"].items(), key=lambda kv: -(kv[1][0] + kv[1][1]))
        for key, (gap, ext, dur, n) in items[: a.top]:
            print("| %s | %.0f | %.2f | %.1f | %.1f | %.1f |" % (key, n, dur, gap, ext, gap + ext))
    base = rows[0]
    for r in rows[1:]:
        print("\n%s against %s: gap + ext a step, µs (span %.1f → %.1f)\n" % (r["row"], base["row"], base["span_us"], r["span_us"]))
        print("| kernel [grid] | %s | %s | Δ |" % (base["row"], r["row"]))
        print("| --- | ---: | ---: | ---: |")
        keys = set(base["table"]) | set(r["table"])
        def tot(row, key):
            v = row["table"].get(key)
            return v[0] + v[1] if v else 0.0
        for key in sorted(keys, key=lambda k: -abs(tot(r, k) - tot(base, k)))[: a.top]:
            print("| %s | %.1f | %.1f | %+.1f |" % (key, tot(base, key), tot(r, key), tot(r, key) - tot(base, key)))


if __name__ == "__main__":
    main()
