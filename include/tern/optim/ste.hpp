#pragma once
/// \file Straight-through estimation (docs/algorithms.md section 2): BinaryConnect, BWN, TWN
/// and TTQ are this optimizer with different quantizers.
///
///   value = Q(W)                     forward and backward see the quantized weights
///   g     = dLoss/dvalue             one pass, Pass::Commit
///   dW    = Q.backward(W, g)         pseudo-gradient (clipped identity for STE, TTQ's rule)
///   W     = W - lr * inner(dW)       the latent stays float, inside the optimizer
///   (optional) W = clip(W, -c, c)    BinaryConnect
///
/// With a bit penalty lambda (GTC's lambda2) the step minimises f + lambda * sum_blocks
/// Q.penalty(): dW and the quantizer's trainables get lambda * its STE gradient.
///
/// With a joint teacher (GTC's distillation, seed 004 eq. 11) each step runs two forward passes
/// of the batch over the same blocks: a float teacher at W and the quantized student at Q(W),
/// and minimises
///
///   L(teacher) + lambda1 * D(teacher, student) + lambda2 * B
///
/// (D: optim::softCrossEntropy, gradients into both passes): dW = dL/dW + lambda1 dD/dt dt/dW
/// + Q.backward(W, lambda1 dD/ds ds/dvalue). The student learns from the teacher only; at
/// lambda1 = 0 it follows W through the quantizer alone.
#include "tern/optim/block_sets.hpp"
#include "tern/optim/optimizer.hpp"
#include "tern/proj/projection.hpp"

#include <functional>
#include <memory>
#include <optional>

namespace tern::optim {

namespace detail {
class LatentBlocks;
}


/// Builds one quantizer per constrained block (e.g. [&]{ return proj::makeSte(p, g); }).
using QuantizerFactory = std::function<std::unique_ptr<proj::Quantizer>()>;
/// Builds the quantizer of one constrained block, chosen by the block (its name: per-block
/// sets, e.g. [&](const ParameterBlock& b) { return proj::makeSte(sets.of(b.name).projection,
/// ...); }). Called once with a block named "" (no entry: the default) to learn levels() and
/// freeScale() before begin().
using BlockQuantizerFactory =
    std::function<std::unique_ptr<proj::Quantizer>(const ParameterBlock& block)>;

struct SteSettings {
    double latentClip = 0;  ///< > 0: clip the latent to [-c, c] after each update (BinaryConnect: 1)
    /// Learning-rate factor of the quantizer's trainables (TTQ's Wp, Wn, whose gradient is a
    /// sum over the whole group; GTC's theta1, theta2); 0 keeps them fixed. Scales are kept >= 0
    /// after each update
    /// (proj::Quantizer::trainablesNonNegative(); GTC's theta is not).
    double trainableLr = 1.0;
    /// The weight lambda of the quantizers' penalty (GTC's lambda2 on its bit cost
    /// B = sum_layers 2^bits): each step adds lambda * dB to the gradients of W and of the
    /// quantizer's trainables, and the loss it returns is f_B + lambda * B (B at the step's
    /// forward), so the reported loss is the objective being minimised. >= 0; > 0 needs a
    /// quantizer with a penalty (proj::Quantizer::hasPenalty(): gtc).
    double bitPenalty = 0;
    /// The bit penalty's schedule (GTC's annealing: lambda2 / 10 every 10k iterations): the
    /// step s uses bitPenalty * bitPenaltyDecay^floor(s / bitPenaltyEvery); 0 = constant.
    Index bitPenaltyEvery = 0;
    double bitPenaltyDecay = 0.1;  ///< (0, 1]
    /// GTC's distillation: a float teacher at W trained beside the quantized student (above).
    /// Needs an objective with logits (optim::LogitObjective, e.g. nn::Network).
    bool jointTeacher = false;
    double distillWeight = 0;       ///< lambda1 (>= 0), with jointTeacher
    double distillTemperature = 1;  ///< T of D (> 0; 1 = the paper's), with jointTeacher
    /// The bit penalty after `steps` steps (the schedule above).
    double bitPenaltyAt(Index steps) const;
    /// Throws std::invalid_argument naming the offending field.
    void validate() const;
};

/// STE with a latent float copy per constrained block. Quantizer trainables (TTQ's Wp, Wn) get
/// their own inner update (same rule, no weight decay). Between steps, a constrained block's
/// value holds Q of the latent before the last update; deploy() sets value = Q(latent),
/// restore() sets value = latent.
class Ste final : public Optimizer {
public:
    /// Validates the settings; throws std::invalid_argument if the factory is empty or returns
    /// nullptr, or if bitPenalty > 0 and the quantizer has no penalty.
    Ste(QuantizerFactory factory, SteSettings settings = {}, InnerSettings inner = {},
        TrainSettings train = {});
    /// A quantizer per block from `factory` (BlockQuantizerFactory); the same checks.
    Ste(BlockQuantizerFactory factory, SteSettings settings = {}, InnerSettings inner = {},
        TrainSettings train = {});
    /// STE through each constrained block's own projection (proj::makeSte(set.projection,
    /// set.granularity)); begin() checks the sets against the objective's blocks.
    explicit Ste(BlockSets sets, SteSettings settings = {}, InnerSettings inner = {},
                 TrainSettings train = {});
    ~Ste() override;
    std::string name() const override { return "ste"; }
    /// The most levels of the blocks' quantizers (before begin(): the default block's).
    int levels() const override;
    bool freeScale() const override;
    /// The block's set (with BlockSets), else its quantizer's name, levels, free scale and
    /// bitsPerWeight() (GTC's learned bits).
    DeployedSet deployedSet(Index i) const override;
    const SteSettings& settings() const { return settings_; }

    /// The latent W of the k-th constrained block.
    const Vector& latent(Index k) const;
    /// The quantizer of the k-th constrained block.
    proj::Quantizer& quantizer(Index k);
    Index constrainedBlocks() const;
    /// The name of the k-th constrained block ("fc1.weights").
    const std::string& blockName(Index k) const;

protected:
    void doBegin(Objective& f) override;
    double doStep(Objective& f, Index batch) override;
    void doEndEpoch(Objective& f, Index epoch, EpochStats& stats) override;
    void doDeploy(Objective& f) override;
    void doRestore(Objective& f) override;
    void doSave(StateWriter& out, const std::string& prefix) const override;
    void doLoad(const StateReader& in, const std::string& prefix) override;
    const Vector& trainingPoint(Index i) const override;
    void setTrainingPoint(Index i, const Vector& w) override;
    std::string describeMethod() const override;

private:
    /// value = Q(W) for every constrained block (skipped for a non-finite latent).
    void quantizeAll();
    /// W = clip(W, -c, c) (BinaryConnect), when latentClip > 0.
    void clip(Vector& w) const;
    /// The loss at Q(W) and every pseudo-gradient (dLatent, trainables, unconstrained grads).
    double studentGradient(Objective& f, Index batch);
    /// The same for the joint teacher's loss (the two passes above).
    double jointGradient(Objective& f, Index batch);

    SteSettings settings_;
    std::optional<BlockSets> sets_;  // with the BlockSets constructor: checked by begin()
    std::unique_ptr<detail::LatentBlocks> latent_;
    // jointTeacher: the teacher's logits, the two passes' logit gradients, and the student
    // pass's gradients of the unconstrained blocks (both passes train them)
    std::vector<float> teacherLogits_, dTeacher_, dStudent_;
    std::vector<Vector> studentGrad_;
};

}  // namespace tern::optim
