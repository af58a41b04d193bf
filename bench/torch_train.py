#!/usr/bin/python3
"""PyTorch reference for bench/bench_train.cpp: training-step throughput of the same LeNet-5 /
VGG-7 / ResNets on synthetic data (Debian's python3-torch 1.13, CPU).

Models (written out here: Debian's torch comes without torchvision), as tern's nn::makeModel:
  lenet5    1x28x28
  vgg7      3x32x32
  resnet20/32/44/56  3x32x32, CIFAR ResNets (He et al. 2016, section 4.2): 16-C3 + BN + ReLU,
            three stages of basic blocks (16, 32, 64 channels), option-A shortcuts (stride-2
            subsampling from the first row/column, (out - in) / 2 zero channels before, the
            rest after), BN without conv bias, global average pool, fc with bias.
            ResNet-20 with 10 classes: 269,722 parameters.
  resnet18  3x224x224, torchvision's ResNet-18 (7x7/2 conv, 3x3/2 max pool with padding 1,
            projection shortcuts: 1x1 conv stride 2 + BN): 11,689,512 parameters for 1000
            classes, 11,181,642 for the 10 used here.
--image-size changes the input's height and width, --classes the classifier (10).

A step = zero_grad + forward + cross-entropy + backward + SGD(momentum 0.9, weight decay 1e-4 on
conv/FC weights only, as tern decays only those blocks). The same batch every step.

Modes:
  stock  contiguous NCHW model and input, torch.optim.SGD defaults
  tuned  channels_last model and input, SGD(foreach=True); run it under
         GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736
         (bench/run_train_bench.sh does) so that big activation buffers are reused, not
         mmap'ed and page-faulted every step.

Prints a human-readable report and, per mode, one machine-readable line:
  RESULT impl=torch mode=stock model=lenet5 width=1 batch=100 threads=2 median_ms=... img_s=...
         ... start_rss_mb=... peak_rss_mb=...  (MiB: VmRSS before the model is built, torch
         imported; resource.getrusage(RUSAGE_SELF).ru_maxrss / 1024 at the end of the mode: the
         process's peak so far, so run one mode per process for a per-mode figure, as
         run_train_bench.sh does)
"""
import argparse
import math
import os
import re
import resource
import sys
import tempfile
import time
from collections import defaultdict

import torch
import torch.nn as nn
import torch.nn.functional as F


def scaled(c, width):
    # tern: max(1, lround(c * width))
    return max(1, int(math.floor(c * width + 0.5)))


def conv_bn_relu(cin, cout, k, pad):
    return [nn.Conv2d(cin, cout, k, padding=pad, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


def lenet5(width, classes=10):
    c1, c2, f = scaled(32, width), scaled(64, width), scaled(512, width)
    return nn.Sequential(
        *conv_bn_relu(1, c1, 5, 0), nn.MaxPool2d(2),
        *conv_bn_relu(c1, c2, 5, 0), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * 4 * 4, f, bias=False), nn.BatchNorm1d(f), nn.ReLU(inplace=True),
        nn.Linear(f, classes))


def vgg7(width, classes=10):
    a, b, c, f = (scaled(x, width) for x in (128, 256, 512, 1024))
    return nn.Sequential(
        *conv_bn_relu(3, a, 3, 1), *conv_bn_relu(a, a, 3, 1), nn.MaxPool2d(2),
        *conv_bn_relu(a, b, 3, 1), *conv_bn_relu(b, b, 3, 1), nn.MaxPool2d(2),
        *conv_bn_relu(b, c, 3, 1), *conv_bn_relu(c, c, 3, 1), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c * 4 * 4, f, bias=False), nn.BatchNorm1d(f), nn.ReLU(inplace=True),
        nn.Linear(f, classes))


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); the shortcut is x, option A
    (subsample + zero channels) or a projection (1x1 conv + BN), as tern's ResBuilder."""

    def __init__(self, cin, cout, stride, projection):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.cin, self.cout = stride, cin, cout
        self.down = None
        self.option_a = False
        if stride != 1 or cin != cout:
            if projection:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False),
                                          nn.BatchNorm2d(cout))
            else:
                self.option_a = True

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = self.bn2(self.conv2(y))
        if self.down is not None:
            s = self.down(x)
        elif self.option_a:
            s = x[:, :, ::self.stride, ::self.stride]
            before = (self.cout - self.cin) // 2
            s = F.pad(s, (0, 0, 0, 0, before, self.cout - self.cin - before))
        else:
            s = x
        return F.relu(y + s, inplace=True)


