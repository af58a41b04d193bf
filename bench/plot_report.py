#!/usr/bin/env python3
"""Figures and tables of a tern-ablate output directory.

    bench/plot_report.py OUT FIGDIR [--title T]

Reads OUT/results.csv and OUT/<variant>-s<seed>/metrics.csv and writes, with gnuplot (Debian's
gnuplot-nox), into FIGDIR:
  acc_vs_nonzeros.png  final test accuracy vs nonzero weights, one point per run, and the Pareto
                       front (the best accuracy at no more nonzero weights) as a step line
  acc_vs_bits.png      the same vs storage in bits (summary.json's cost.storage_bits: each
                       layer's bits per weight, ternary 2, pow2/GTC their code width, float 32)
  test_acc.png         test accuracy per epoch, mean over seeds, per variant
  sparsity.png         sparsity per epoch, mean over seeds (quantized variants)
  admm.png             ADMM primal and dual residuals and rho per epoch (log y)
  k_sweep.png          topk-<k> variants: accuracy vs k and vs nonzero weights
  tables.md            OUT/results.md plus the Pareto front
A figure whose data is absent is skipped with a message. Standard library only.
"""
import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict

# Distinct colours; a variant keeps its colour in every figure.
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf", "#000000", "#aec7e8", "#ff9896", "#98df8a"]


def fail(msg):
    sys.exit(f"plot_report.py: {msg}")


def number(text):
    """A metrics/results field as a float; None when empty or not a number."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def quoted(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Gnuplot:
    """Renders one figure per call: a script with inline data blocks, piped to gnuplot."""

    def __init__(self, figdir, title):
        if shutil.which("gnuplot") is None:
            fail("gnuplot not found; install Debian's gnuplot-nox (apt-get install -y gnuplot-nox)")
        self.figdir, self.title = figdir, title
        probe = subprocess.run(["gnuplot", "-e", "set terminal pngcairo"], capture_output=True)
        self.terminal = "pngcairo" if probe.returncode == 0 else "png"

    def heading(self, text):
        return quoted(f"{self.title}: {text}" if self.title else text)

    def render(self, name, blocks, body, size=(900, 600)):
        """blocks: {name: [(x, y, ...), ...]}; body: gnuplot commands using $name."""
        script = [f"set terminal {self.terminal} size {size[0]},{size[1]}",
                  f"set output {quoted(os.path.join(self.figdir, name))}",
                  "set termoption noenhanced", "set grid", "set key outside right top",
                  "set offsets graph 0.03, graph 0.03, graph 0.05, graph 0.05"]
        for block, rows in blocks.items():
            script.append(f"${block} << EOD")
            script += [" ".join(f"{v:.10g}" for v in row) for row in rows]
            script.append("EOD")
        script += body
        run = subprocess.run(["gnuplot"], input="\n".join(script) + "\n", text=True,
                             capture_output=True)
        if run.returncode != 0:
            fail(f"gnuplot failed on {name}: {run.stderr.strip()}")
        print(f"plot_report.py: wrote {os.path.join(self.figdir, name)}")


def skip(name, why):
    print(f"plot_report.py: skip {name}: {why}")


class Report:
    def __init__(self, out):
        path = os.path.join(out, "results.csv")
        if not os.path.isfile(path):
            fail(f"{path} not found; run tern-ablate --out {out} first")
        with open(path, newline="") as f:
            self.runs = list(csv.DictReader(f))
        self.out = out
        self.variants = list(dict.fromkeys(r["variant"] for r in self.runs))
        # (nonzero weights, final test accuracy, run) of the completed runs that have both.
        self.points = self.cost_points("nonzero_weights")
        self._metrics = {}

    def cost_points(self, column):
        """(cost, final test accuracy, run) of the completed runs that have both."""
        points = [(number(r.get(column, "")), number(r["final_test_acc"]), r)
                  for r in self.runs if r["status"] == "completed"]
        return [p for p in points if p[0] is not None and p[1] is not None]

    def colour(self, variant):
        return COLOURS[self.variants.index(variant) % len(COLOURS)]

    def metrics(self, run):
        """{column: [float or None per epoch]} of a run's metrics.csv ({} when absent)."""
        name = f"{run['variant']}-s{run['seed']}"
        if name not in self._metrics:
            path = os.path.join(self.out, name, "metrics.csv")
            rows = []
            if os.path.isfile(path):
                with open(path, newline="") as f:
                    rows = list(csv.DictReader(f))
            self._metrics[name] = {k: [number(r[k]) for r in rows]
                                   for k in (rows[0].keys() if rows else [])}
        return self._metrics[name]

    def epoch_means(self, column, positive=False):
        """{variant: [(epoch, mean over seeds)]} for the variants that have `column`."""
        sums = defaultdict(lambda: defaultdict(list))
        for run in self.runs:
            for epoch, v in enumerate(self.metrics(run).get(column, [])):
                if v is not None and (v > 0 or not positive):
                    sums[run["variant"]][epoch + 1].append(v)
        return {var: [(e, statistics.mean(vs)) for e, vs in sorted(sums[var].items())]
                for var in self.variants if sums[var]}

    def pareto(self, points=None):
        """Points on the front: no run with as few or fewer nonzeros (or other cost) is more
        accurate."""
        front, best = [], -1.0
        for nz, acc, r in sorted(self.points if points is None else points, key=lambda p: (p[0], -p[1])):
            if acc > best:
                front.append((nz, acc, r))
                best = acc
        return front


