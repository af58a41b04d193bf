#!/usr/bin/env python3
"""PyTorch float inference throughput of LeNet-5 (TWN paper: 32-C5, MP2, 64-C5, MP2, 512-FC,
10), the counterpart of tern-bench-infer. eval() mode, torch.inference_mode(), same input for
every call, median of --iters timed calls after --warmup. With and without BN.

    python3 bench/torch_infer.py --threads 2 --batches 1,100
Prints: RESULT impl=torch model=lenet5 bn=... batch=... threads=... median_ms=... img_s=...
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn


def lenet5(bn: bool) -> nn.Module:
    def block(layer, c):
        return [layer, nn.BatchNorm2d(c) if bn and isinstance(layer, nn.Conv2d) else
                (nn.BatchNorm1d(c) if bn else nn.Identity()), nn.ReLU()]
    return nn.Sequential(
        *block(nn.Conv2d(1, 32, 5, bias=not bn), 32), nn.MaxPool2d(2),
        *block(nn.Conv2d(32, 64, 5, bias=not bn), 64), nn.MaxPool2d(2), nn.Flatten(),
        *block(nn.Linear(64 * 4 * 4, 512, bias=not bn), 512), nn.Linear(512, 10))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batches", default="1,100")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--iters", type=int, default=200)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    for bn in (True, False):
        net = lenet5(bn).eval()
        for b in [int(x) for x in a.batches.split(",")]:
            x = torch.randn(b, 1, 28, 28)
            with torch.inference_mode():
                for _ in range(a.warmup):
                    net(x)
                t = []
                for _ in range(a.iters):
                    t0 = time.perf_counter()
                    net(x)
                    t.append((time.perf_counter() - t0) * 1e3)
            ms = statistics.median(t)
            print(f"RESULT impl=torch model=lenet5 bn={int(bn)} batch={b} threads={a.threads} "
                  f"median_ms={ms:.4f} img_s={b / ms * 1e3:.0f}")


if __name__ == "__main__":
    main()
