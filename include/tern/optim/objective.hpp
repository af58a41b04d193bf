#pragma once
/// \file The differentiable objective an Optimizer minimises (ensmallen's separable function,
/// at run time). A least-squares problem and a neural network are both Objectives.
#include "tern/core/parameter.hpp"
#include "tern/core/state.hpp"

#include <random>

namespace tern::optim {

/// Probe: a trial evaluation with no side effects (extragradient predictor, line searches).
/// Commit: the real step; may update side state (BN running statistics, metrics).
enum class Pass { Probe, Commit };

class Objective {
public:
    virtual ~Objective() = default;
    /// The coordinates: every block's `value` is read, every `grad` written.
    virtual ParameterSet& parameters() = 0;
    /// One epoch = numBatches() minibatch steps (1 for a full-batch problem).
    virtual Index numBatches() const = 0;
    /// Reorders the minibatches for a new epoch. Batch b must be a pure function of
    /// (the order, b), so that two evaluations of one batch see the same data.
    virtual void shuffle(std::mt19937_64& /*rng*/) {}
    /// Mean loss of batch b at the blocks' `value`; writes every block's `grad`.
    virtual double evaluateWithGradient(Index batch, Pass pass = Pass::Commit) = 0;
    /// Loss only. Default: evaluateWithGradient(batch, Pass::Probe).
    virtual double evaluate(Index batch) { return evaluateWithGradient(batch, Pass::Probe); }
    /// Side state beyond `parameters()` (BN running statistics, shuffle order) for exact resume.
    virtual void saveState(StateWriter& /*out*/, const std::string& /*prefix*/) const {}
    virtual void loadState(const StateReader& /*in*/, const std::string& /*prefix*/) {}
};

}  // namespace tern::optim
