#pragma once
/// \file Partial quantization with a rising fraction: Random Partition Relaxation (RPR, seed 002;
/// docs/algorithms.md section 6) and incremental ternarization (seed 003; section 4).
///
/// In every constrained block (per group: tensor or output filter) a fraction f of the entries
/// is quantized and the rest stay float and train. f rises over stages (RPR: 0.9, 0.95, 0.975,
/// 0.9875, 1; incremental: 0.5, 0.75, 1). The two methods differ in which entries are quantized
/// and what happens to them:
///
///   RPR (Selection::Random, freeze = true)
///     every epoch:  draw a random partition, a fraction f of each group "constrained"
///                   Wc = P_C(W) (computed once over the whole group, then fixed for the epoch)
///     every step:   value = constrained ? Wc : W;  g = dL/dvalue
///                   W_relaxed -= lr * inner(g);   W_constrained keeps its latent value
///
///   incremental (Selection::Magnitude, freeze = false)
///     every stage:  the largest-|W| fraction f of each group is quantized; the quantizer's
///                   trainable state (TTQ's Wp, Wn) is re-initialised from the newly quantized
///                   entries (Quantizer::initFrom)
///     every step:   value = quantized ? Q(W) : W; g = dL/dvalue
///                   quantized entries: dW = Q.backward(W, g) (TTQ's rule; scales get their grads
///                   from the quantized entries only); float entries: dW = g
///
/// deploy() always sets value = Q(W) for every entry (the network on the set), so accuracy is
/// reported at a point of C whatever the stage; restore() brings back the mixed training point.
#include "tern/optim/optimizer.hpp"
#include "tern/optim/ste.hpp"
#include "tern/proj/projection.hpp"

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

namespace tern::optim {

namespace detail {
struct NamedQuantizer;
}


struct PartialSettings {
    enum class Selection { Random, Magnitude };
    Selection selection = Selection::Random;
    /// Quantized fraction per stage, each in (0, 1], non-decreasing.
    std::vector<double> fractions{0.9, 0.95, 0.975, 0.9875, 1.0};
    /// Epochs per stage; the last stage lasts until the end of the run.
    Index stageEpochs = 2;
    /// Quantized entries keep their latent value (RPR) instead of training through Q.
    bool freeze = true;
    /// RPR's initial per-group rescale: W /= proj::bestScale(P, W). Meant for sets with a fixed scale
    /// ("ternary,scale=one") in front of batch norm, which makes the scale irrelevant.
    bool rescale = false;
    /// Learning-rate factor of the quantizer's trainables (TTQ's Wp, Wn); kept >= 0.
    double trainableLr = 1.0;
    /// Throws std::invalid_argument naming the offending field.
    void validate() const;

    /// RPR defaults (random partition redrawn every epoch, frozen, fractions 0.9 ... 1).
    static PartialSettings rpr();
    /// Incremental defaults (largest magnitudes first, trained through Q, fractions 0.5, 0.75, 1).
    static PartialSettings incremental();
};

/// See the file comment. One quantizer per constrained block, made by `factory` (for RPR:
/// proj::makeSte(P, granularity), whose forward() is P; for incremental: proj::makeTtq(...)).
/// name() is "rpr" for random selection and "inc" for magnitude selection.
class PartialQuantization final : public Optimizer {
public:
    /// Validates the settings; throws std::invalid_argument if the factory is empty or returns
    /// nullptr.
    PartialQuantization(QuantizerFactory factory, Granularity granularity,
                        PartialSettings settings, InnerSettings inner = {},
                        TrainSettings train = {});
    std::string name() const override;
    const PartialSettings& settings() const { return settings_; }

    /// The current stage (0-based) and its fraction.
    Index stage() const { return stage_; }
    double fraction() const;
    /// Quantized-entry mask of the k-th constrained block (1 = quantized / constrained).
    const std::vector<std::uint8_t>& mask(Index k) const;
    /// The latent W of the k-th constrained block.
    const Vector& latent(Index k) const;
    /// The quantizer of the k-th constrained block.
    proj::Quantizer& quantizer(Index k);
    Index constrainedBlocks() const { return static_cast<Index>(state_.size()); }
    /// The quantizer's levels() and freeScale().
    int levels() const override { return levels_; }
    bool freeScale() const override { return freeScale_; }

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

private:
    struct BlockState {
        Index slot = 0;
        Vector latent;
        Vector work;                      // scratch: Q(latent), masked gradient
        Vector dLatent;
        Vector frozen;                    // RPR: P_C(latent) at the last partition
        std::vector<std::uint8_t> mask;   // 1 = quantized
        std::unique_ptr<proj::Quantizer> q;
        std::vector<std::int64_t> codes;  // sign of Q(W) at the last endEpoch (flip ratio)
    };
    /// Each constrained block's quantizer with the block's name (src/optim/quantizers.hpp).
    std::vector<detail::NamedQuantizer> quantizers() const;
    /// Chooses the quantized entries for the current stage (and re-initialises the quantizer
    /// from the newly quantized ones, or caches the frozen values).
    void partition(bool newStage);
    /// value := the mixed training point of every constrained block.
    void writeTrainingPoint();
    Index stageOf(Index epoch) const;

    QuantizerFactory factory_;
    Granularity granularity_;
    PartialSettings settings_;
    std::vector<BlockState> state_;
    int levels_ = 0;
    bool freeScale_ = false;
    InnerUpdate qInner_;  // quantizer trainables (TTQ's Wp, Wn)
    std::mt19937_64 partRng_;
    Index stage_ = 0;
};

}  // namespace tern::optim
