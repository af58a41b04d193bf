#!/usr/bin/env python3
"""ADMM's trajectory per outer iteration (G/U step) for one or more tern-train runs.

    bench/plot_admm.py OUT.png RUN_DIR[=LABEL] [RUN_DIR[=LABEL] ...]

Reads each RUN_DIR/admm.csv (tern-train writes one row per outer iteration) or, for runs made
before it existed, RUN_DIR/metrics.csv (one row per epoch, the last outer iteration's values),
and draws, with gnuplot (Debian's gnuplot-nox), four panels: the flip ratio of G's codes, the
primal residual ||W - G||, the dual residual rho ||G - G_prev|| and rho, against the epoch (an
outer iteration at step k of epoch e is drawn at e + its share of the epoch), one line per run.
Standard library only.
"""
import csv
import os
import subprocess
import sys
import tempfile


def fail(msg):
    sys.exit(f"plot_admm.py: {msg}")


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def main(argv):
    if len(argv) < 3 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(argv) > 1 and argv[1] in ("-h", "--help") else 2
    out = argv[1]
    runs = []
    for spec in argv[2:]:
        path, _, label = spec.partition("=")
        trace = os.path.join(path, "admm.csv")
        metrics = os.path.join(path, "metrics.csv")
        source = trace if os.path.isfile(trace) else metrics
        if not os.path.isfile(source):
            fail(f"neither {trace} nor {metrics} exists")
        with open(source, newline="") as f:
            rows = list(csv.DictReader(f))
        need = {"epoch", "flip_ratio", "primal_res", "dual_res", "rho"}
        if not rows or not need <= set(rows[0]):
            fail(f"{source} has no ADMM columns ({', '.join(sorted(need))})")
        if source == trace:
            # x = epoch + share of the epoch; steps per epoch: the steps taken by the end of
            # epoch 0 (its last G/U step is at its last step when G/U divides the epoch)
            ends = [int(r["step"]) for r in rows if int(r["epoch"]) == 0]
            span = max(ends) if ends else 0
            for r in rows:
                r["x"] = int(r["step"]) / span if span else float(r["epoch"]) + 1
        else:
            for r in rows:
                r["x"] = float(r["epoch"]) + 1
        runs.append((label or os.path.basename(os.path.normpath(path)), rows))
    tmp = tempfile.mkdtemp(prefix="plot_admm")
    files = []
    for i, (label, rows) in enumerate(runs):
        name = os.path.join(tmp, f"run{i}.dat")
        with open(name, "w") as f:
            for r in rows:
                vals = [number(r[k]) for k in ("x", "flip_ratio", "primal_res", "dual_res", "rho")]
                f.write(" ".join("NaN" if v is None else repr(v) for v in vals) + "\n")
        files.append((name, label))
    panels = [(2, "flip ratio of the codes of G per G/U step", False),
              (3, "primal residual ||W - G||", True),
              (4, "dual residual rho ||G - G_prev||", True),
              (5, "rho", True)]
    script = ["set terminal pngcairo size 1200,900 font ',10' noenhanced", f"set output '{out}'",
              "set multiplot layout 2,2", "set key top right", "set grid", "set xlabel 'epoch'"]
    for col, title, log in panels:
        script.append(f"set title '{title}'")
        script.append("set logscale y" if log else "unset logscale y")
        plots = [f"'{n}' using 1:{col} with lines lw 1.5 title '{l}'" for n, l in files]
        script.append("plot " + ", ".join(plots))
    script.append("unset multiplot")
    run = subprocess.run(["gnuplot"], input="\n".join(script) + "\n", text=True,
                         capture_output=True)
    if run.returncode != 0:
        fail("gnuplot failed: " + run.stderr.strip())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