def per_variant_lines(report, series, ylabel, prefix="d"):
    """Data blocks <prefix>0, <prefix>1, ... and the commands plotting one line per variant."""
    blocks, plots = {}, []
    for i, (variant, rows) in enumerate(series.items()):
        blocks[f"{prefix}{i}"] = rows
        plots.append(f"${prefix}{i} using 1:2 with linespoints pt 7 ps 0.6 "
                     f"lc rgb '{report.colour(variant)}' title {quoted(variant)}")
    return blocks, ["set xlabel 'epoch'", f"set ylabel {quoted(ylabel)}", "plot " + ", ".join(plots)]


def fig_accuracy_vs_nonzeros(report, gp):
    fig_accuracy_vs_cost(report, gp, "acc_vs_nonzeros.png", report.points, "nonzero weights")


def fig_accuracy_vs_bits(report, gp):
    # storage bits count each layer's own width: a pow2 or GTC layer costs more than a ternary
    # one with as many nonzeros, a float layer 32 bits a weight
    fig_accuracy_vs_cost(report, gp, "acc_vs_bits.png", report.cost_points("storage_bits"),
                         "storage (bits)")


def fig_accuracy_vs_cost(report, gp, name, points, label):
    front = report.pareto(points)
    if not front:
        return skip(name, f"no completed run with accuracy and {label}")
    blocks, plots = {}, []
    for i, variant in enumerate(report.variants):
        pts = [(nz, 100 * acc) for nz, acc, r in points if r["variant"] == variant]
        if pts:
            blocks[f"d{i}"] = pts
            plots.append(f"$d{i} using 1:2 with points pt 7 ps 1.2 lc rgb '{report.colour(variant)}' "
                         f"title {quoted(variant)}")
    # The front as a step function of the cost, carried on to the most expensive run.
    xs = [x for rows in blocks.values() for x, _ in rows]
    steps = [(nz, 100 * acc) for nz, acc, _ in front] + [(max(xs), 100 * front[-1][1])]
    blocks["front"] = steps
    plots.append("$front using 1:2 with steps lw 2 dt 2 lc rgb 'black' title 'Pareto front'")
    body = [f"set title {gp.heading('final test accuracy vs ' + label)}",
            f"set xlabel {quoted(label)}", "set ylabel 'final test accuracy (%)'"]
    if min(xs) > 0 and max(xs) / min(xs) > 20:
        body.append("set logscale x")
    gp.render(name, blocks, body + ["plot " + ", ".join(plots)])


def fig_epoch_curves(report, gp, name, column, ylabel, scale=1.0, skip_float=False):
    series = report.epoch_means(column)
    if skip_float:
        floats = {r["variant"] for r in report.runs if r["method"] == "fp"}
        series = {v: rows for v, rows in series.items() if v not in floats}
    if not series:
        return skip(name, f"no {column} values in any metrics.csv")
    series = {v: [(e, scale * y) for e, y in rows] for v, rows in series.items()}
    blocks, body = per_variant_lines(report, series, ylabel)
    gp.render(name, blocks, [f"set title {gp.heading(ylabel + ' per epoch (mean over seeds)')}"] + body)


