#pragma once
/// \file Projected SGD (docs/algorithms.md section 3): W = P_C(W - lr * inner(grad f(W))).
#include "tern/optim/block_sets.hpp"
#include "tern/optim/optimizer.hpp"
#include "tern/proj/projection.hpp"

#include <memory>

namespace tern::optim {

/// Options of projected SGD.
struct PgdSettings {
    /// begin(): divide each group of W by proj::bestScale(P, W) before the first projection, so
    /// that a fixed-scale set (alpha = 1: {-1, 0, 1}) sees weights at its own scale; without it
    /// small initial weights all project to 0 and the network starts (and stays) dead. Harmless
    /// in front of batch norm, which undoes any per-channel scale.
    bool rescale = false;
    /// With rescale: the loss gradient of each rescaled group is multiplied by s^2 (s its
    /// divisor), so that the step is the same relative to the weights as before the rescale
    /// (see AdmmSettings::precondition).
    bool precondition = true;
};

/// Projected (stochastic) gradient descent. Constrained blocks are projected after every inner
/// update (per tensor or per filter); begin() projects the starting point, so the iterate is
/// always on C and deploy()/restore() have nothing to swap. Often poor for discrete sets (small
/// steps round back to the same point): the baseline of the ablation table.
class ProjectedSgd final : public Optimizer {
public:
    /// Validates the settings; throws std::invalid_argument on a null projection.
    ProjectedSgd(std::shared_ptr<const proj::Projection> projection, Granularity granularity,
                 InnerSettings inner = {}, TrainSettings train = {}, PgdSettings pgd = {});
    /// Each constrained block on its own set (BlockSets::of(block name)), checked by begin().
    explicit ProjectedSgd(BlockSets sets, InnerSettings inner = {}, TrainSettings train = {},
                          PgdSettings pgd = {});
    std::string name() const override { return "pgd"; }
    /// The default set's projection and granularity (every block's, without entries).
    const proj::Projection& projection() const { return *sets_.defaultSet().projection; }
    const BlockSets& sets() const { return sets_; }
    std::string describeMethod() const override {
        return "projection " + sets_.describe() +
               (settings_.rescale ? (settings_.precondition ? ", rescaled start (gradient x 1/s^2)"
                                                             : ", rescaled start")
                                  : "");
    }
    int levels() const override { return sets_.maxLevels(); }
    bool freeScale() const override { return sets_.anyFreeScale(); }
    DeployedSet deployedSet(Index i) const override;
    Granularity granularity() const { return sets_.defaultSet().granularity; }
    const PgdSettings& settings() const { return settings_; }

protected:
    void doBegin(Objective& f) override;
    double doStep(Objective& f, Index batch) override;
    void doEndEpoch(Objective& f, Index epoch, EpochStats& stats) override;
    void doSave(StateWriter& out, const std::string& prefix) const override;
    void doLoad(const StateReader& in, const std::string& prefix) override;

private:
    BlockSets sets_;
    PgdSettings settings_;
    Vector candidate_;                            // W - lr * inner(g), before projection
    Vector scaled_;                               // scratch: the preconditioned gradient
    std::vector<Vector> metrics_;                 // per constrained block: per-group factor
    std::vector<std::vector<std::int64_t>> epochCodes_;  // codes at the start of the epoch
};

}  // namespace tern::optim
