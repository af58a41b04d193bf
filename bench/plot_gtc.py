#!/usr/bin/python3
"""Accuracy against bits per quantized weight: GTC beside the ternary and binary methods.

    /usr/bin/python3 bench/plot_gtc.py OUT.png "TITLE=RUN_DIR RUN_DIR ..." ["TITLE=..." ...]

One panel per argument after OUT.png; a run written LABEL@RUN_DIR joins the group LABEL (else
its method's). For each run: the final test accuracy (summary.json) and
its bits per quantized weight: GTC runs their learned 1 + ceil(log2(M - m + 1)) per layer,
weighted by the layer's weights (from checkpoint.h5: the deployed values; needs Debian's
python3-h5py); ternary sets 2 (2-bit codes), binary 1, float 32. Runs of one method (and
teacher) share a marker; the mean of each group is drawn larger.
"""
import json
import math
import os
import sys

import h5py
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def gtc_bits(run):
    with h5py.File(os.path.join(run, "checkpoint.h5"), "r") as f:
        # the quantized blocks: GTC's have a theta (older checkpoints have no /layers list)
        blocks = [b for b, g in f["optim/trainable"].items() if "theta1" in g]
        total = weighted = 0.0
        for block in blocks:
            w = np.asarray(f["params"][block]).ravel()
            nz = w[w != 0]
            if nz.size:
                e = np.round(np.log2(np.abs(nz)))
                bits = 1 + math.ceil(math.log2(e.max() - e.min() + 1))
            else:
                bits = 1
            total += w.size
            weighted += bits * w.size
        return weighted / total


def point(run):
    with open(os.path.join(run, "summary.json")) as f:
        s = json.load(f)
    c = s["config"]
    method = c["method"]
    if method == "fp":
        bits = 32.0
    elif method == "gtc":
        bits = gtc_bits(run)
    elif method in ("bc", "bwn") or c.get("levels") == "binary":
        bits = 1.0
    else:
        bits = 2.0
    label = method
    if method == "gtc":
        if c.get("gtc-teacher") == "none":
            label = "gtc STE+Bit" if float(c.get("bit-penalty", 0)) > 0 else "gtc STE"
            if c.get("init"):
                label = "gtc PM"
    elif method == "admm" and c.get("levels") == "binary":
        label = "admm binary"
    if c.get("teacher"):
        label += " + KD"
    return label, bits, 100.0 * s["final_test_acc"]


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    out, panels = sys.argv[1], sys.argv[2:]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    markers = "osD^v<>pP*Xh"
    for ax, panel in zip(axes[0], panels):
        title, runs = panel.split("=", 1)
        groups = {}
        for run in runs.split():
            given = None
            if "@" in run:  # "label@run_dir" names the group itself
                given, run = run.split("@", 1)
            if not os.path.exists(os.path.join(run, "summary.json")):
                print(f"plot_gtc.py: skipping {run} (no summary.json)", file=sys.stderr)
                continue
            try:
                label, bits, acc = point(run)
            except (KeyError, OSError) as e:  # not a finished tern-train run
                print(f"plot_gtc.py: skipping {run} ({e})", file=sys.stderr)
                continue
            label = given or label
            groups.setdefault(label, []).append((bits, acc))
        for k, (label, pts) in enumerate(sorted(groups.items())):
            b = np.array([p[0] for p in pts])
            a = np.array([p[1] for p in pts])
            m = markers[k % len(markers)]
            sc = ax.scatter(b, a, marker=m, alpha=0.5, s=25)
            ax.scatter([b.mean()], [a.mean()], marker=m, s=90, color=sc.get_facecolor()[0],
                       edgecolors="black",
                       label=f"{label}: {a.mean():.2f}% at {b.mean():.2f} bits (n={len(pts)})")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("bits per quantized weight (GTC: learned, weighted by layer size)")
        ax.set_ylabel("final test accuracy (%)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
