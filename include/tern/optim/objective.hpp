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

/// An Objective whose loss is a function of class scores (a classifier network), with the step
/// split at the logits, so that a method can combine several forward passes of one batch in one
/// loss: GTC's float teacher at W and quantized student at Q(W), which share every block (Ste
/// with SteSettings::jointTeacher). Two pass slots (0, 1) keep their activations apart, so each
/// can be run backward after both forwards.
class LogitObjective : public Objective {
public:
    /// Classes: the columns of the logits.
    virtual Index logitColumns() const = 0;
    /// Rows of a training batch's logits.
    virtual Index logitRows() const = 0;
    /// Forward pass of training batch `batch` at the blocks' current values, in slot 0 or 1.
    /// Commit updates side state (BN running statistics) and the training metrics (accuracy and
    /// own loss of these logits); Probe leaves both alone. Both slots of one step see the same
    /// data and the same random draws (dropout). Returns rows x columns logits, row-major,
    /// valid until the next forward of that slot.
    virtual const float* forwardLogits(Index batch, Pass pass, int slot) = 0;
    /// The objective's own loss (mean over the rows, against the labels of the batch forwarded
    /// last) at the logits of the last forward of `slot`; adds its gradient into dLogits
    /// (nullptr: loss only).
    virtual double logitLoss(int slot, float* dLogits) = 0;
    /// Backward pass of `slot` from d loss / d logits: writes every block's `grad`. The blocks'
    /// values must be those the slot's forward saw.
    virtual void backwardFromLogits(int slot, const float* dLogits) = 0;
};

}  // namespace tern::optim