class ResNet(nn.Module):
    def __init__(self, stem, widths, blocks, projection, classes):
        super().__init__()
        self.stem = stem
        layers, cin = [], stem_channels(stem)
        for i, (w, n) in enumerate(zip(widths, blocks)):
            for k in range(n):
                layers.append(BasicBlock(cin, w, 2 if i > 0 and k == 0 else 1, projection))
                cin = w
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def stem_channels(stem):
    return [m for m in stem.modules() if isinstance(m, nn.Conv2d)][-1].out_channels


def init_resnet(model):
    # He-normal (fan_out) convs, BN 1/0, as torchvision; tern's init differs in detail, which
    # does not change the work of a step.
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def cifar_resnet(depth, width, classes):
    assert depth >= 8 and (depth - 2) % 6 == 0
    n = (depth - 2) // 6
    c = scaled(16, width)
    stem = nn.Sequential(nn.Conv2d(3, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c),
                         nn.ReLU(inplace=True))
    return init_resnet(ResNet(stem, [scaled(x, width) for x in (16, 32, 64)], [n] * 3,
                              False, classes))


def resnet18(width, classes):
    c = scaled(64, width)
    stem = nn.Sequential(nn.Conv2d(3, c, 7, 2, 3, bias=False), nn.BatchNorm2d(c),
                         nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
    return init_resnet(ResNet(stem, [scaled(x, width) for x in (64, 128, 256, 512)], [2] * 4,
                              True, classes))


MODELS = ["lenet5", "vgg7", "resnet20", "resnet32", "resnet44", "resnet56", "resnet18"]


def make_model(name, width, classes):
    if name == "lenet5":
        return lenet5(width, classes)
    if name == "vgg7":
        return vgg7(width, classes)
    if name == "resnet18":
        return resnet18(width, classes)
    return cifar_resnet(int(name[len("resnet"):]), width, classes)


def input_shape(args):
    if args.model == "lenet5":
        c, hw = 1, 28
    elif args.model == "resnet18":
        c, hw = 3, 224
    else:
        c, hw = 3, 32
    if args.image_size > 0:
        hw = args.image_size
    return (args.batch, c, hw, hw)


def current_rss_mb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def percentile(v, q):
    v = sorted(v)
    pos = q * (len(v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (pos - lo) * (v[hi] - v[lo])


def time_it(n, f):
    ms = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        ms.append(1000.0 * (time.perf_counter() - t0))
    return ms


def stats(ms):
    return {"median": percentile(ms, 0.5), "p10": percentile(ms, 0.1), "p90": percentile(ms, 0.9)}


def short_formats(mds):
    out = []
    for tok in mds.split():
        parts = tok.split(":")
        if len(parts) > 3 and parts[3] not in ("", "undef"):
            out.append(tok.split("_")[0] + ":" + parts[3])
    return " ".join(out)


def profile_primitives(steps, top, wall_ms, step):
    """Runs `steps` steps with oneDNN verbose on, stdout (fd 1) captured; aggregates exec ms."""
    sys.stdout.flush()
    tmp = tempfile.TemporaryFile(mode="w+")
    saved = os.dup(1)
    os.dup2(tmp.fileno(), 1)
    try:
        with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
            for _ in range(steps):
                step()
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    tmp.seek(0)
    by_kind, by_prim, count = defaultdict(float), defaultdict(lambda: [0.0, 0]), 0
    total = 0.0
    for line in tmp:
        if not re.match(r"^(onednn|dnnl)_verbose,exec,", line):
            continue
        f = line.rstrip("\n").split(",")
        if len(f) < 10:
            continue
        try:
            ms = float(f[-1])
        except ValueError:
            continue
        count += 1
        total += ms
        by_kind[f"{f[3]} {f[5]}"] += ms
        key = f"{f[3]} {f[5]} {f[4]} {f[-2]} [{short_formats(f[6])}]"
        by_prim[key][0] += ms
        by_prim[key][1] += 1
    print(f"\n== oneDNN primitives called by PyTorch (verbose, {steps} steps, "
          f"{count // steps} executions per step)")
    print(f"  exec total {total / steps:.2f} ms/step; wall without verbose {wall_ms:.2f} ms/step;"
          f" outside oneDNN ~{wall_ms - total / steps:.2f} ms/step")
    for k, ms in sorted(by_kind.items(), key=lambda x: -x[1]):
        print(f"    {ms / steps:9.2f} ms  {100 * ms / max(total, 1e-9):5.1f}%  {k}")
    print("  top primitives (ms per step):")
    for k, (ms, n) in sorted(by_prim.items(), key=lambda x: -x[1][0])[:top]:
        rep = f" x{n // steps}" if n // steps > 1 else ""
        print(f"    {ms / steps:9.2f} ms  {k}{rep}")


def run(args, mode):
    start_rss = current_rss_mb()
    torch.manual_seed(args.seed)
    model = make_model(args.model, args.width, args.classes)
    shape = input_shape(args)
    x = torch.randn(*shape)
    y = torch.randint(0, args.classes, (args.batch,))
    foreach = False
    if mode == "tuned":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        foreach = True
    model.train()
    decay = [p for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
             for n, p in m.named_parameters(recurse=False) if n == "weight"]
    ids = {id(p) for p in decay}
    rest = [p for p in model.parameters() if id(p) not in ids]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": args.weight_decay},
                           {"params": rest, "weight_decay": 0.0}],
                          lr=args.lr, momentum=0.9, foreach=foreach)
    losses = []

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())

    def fwd():
        F.cross_entropy(model(x), y).item()

    def fwd_bwd():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    for _ in range(args.warmup + 1):
        step()
    full = stats(time_it(args.iters, step))
    nparams = sum(p.numel() for p in model.parameters())
    print(f"torch_train.py: model {args.model} width {args.width} input "
          f"{'x'.join(str(d) for d in shape[1:])} classes {args.classes} batch {args.batch} threads "
          f"{torch.get_num_threads()} mode {mode} ({nparams} parameters), torch "
          f"{torch.__version__}, mkldnn {torch.backends.mkldnn.is_available()} "
          f"enabled {torch.backends.mkldnn.enabled}, loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    img_s = 1000.0 * args.batch / full["median"]
    print(f"  train step       median {full['median']:9.2f} ms  p10 {full['p10']:9.2f}  "
          f"p90 {full['p90']:9.2f}  ({img_s:.1f} img/s)")
    bd = {"fwd": float("nan"), "fwdbwd": float("nan"), "update": float("nan")}
    if not args.no_breakdown:
        bd["fwd"] = stats(time_it(args.iters, fwd))["median"]
        bd["fwdbwd"] = stats(time_it(args.iters, fwd_bwd))["median"]
        fwd_bwd()
        bd["update"] = stats(time_it(args.iters, opt.step))["median"]
        print(f"  breakdown: forward {bd['fwd']:.2f} ms, forward+backward {bd['fwdbwd']:.2f} ms,"
              f" update {bd['update']:.2f} ms")
    if args.verbose_primitives:
        profile_primitives(args.profile_steps, args.top, full["median"], step)
    print(f"RESULT impl=torch mode={mode} model={args.model} width={args.width:.3f} "
          f"batch={args.batch} threads={args.threads} median_ms={full['median']:.3f} "
          f"p10_ms={full['p10']:.3f} p90_ms={full['p90']:.3f} img_s={img_s:.1f} "
          f"fwd_ms={bd['fwd']:.3f} fwdbwd_ms={bd['fwdbwd']:.3f} update_ms={bd['update']:.3f} "
          f"image={shape[2]} classes={args.classes} params={nparams} "
          f"start_rss_mb={start_rss:.1f} peak_rss_mb={peak_rss_mb():.1f}",
          flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=MODELS, default="lenet5")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--mode", choices=["stock", "tuned", "both"], default="both")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--no-breakdown", action="store_true")
    p.add_argument("--verbose-primitives", action="store_true")
    p.add_argument("--profile-steps", type=int, default=3)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--classes", type=int, default=10,
                   help="classifier outputs")
    p.add_argument("--image-size", type=int, default=0,
                   help="input height and width (0: 28 for lenet5, 224 for resnet18, else 32)")
    p.add_argument("--params", action="store_true",
                   help="print the parameter count of the model and exit")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.params:
        print(sum(p.numel() for p in make_model(args.model, args.width, args.classes).parameters()))
        return
    for mode in (["stock", "tuned"] if args.mode == "both" else [args.mode]):
        run(args, mode)


if __name__ == "__main__":
    main()
