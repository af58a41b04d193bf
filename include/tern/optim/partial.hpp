#pragma once
/// \file Partial quantization with a rising fraction: Random Partition Relaxation (RPR, seed 002;
/// docs/algorithms.md section 6) and incremental ternarization (seed 003; section 4).
///
/// In every constrained block (per group: tensor or output filter) a fraction f of the entries
/// is quantized and the rest stay float and train. f rises over stages (RPR: 0.9, 0.95, 0.975,
/// 0.9875, 1; incremental: 0.5, 0.75, 1). The two methods differ in which entries are quantized
/// and what happens to them:
///
///   RPR (class Rpr)
///     every epoch:  draw a random partition, a fraction f of each group "constrained"
///                   Wc = P_C(W) (computed once over the whole group, then fixed for the epoch)
///     every step:   value = constrained ? Wc : W;  g = dL/dvalue
///                   W_relaxed -= lr * inner(g);   W_constrained keeps its latent value
///
///   incremental (class Incremental)
///     every stage:  the largest-|W| fraction f of each group is quantized; the quantizer's
///                   trainable state (TTQ's Wp, Wn) is re-initialised from the newly quantized
///                   entries (Quantizer::initFrom)
///     every step:   value = quantized ? Q(W) : W; g = dL/dvalue
///                   quantized entries: dW = Q.backward(W, g) (TTQ's rule; scales get their grads
///                   from the quantized entries only); float entries: dW = g
///
/// Both are a StagedQuantization: the stage schedule, the masks and the quantized latent blocks
/// (the component STE uses too) are shared; each method says how it selects, what the
/// quantized entries hold and how they train.
///
/// deploy() always sets value = Q(W) for every entry (the network on the set), so accuracy is
/// reported at a point of C whatever the stage; restore() brings back the mixed training point.
#include "tern/optim/block_sets.hpp"
#include "tern/optim/optimizer.hpp"
#include "tern/optim/ste.hpp"
#include "tern/proj/projection.hpp"

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace tern::optim {

namespace detail {
class LatentBlocks;
}

/// RPR's settings (Cacchione et al., seed 002).
struct RprSettings {
    /// Constrained fraction per stage, each in (0, 1], non-decreasing.
    std::vector<double> fractions{0.9, 0.95, 0.975, 0.9875, 1.0};
    /// Epochs per stage; the last stage lasts until the end of the run.
    Index stageEpochs = 2;
    /// Initial per-group rescale W /= proj::bestScale(P, W): for sets with a fixed scale
    /// ("ternary,scale=one") in front of batch norm, which makes the scale irrelevant.
    bool rescale = false;
    /// Throws std::invalid_argument naming the offending field.
    void validate() const;
};

/// Incremental ternarization's settings (seed 003).
struct IncrementalSettings {
    /// Quantized fraction per stage, each in (0, 1], non-decreasing.
    std::vector<double> fractions{0.5, 0.75, 1.0};
    /// Epochs per stage; the last stage lasts until the end of the run.
    Index stageEpochs = 5;
    /// Learning-rate factor of the quantizer's trainables (TTQ's Wp, Wn); kept >= 0.
    double trainableLr = 1.0;
    /// Throws std::invalid_argument naming the offending field.
    void validate() const;
};

/// The shared part of RPR and incremental quantization: a rising fraction per stage, one
/// quantized-entry mask per constrained block, the latent blocks and their quantizers, the
/// mixed training point, deploy() at Q(W), flip statistics and checkpoints.
class StagedQuantization : public Optimizer {
public:
    ~StagedQuantization() override;
    /// The most levels of the blocks' quantizers (before begin(): the default block's).
    int levels() const override;
    bool freeScale() const override;
    /// The block's quantizer: its name, levels, free scale and bits.
    DeployedSet deployedSet(Index i) const override;
    bool trainsAtDeployedPoint() const override { return false; }  // the mixed point

    /// The current stage (0-based) and its fraction.
    Index stage() const { return stage_; }
    double fraction() const { return fractions_[size_t(stage_)]; }
    /// Quantized-entry mask of the k-th constrained block (1 = quantized / constrained).
    const std::vector<std::uint8_t>& mask(Index k) const;
    /// The latent W of the k-th constrained block.
    const Vector& latent(Index k) const;
    /// The quantizer of the k-th constrained block.
    proj::Quantizer& quantizer(Index k);
    Index constrainedBlocks() const;

protected:
    /// Validates the schedule; `owner` names the class in messages.
    StagedQuantization(BlockQuantizerFactory factory, Granularity granularity,
                       std::vector<double> fractions, Index stageEpochs, double trainableLr,
                       InnerSettings inner, TrainSettings train, const std::string& owner);

    /// Chooses the quantized entries of block k for fraction f < 1 into `next` (all zeros).
    virtual void select(Index k, double f, std::vector<std::uint8_t>& next) = 0;
    /// Called after block k's mask was replaced; `fresh` marks the newly quantized entries.
    virtual void partitioned(Index k, const std::vector<std::uint8_t>& fresh, bool newStage) = 0;
    /// The quantized values of block k for the training point (nullptr: leave value as is).
    virtual const Vector* quantizedValues(Index k) = 0;
    /// The latent update of block k from its gradient; returns whether W stays finite.
    virtual bool update(Index k) = 0;
    /// A new partition every epoch (RPR), or only at stage changes (incremental).
    virtual bool repartitionEveryEpoch() const = 0;
    /// Called first in begin(), before the quantizers are built (RPR checks its sets).
    virtual void checkBlocks() const {}
    /// Called at the start of begin(), once the latent blocks exist (RPR's rescale).
    virtual void prepare() {}
    /// Method attributes and state beyond the shared ones.
    virtual void saveMore(StateWriter& /*out*/, const std::string& /*prefix*/) const {}
    virtual void loadMore(const StateReader& /*in*/, const std::string& /*prefix*/) {}
    /// "freeze" attribute of the checkpoint format (1 for RPR) and RPR's rescale.
    virtual bool freezes() const = 0;
    virtual bool rescales() const { return false; }

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

    detail::LatentBlocks& latentBlocks() { return *latent_; }
    const detail::LatentBlocks& latentBlocks() const { return *latent_; }
    Granularity granularity() const { return granularity_; }
    std::mt19937_64& partitionRng() { return partRng_; }

private:
    /// Chooses the quantized entries for the current stage.
    void partition(bool newStage);
    /// value := the mixed training point of every constrained block.
    void writeTrainingPoint();
    Index stageOf(Index epoch) const;

    std::unique_ptr<detail::LatentBlocks> latent_;
    Granularity granularity_;
    std::vector<double> fractions_;
    Index stageEpochs_;
    double trainableLr_;
    std::string owner_;
    std::vector<std::vector<std::uint8_t>> masks_;
    std::mt19937_64 partRng_;
    Index stage_ = 0;
};

/// Random Partition Relaxation: each epoch a random fraction f of every block is constrained
/// at Wc = P_C(W) (computed over the whole group, fixed for the epoch); the rest trains.
/// name() "rpr".
class Rpr final : public StagedQuantization {
public:
    /// Validates the settings; throws std::invalid_argument on a null projection.
    Rpr(std::shared_ptr<const proj::Projection> projection, Granularity granularity,
        RprSettings settings = {}, InnerSettings inner = {}, TrainSettings train = {});
    /// Each constrained block on its own set (BlockSets::of(block name)), checked by begin().
    explicit Rpr(BlockSets sets, RprSettings settings = {}, InnerSettings inner = {},
                 TrainSettings train = {});
    std::string name() const override { return "rpr"; }
    const RprSettings& settings() const { return settings_; }
    const BlockSets& sets() const { return sets_; }
    /// The block's set ("ternary:exact/tensor"), levels and free scale.
    DeployedSet deployedSet(Index i) const override;

protected:
    void select(Index k, double f, std::vector<std::uint8_t>& next) override;
    void partitioned(Index k, const std::vector<std::uint8_t>& fresh, bool newStage) override;
    const Vector* quantizedValues(Index k) override;
    bool update(Index k) override;
    bool repartitionEveryEpoch() const override { return true; }
    void checkBlocks() const override;
    void prepare() override;
    void saveMore(StateWriter& out, const std::string& prefix) const override;
    void loadMore(const StateReader& in, const std::string& prefix) override;
    bool freezes() const override { return true; }
    bool rescales() const override { return settings_.rescale; }

private:
    BlockSets sets_;
    RprSettings settings_;
    std::vector<Vector> frozen_;  // Wc = P_C(W) at the last partition, per block
};

/// Incremental ternarization (TTQ by default): at every stage the largest-|W| fraction f of
/// each group is quantized and the quantizer's trainables are re-initialised from the newly
/// quantized entries; quantized entries train through Q.backward, the others as floats.
/// name() "inc".
class Incremental final : public StagedQuantization {
public:
    /// Validates the settings; throws std::invalid_argument if the factory is empty or returns
    /// nullptr.
    Incremental(QuantizerFactory factory, Granularity granularity,
                IncrementalSettings settings = {}, InnerSettings inner = {},
                TrainSettings train = {});
    std::string name() const override { return "inc"; }
    const IncrementalSettings& settings() const { return settings_; }

protected:
    void select(Index k, double f, std::vector<std::uint8_t>& next) override;
    void partitioned(Index k, const std::vector<std::uint8_t>& fresh, bool newStage) override;
    const Vector* quantizedValues(Index k) override;
    bool update(Index k) override;
    bool repartitionEveryEpoch() const override { return false; }
    bool freezes() const override { return false; }

private:
    IncrementalSettings settings_;
};

}  // namespace tern::optim
