#!/usr/bin/python3
"""Accuracy against nonzero weights, one marker per method (each seed small, the mean large).

    /usr/bin/python3 bench/plot_nonzeros.py OUT.png "TITLE" RUN_DIR [RUN_DIR ...]

Reads each run's summary.json: final test accuracy, nonzero and total weights of the conv/fc
layers (cost.nonzero_weights / total_weights), and the method (config.method). Prints a
markdown table (method, seeds, accuracy mean +- std, nonzeros mean) to stdout.
"""
import json
import os
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    out, title, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
    groups = {}
    for run in runs:
        path = os.path.join(run, "summary.json")
        if not os.path.exists(path):
            print(f"plot_nonzeros.py: {path} missing, skipped", file=sys.stderr)
            continue
        with open(path) as f:
            s = json.load(f)
        if s.get("status") != "completed":
            print(f"plot_nonzeros.py: {run} is {s.get('status')}, skipped", file=sys.stderr)
            continue
        cfg = s.get("config", {})
        method = cfg.get("method", "?")
        groups.setdefault(method, []).append(
            (100 * s["final_test_acc"], s["cost"]["nonzero_weights"], s["cost"]["total_weights"], run))
    markers = "osD^vP*X"
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    print("| method | seeds | final test accuracy | nonzero weights (of total) |")
    print("|---|--:|---|--:|")
    for i, (method, rows) in enumerate(sorted(groups.items())):
        acc = [r[0] for r in rows]
        nz = [r[1] for r in rows]
        m = markers[i % len(markers)]
        sc = ax.scatter(nz, acc, marker=m, s=25, alpha=0.5)
        mean_acc, mean_nz = statistics.mean(acc), statistics.mean(nz)
        sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
        ax.scatter([mean_nz], [mean_acc], marker=m, s=110, color=sc.get_facecolor()[0],
                   edgecolor="black", label=f"{method}: {mean_acc:.2f} ± {sd:.2f}% (n={len(acc)})")
        print(f"| {method} | {len(acc)} | {', '.join(f'{a:.2f}' for a in acc)} = **{mean_acc:.2f} ± {sd:.2f}** "
              f"| {mean_nz:,.0f} of {rows[0][2]:,} |")
    ax.set_xlabel("nonzero weights (conv and fc layers)")
    ax.set_ylabel("final test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=130)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
