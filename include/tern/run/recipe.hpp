#pragma once
/// \file tern-train's defaults that work: for the settings a user did not give, the method's
/// measured recipe (docs/results.md), so that `tern-train --dataset D --model M --method X
/// --epochs N` is a good run of X.
#include "tern/run/config.hpp"

#include <functional>
#include <string>

namespace tern::run {

/// Fills the settings whose flag `given(flag)` says the user did not give:
///   - every model, multistep schedule: lr steps at 50% and 75% of the epochs (80% when
///     fine-tuning with --init);
///   - LeNet-5 (measured, docs/results.md): lr 0.05 (0.01 without BN or when fine-tuning),
///     weight decay 5e-4, dropout 0.3 with BN;
///   - ResNets (resnet20/32/44/56/18; He et al. 2016, not tuned here): lr 0.1 (0.01 when
///     fine-tuning), weight decay 1e-4, batch 128, momentum as the default (0.9);
///   - gtc: the paper's (seed 004): Adam at lr 1e-3 without weight decay, the joint float
///     teacher (unless --teacher), bit penalty 0.04 divided by 10 six times over the run
///     (every epochs * batches-per-epoch / 6 steps; the paper's 10k of ~50k iterations);
///   - ttq: threshold 0.2 from scratch (0.05 fine-tuning, as the TTQ paper);
///   - admm: from scratch the coupling rho schedule and a final phase of max(1, epochs / 10)
///     epochs; fine-tuning rho 1e-2 growing x1.6.
/// Flags are tern-train's ("lr", "lr-steps", "weight-decay", ...). Returns the flags it set.
std::vector<std::string> applyRecipe(TrainConfig& config,
                                     const std::function<bool(const std::string& flag)>& given);

}  // namespace tern::run
