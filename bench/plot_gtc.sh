#!/usr/bin/env bash
# docs/gtc-bits.png: accuracy against bits per quantized weight for issue 16's runs and the
# ternary / binary references of issue 15 (run directories under runs/, as docs/results.md names them).
set -euo pipefail
r=runs
/usr/bin/python3 bench/plot_gtc.py "${1:-docs/gtc-bits.png}" \
  "gtc-lenet, MNIST, 30 epochs=$(echo gtc-recipe@$r/i16/gtc-lenet-every3k-s{1,2,3} gtc-lambda2-1e-3@$r/i16/gtc-lenet-l2e-3-s{1,2,3} \
     gtc-paper-schedule@$r/i16/gtc-lenet-paper-s1 $r/i16/gtc-lenet-ste-s1 $r/i16/gtc-lenet-stebit-s1 $r/i16/gtc-lenet-fp-s1)" \
  "LeNet-5, MNIST, 20 epochs=$(echo $r/i15s/mnist-twn-s{1,2,3} $r/i15s/mnist-admm-s{1,2,3} $r/i16/lenet5-mnist-gtc-s{1,2,3})" \
  "LeNet-5, Fashion-MNIST, 10 epochs=$(echo $r/i15s/fashion-{twn,ttq,bwn}-s{1,2,3} $r/i15t/fashion-admm-clinit-fe2-s{1,2,3} \
     $r/i15t/fashion-admm-binary-clinit-fe2-s{1,2,3} $r/i16/fashion-{twn,ttq,admm}-kd-s{1,2,3} $r/i16/lenet5-fashion-gtc-s{1,2,3})"
