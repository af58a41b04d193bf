#!/usr/bin/env python3
"""Summarise tern-train runs (DIR/<dataset>-<method>-s<seed>/summary.json) as a Markdown table:
final-epoch test accuracy mean and std over seeds, nonzero weights, storage bits, time."""
import json, os, statistics, sys
from collections import defaultdict

root = sys.argv[1]
groups = defaultdict(list)
for name in sorted(os.listdir(root)):
    p = os.path.join(root, name, "summary.json")
    if not os.path.isfile(p):
        continue
    with open(p) as f:
        s = json.load(f)
    if s.get("status") != "completed":
        continue
    key = name.rsplit("-s", 1)[0]
    groups[key].append(s)
print("| run | seeds | final test acc (mean ± std) | best | nonzero weights | storage (KiB) | mults/image | s/run |")
print("|---|---|---|---|---|---|---|---|")
for key, runs in groups.items():
    acc = [100 * r["final_test_acc"] for r in runs]
    best = [100 * r["best_test_acc"] for r in runs]
    sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
    c = runs[0]["cost"]
    print(f"| {key} | {len(runs)} | {statistics.mean(acc):.2f} ± {sd:.2f} | {statistics.mean(best):.2f} | "
          f"{c['nonzero_weights']} | {c['storage_bits'] / 8192:.0f} | {c['multiplications']} | "
          f"{statistics.mean(r['seconds'] for r in runs):.0f} |")
