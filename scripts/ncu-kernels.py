#!/usr/bin/env python3
"""Summarise the CSV that scripts/gpu-profile-lora.sh gets from ncu.

For each file: kernels by name and grid size, with their count, total and
mean time, largest total first. The rows that are not ncu's CSV (bench's
own output shares stdout) are skipped.
"""
import collections
import csv
import re
import sys


def main(paths):
    for path in paths:
        with open(path) as f:
            rows = list(csv.reader(line for line in f if line.startswith('"')))
        if not rows:
            print(f"== {path}: no ncu rows")
            continue
        head, rows = rows[0], rows[1:]
        name_i, grid_i, value_i = head.index("Kernel Name"), head.index("Grid Size"), head.index("Metric Value")
        by = collections.defaultdict(lambda: [0, 0.0])
        total = 0.0
        for r in rows:
            name = re.sub(r"^void ", "", re.sub(r"\(.*", "", r[name_i]))[:70]
            ns = float(r[value_i].replace(",", ""))
            k = by[f"{name} grid {r[grid_i]}"]
            k[0] += 1
            k[1] += ns
            total += ns
        print(f"== {path}: {len(rows)} kernels, {total / 1e3:.0f} us")
        for key, (count, ns) in sorted(by.items(), key=lambda kv: -kv[1][1])[:40]:
            print(f"{count:6d} {ns / 1e3:10.1f} us {ns / count / 1e3:8.2f} us each  {key}")


if __name__ == "__main__":
    main(sys.argv[1:])