def fig_admm(report, gp):
    name = "admm.png"
    panels = [("primal_res", "primal residual ||W - G||"), ("dual_res", "dual residual rho ||G - G_prev||"),
              ("rho", "rho")]
    data = [(col, label, report.epoch_means(col, positive=True)) for col, label in panels]
    data = [(col, label, series) for col, label, series in data if series]
    if not data:
        return skip(name, "no ADMM variant (no primal_res / dual_res / rho values)")
    blocks = {}
    body = [f"set multiplot layout 1,{len(data)} title {gp.heading('ADMM per epoch (mean over seeds)')}",
            "set logscale y", "set format y '%g'", "set offsets graph 0.03, graph 0.03, 0, 0",
            "set key inside top left"]
    for col, label, series in data:
        sub, lines = per_variant_lines(report, series, label, prefix=col)
        blocks.update(sub)
        body += [f"set title {quoted(label)}"] + lines
    gp.render(name, blocks, body + ["unset multiplot"], size=(1500, 500))


def fig_k_sweep(report, gp):
    name = "k_sweep.png"
    groups = defaultdict(list)
    for nz, acc, r in report.points:
        k = number(r["variant"][len("topk-"):]) if r["variant"].startswith("topk-") else None
        if k is not None:
            groups[k].append((100 * acc, nz))
    if not groups:
        return skip(name, "no completed topk-<k> variant (tern-ablate --k-sweep)")
    rows = []
    for k in sorted(groups):
        accs = [a for a, _ in groups[k]]
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        rows.append((k, statistics.mean(accs), sd, statistics.mean(nz for _, nz in groups[k])))
    body = [f"set multiplot layout 1,2 title {gp.heading('sparsity-target sweep (ADMM, ternary top-k)')}",
            "set key off", "set ylabel 'final test accuracy (%)'",
            "set xlabel 'k (fraction of nonzero weights)'", "set title 'accuracy vs k'",
            "plot $k using 1:2:3 with yerrorlines pt 7 lc rgb '#1f77b4'",
            "set xlabel 'nonzero weights'", "set title 'accuracy vs nonzero weights'",
            "plot $k using 4:2:3 with yerrorlines pt 7 lc rgb '#d62728'", "unset multiplot"]
    gp.render(name, {"k": rows}, body, size=(1300, 500))


def write_tables(report, figdir):
    path = os.path.join(figdir, "tables.md")
    results = os.path.join(report.out, "results.md")
    text = open(results).read().rstrip() + "\n" if os.path.isfile(results) else ""
    text += ("\n## Pareto front\n\nRuns that no run with as few or fewer nonzero weights beats in "
             "final test accuracy.\n\n| run | nonzero weights | final test acc (%) |\n|---|--:|--:|\n")
    for nz, acc, r in report.pareto():
        text += f"| {r['variant']}-s{r['seed']} | {nz:.0f} | {100 * acc:.2f} |\n"
    with open(path, "w") as f:
        f.write(text)
    print(f"plot_report.py: wrote {path}")


def main():
    ap = argparse.ArgumentParser(description="Figures and tables of a tern-ablate output directory.")
    ap.add_argument("out", help="tern-ablate --out directory (holds results.csv)")
    ap.add_argument("figdir", help="where to write the PNGs and tables.md")
    ap.add_argument("--title", default="", help="prefix of every figure title, e.g. 'MNIST, LeNet-5'")
    args = ap.parse_args()
    report = Report(args.out)
    os.makedirs(args.figdir, exist_ok=True)
    gp = Gnuplot(args.figdir, args.title)
    fig_accuracy_vs_nonzeros(report, gp)
    fig_accuracy_vs_bits(report, gp)
    fig_epoch_curves(report, gp, "test_acc.png", "test_acc", "test accuracy (%)", scale=100)
    fig_epoch_curves(report, gp, "sparsity.png", "sparsity", "sparsity", skip_float=True)
    fig_admm(report, gp)
    fig_k_sweep(report, gp)
    write_tables(report, args.figdir)


if __name__ == "__main__":
    main()
