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
#include "tern/optim/optimizer.hpp"
#include "tern/proj/projection.hpp"

#include <functional>
#include <memory>

namespace tern::optim {

namespace detail {
class LatentBlocks;
}


/// Builds one quantizer per constrained block (e.g. [&]{ return proj::makeSte(p, g); }).
using QuantizerFactory = std::function<std::unique_ptr<proj::Quantizer>()>;

struct SteSettings {
    double latentClip = 0;  ///< > 0: clip the latent to [-c, c] after each update (BinaryConnect: 1)
    /// Learning-rate factor of the quantizer's trainables (TTQ's Wp, Wn, whose gradient is a
    /// sum over the whole group; GTC's theta1, theta2). Scales are kept >= 0 after each update
    /// (proj::Quantizer::trainablesNonNegative(); GTC's theta is not).
    double trainableLr = 1.0;
    /// The weight lambda of the quantizers' penalty (GTC's lambda2 on its bit cost
    /// B = sum_layers 2^bits): each step adds lambda * dB to the gradients of W and of the
    /// quantizer's trainables, and the loss it returns is f_B + lambda * B (B at the step's
    /// forward), so the reported loss is the objective being minimised. >= 0; > 0 needs a
    /// quantizer with a penalty (proj::Quantizer::hasPenalty(): gtc).
    double bitPenalty = 0;
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
    ~Ste() override;
    std::string name() const override { return "ste"; }
    int levels() const override;
    bool freeScale() const override;
    const SteSettings& settings() const { return settings_; }

    /// The latent W of the k-th constrained block.
    const Vector& latent(Index k) const;
    /// The quantizer of the k-th constrained block.
    proj::Quantizer& quantizer(Index k);
    Index constrainedBlocks() const;

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

    SteSettings settings_;
    std::unique_ptr<detail::LatentBlocks> latent_;
};

}  // namespace tern::optim
