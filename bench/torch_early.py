#!/usr/bin/python3
"""Why tern's float LeNet-5 learns slower early than PyTorch's (issue 15): 100 SGD steps on the
first 10k MNIST training images (batch 100, lr 0.01, momentum 0.9, weight decay 1e-4 on conv/FC
weights, no dropout: tern-train's plain defaults), test accuracy on the 10k test images, seeds
1-3, one thread, for PyTorch's default initialisation ("default": kaiming_uniform with a = sqrt(5),
std 1/sqrt(3 fan_in)) and for tern's ("he": He-normal, std sqrt(2/fan_in), zero biases).

    /usr/bin/python3 bench/torch_early.py default he      # data from data/mnist

The tern side: tern-train --dataset mnist --method fp --epochs 1 --train-limit 10000 --no-recipe
--threads 1 --seed S. Results in docs/results.md.
"""
import statistics
import sys

import torch
import torch.nn as nn

torch.set_num_threads(1)
DATA = "data/mnist"
def idx(path, off):
    return torch.frombuffer(bytearray(open(path, 'rb').read()[off:]), dtype=torch.uint8)
X = idx(DATA + '/train-images-idx3-ubyte', 16).reshape(-1, 1, 28, 28)[:10000].float() / 255
Y = idx(DATA + '/train-labels-idx1-ubyte', 8)[:10000].long()
Xt = idx(DATA + '/t10k-images-idx3-ubyte', 16).reshape(-1, 1, 28, 28).float() / 255
Yt = idx(DATA + '/t10k-labels-idx1-ubyte', 8).long()
m, s = X.mean(), X.std()
X = (X - m) / s; Xt = (Xt - m) / s
def net():
    cbr = lambda i, o: [nn.Conv2d(i, o, 5, bias=False), nn.BatchNorm2d(o), nn.ReLU()]
    return nn.Sequential(*cbr(1, 32), nn.MaxPool2d(2), *cbr(32, 64), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(1024, 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 10))
for init in sys.argv[1:]:
    accs = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        model = net()
        if init == 'he':
            for mod in model.modules():
                if isinstance(mod, (nn.Conv2d, nn.Linear)):
                    nn.init.kaiming_normal_(mod.weight, nonlinearity='relu')
                    if mod.bias is not None: nn.init.zeros_(mod.bias)
        decay = [p for n, p in model.named_parameters() if p.dim() > 1]
        other = [p for n, p in model.named_parameters() if p.dim() <= 1]
        opt = torch.optim.SGD([{'params': decay, 'weight_decay': 1e-4}, {'params': other, 'weight_decay': 0}], lr=0.01, momentum=0.9)
        perm = torch.randperm(10000)
        model.train()
        for b in range(100):
            i = perm[b * 100:(b + 1) * 100]
            opt.zero_grad(); loss = nn.functional.cross_entropy(model(X[i]), Y[i]); loss.backward(); opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(Xt).argmax(1) == Yt).float().mean().item()
        accs.append(acc * 100)
    print(init, ' '.join(f'{a:.2f}' for a in accs), f'mean {statistics.mean(accs):.2f}')
