#!/usr/bin/python3
"""The learned bits, shifts and theta of a GTC run per layer, beside the paper's Table 1.

    /usr/bin/python3 bench/gtc_table.py RUN_DIR [RUN_DIR ...]

Reads RUN_DIR/checkpoint.h5 (the deployed weights under params/, theta under
optim/trainable/<block>/theta1|theta2; needs h5py: Debian python3-h5py) and prints one markdown table per run:
layer, bits = 1 + ceil(log2(M - m + 1)) over the exponents present, the weights as bit shifts
(the paper's notation: "->k" is 2^-k, "<-k" is 2^k, "¬" a negative sign, "∅" zero) with the share
of the layer's weights at each, and theta1, theta2.
"""
import math
import sys

import h5py
import numpy as np


def shift(e):
    return "0" if e == 0 else (f"->{-e}" if e < 0 else f"<-{e}")


def table(run):
    with h5py.File(f"{run}/checkpoint.h5", "r") as f:
        trainable = f["optim/trainable"] if "optim/trainable" in f else {}
        rows = []
        for block in sorted(trainable.keys(), key=lambda b: list(f["params"].keys()).index(b)
                            if b in f["params"] else 0):
            g = trainable[block]
            if "theta1" not in g:
                continue
            w = np.asarray(f["params"][block]).ravel()
            t1, t2 = float(np.asarray(g["theta1"]).ravel()[0]), float(np.asarray(g["theta2"]).ravel()[0])
            nz = w[w != 0]
            exps = np.round(np.log2(np.abs(nz))).astype(int) if nz.size else np.array([], int)
            if nz.size and not np.all(np.abs(nz) == np.exp2(exps)):
                raise SystemExit(f"{run}: {block} holds values that are not powers of two")
            bits = 1 + math.ceil(math.log2(exps.max() - exps.min() + 1)) if nz.size else 1
            parts = []
            for e in sorted(set(exps.tolist()), reverse=True):
                for sign, mark in ((1, ""), (-1, "¬")):
                    n = int(np.sum((exps == e) & (np.sign(nz) == sign)))
                    if n:
                        parts.append(f"{mark}{shift(e)} ({100.0 * n / w.size:.0f}%)")
            zeros = int(np.sum(w == 0))
            if zeros:
                parts.append(f"∅ ({100.0 * zeros / w.size:.0f}%)")
            rows.append((block.replace(".weights", ""), bits, ", ".join(parts), t1, t2, w.size))
    print(f"**{run}**\n")
    print("| layer | bits | bit shifts (share of the layer's weights) | theta1 | theta2 |")
    print("|---|--:|---|--:|--:|")
    for layer, bits, parts, t1, t2, _ in rows:
        print(f"| {layer} | {bits} | {parts} | {t1:.2f} | {t2:.2f} |")
    total = sum(r[5] for r in rows)
    if total:
        mean = sum(r[1] for r in rows) / len(rows)
        weighted = sum(r[1] * r[5] for r in rows) / total
        print(f"\nmean bits over layers {mean:.2f}; weighted by weights {weighted:.2f}\n")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    for r in sys.argv[1:]:
        table(r)
