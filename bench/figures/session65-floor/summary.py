#!/usr/bin/env python3
"""Prints each run's read steps from the JSON reports in the directory
given (default .): req/s, the ratio to the same run's ceiling, CPU µs a
request and the p99, then each build's median ratio by store and c."""
import glob, json, os, re, statistics, sys
d = sys.argv[1] if len(sys.argv) > 1 else "."
rows = {}
for f in sorted(glob.glob(os.path.join(d, "*.json"))):
    m = re.match(r"(.*?)(sqlite|postgres)-(head|floor|shell)-(s?\d+)\.json$", os.path.basename(f))
    if not m:
        continue
    tag, store, build, run = m.groups()
    r = json.load(open(f))
    for x in r["results"]:
        if x["workload"] != "read":
            continue
        c = x["concurrency"]
        ratio = 100 * x["ratio_to_ceiling"]
        print(f"{tag}{store:8} {build:5} {run:3} c={c:<3} {x['throughput']:7.0f}/s {ratio:5.1f} %  "
              f"{x['cpu_us_per_request']:5.0f} µs  p99 {x['p99_ms']:5.2f} ms")
        rows.setdefault((tag, store, build, c), []).append(ratio)
print()
for k in sorted(rows):
    v = rows[k]
    print(f"{k[0]}{k[1]:8} {k[2]:5} c={k[3]:<3} median {statistics.median(v):5.1f} %  ({min(v):.1f}–{max(v):.1f}, {len(v)} runs)")
