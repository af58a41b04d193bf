#pragma once
/// \file The optimizer interface shared by every method (template method: one loop), its
/// settings, progress and result structs, and ScopedDeploy.
#include "tern/core/parameter.hpp"
#include "tern/core/state.hpp"
#include "tern/optim/objective.hpp"
#include "tern/optim/sgd_update.hpp"

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace tern::optim {

class Callback;

/// Loop settings common to every method.
struct TrainSettings {
    Index maxEpochs = 30;    ///< epochs optimize() runs (>= 0)
    std::uint64_t seed = 1;  ///< seeds the optimizer's std::mt19937_64 (shuffling) in begin()
    bool shuffle = true;     ///< call Objective::shuffle(rng) before every epoch
    LrSchedule lr;           ///< learning rate per epoch (optimize() sets it each epoch)
    /// Throws std::invalid_argument naming the offending field.
    void validate() const;
};

/// How a run ended.
enum class Status {
    Running,    ///< not finished (only seen inside callbacks)
    MaxEpochs,  ///< ran TrainSettings::maxEpochs epochs (or the method's own iteration budget)
    Converged,  ///< the method's stopping test passed (ADMM residual tolerances)
    Diverged,   ///< a non-finite loss, iterate or residual; a result, never an exception
    Stopped,    ///< a callback asked to stop
};
/// "running", "max-epochs", "converged", "diverged", "stopped".
std::string statusName(Status s);

/// Progress after one epoch. Fields a method does not have are NaN.
struct EpochStats {
    Index epoch = 0;   ///< 0-based index of the epoch just finished
    double loss = std::numeric_limits<double>::quiet_NaN();  ///< mean step loss of the epoch
    double lr = std::numeric_limits<double>::quiet_NaN();    ///< learning rate used
    double seconds = 0;                                       ///< wall time of the epoch
    double primalRes = std::numeric_limits<double>::quiet_NaN();  ///< ADMM ||W - G||
    double dualRes = std::numeric_limits<double>::quiet_NaN();    ///< ADMM rho*||G - Gprev||
    double rho = std::numeric_limits<double>::quiet_NaN();        ///< ADMM penalty (after update)
    double flipRatio = std::numeric_limits<double>::quiet_NaN();  ///< fraction of codes changed
    double sparsity = std::numeric_limits<double>::quiet_NaN();   ///< fraction of zero codes
    double freezeFraction = std::numeric_limits<double>::quiet_NaN();  ///< RPR/inc quantized fraction
    double scalePos = std::numeric_limits<double>::quiet_NaN();  ///< mean trained Wp (TTQ, inc)
    double scaleNeg = std::numeric_limits<double>::quiet_NaN();  ///< mean trained Wn (TTQ, inc)
    /// Mean bits per weight over the quantized layers, at the epoch's end (GTC: 1 +
    /// ceil(log2(M - m + 1)) per layer)
    double bits = std::numeric_limits<double>::quiet_NaN();
};

/// The result of optimize().
struct TrainReport {
    Status status = Status::Running;
    Index epochs = 0;      ///< epochs completed in this call
    Index steps = 0;       ///< minibatch steps taken in this call
    double finalLoss = std::numeric_limits<double>::quiet_NaN();  ///< last epoch's mean loss
    std::vector<EpochStats> history;
};

/// The level set one block deploys onto (Optimizer::deployedSet()): what summary.json and the
/// run's checks record per layer.
struct DeployedSet {
    /// The projection spec with its granularity ("ternary:exact/tensor"), the quantizer's name
    /// ("ttq", "gtc,eps=..."), or "float" for a block the method leaves float.
    std::string name = "float";
    int levels = 0;          ///< values per group (as Optimizer::levels()); 0 = float
    bool freeScale = false;  ///< a free scale per group
    /// Bits per weight where the quantizer counts them itself (GTC's learned 1 + ceil(log2(M -
    /// m + 1)) at its last forward()); NaN otherwise (the caller counts them from levels).
    double bits = std::numeric_limits<double>::quiet_NaN();
};

/// Base of every method. optimize() is the whole loop; begin/step/endEpoch/deploy/restore are
/// the same steps for callers who drive their own loop (a network trainer):
///
///     opt.begin(f);
///     for (Index e = 0; e < epochs; ++e) {
///         opt.setLearningRate(mySchedule(e));
///         f.shuffle(opt.rng());
///         for (Index b = 0; b < f.numBatches(); ++b)
///             if (!std::isfinite(opt.step(f, b))) { /* diverged */ }
///         EpochStats s = opt.endEpoch(f, e);
///         { ScopedDeploy d(opt, f); /* evaluate the deployable point */ }
///     }
///     opt.deploy(f);
///
/// Blocks are addressed by their index in f.parameters().all(); constrained blocks get the
/// method, the others the plain inner update (SGD/Adam). The optimizer owns the shuffling RNG
/// (rng(), seeded from TrainSettings::seed by begin(), saved by save()).
class Optimizer {
public:
    /// Validates both settings structs.
    Optimizer(TrainSettings train, InnerSettings inner);
    virtual ~Optimizer();
    Optimizer(const Optimizer&) = delete;
    Optimizer& operator=(const Optimizer&) = delete;

    /// Method name ("admm", "pgd", "ste", "sgd"); stored by save() and checked by load().
    virtual std::string name() const = 0;
    /// Values per group of the set the deployed constrained blocks lie on (the projection's or
    /// quantizer's levels(): 2 binary, 3 ternary, 2N+1 pow2); 0 = not quantized (float).
    virtual int levels() const { return 0; }
    /// The forward passes of training evaluate the deployed point (STE: Q(W); PGD: W on C;
    /// float), so side state gathered there (BN statistics) describes it. False where training
    /// runs elsewhere (ADMM at W, RPR/incremental at a mixed point): re-estimate such state at
    /// the deployed point before evaluating it.
    virtual bool trainsAtDeployedPoint() const { return true; }
    /// The effective settings in one line, for the start of a run: "admm (projection
    /// ternary:exact per tensor, rho growth 0.0001 x1.1 <= 1000, ...); sgd (momentum 0.9, weight
    /// decay 0.0005); lr step:0.05:4:0.1; 30 epochs, seed 1".
    std::string describe() const;
    /// The deployed values carry a free per-group scale (solved or trained); false for a fixed
    /// scale (binary sign, ",scale=one") and for float.
    virtual bool freeScale() const { return false; }
    /// The set block i (of the objective's parameters().all(), after begin()) deploys onto:
    /// its own where the method takes a set per block (optim::BlockSets, per-block quantizers).
    /// Default: "float" for an unconstrained block or a float method, else the method's name,
    /// levels() and freeScale().
    virtual DeployedSet deployedSet(Index i) const;

    /// Runs epochs [epoch(), maxEpochs): shuffle, lr schedule, steps, endEpoch, callbacks,
    /// stopping tests. Calls begin(f) first unless begin(f) or load() was called since the
    /// last optimize() (so begin + load + optimize resumes a saved run; a run saved mid-epoch
    /// continues that epoch at the next batch, without reshuffling). A non-finite loss or
    /// iterate ends the run with Status::Diverged. On return the constrained blocks' values are
    /// the deployable point (on C); the training point stays inside (restore() brings it back).
    TrainReport optimize(Objective& f, const std::vector<std::shared_ptr<Callback>>& callbacks = {});

    /// Sizes the per-block state for f's blocks, seeds rng() and resets every counter.
    /// Throws std::invalid_argument if a block's value/grad size differs from its shape.
    void begin(Objective& f);
    /// One minibatch update at the current learning rate; returns the batch loss at the
    /// training point. Returns NaN (and diverged() becomes true) when the loss or the updated
    /// iterate is not finite (ProjectedSgd then keeps its last point on C; ADMM's G and STE's
    /// last Q(W) stay finite, so deploy() still gives a point on C). Throws
    /// std::invalid_argument if begin(f) was not called or the batch is out of range.
    /// Restores the training point first if deploy() was called.
    double step(Objective& f, Index batch);
    /// Closes an epoch: method bookkeeping (ADMM G/U-steps and rho), statistics, counters.
    EpochStats endEpoch(Objective& f, Index epoch);
    /// value := deployable point (ADMM's G, STE's Q(W)) for constrained blocks. Idempotent.
    void deploy(Objective& f);
    /// value := training point (ADMM's W, STE's latent). Idempotent.
    void restore(Objective& f);
    /// True between deploy() and restore().
    bool deployed() const { return deployed_; }

    /// Writes everything needed for an exact resume under `prefix`: method name and settings,
    /// counters, lr, the RNG, every block's training point, inner-update state, method state.
    void save(StateWriter& out, const std::string& prefix = "optim") const;
    /// Reads what save() wrote into an optimizer on which begin(f) was called with the same
    /// blocks. Writes the training point into the blocks' values. Throws std::invalid_argument
    /// on a different method or method settings, a shape mismatch, or if begin() was not called.
    void load(const StateReader& in, const std::string& prefix = "optim");

    /// The current learning rate (step() uses it). optimize() sets it from the schedule.
    double learningRate() const { return lr_; }
    /// Sets the learning rate for the next steps (> 0, finite).
    void setLearningRate(double lr);
    /// The shuffling RNG (seeded by begin(); part of save()/load()).
    std::mt19937_64& rng() { return rng_; }
    const TrainSettings& trainSettings() const { return train_; }
    /// Changes the loop settings (e.g. more epochs for a resumed run). Validates.
    void setTrainSettings(const TrainSettings& s);
    const InnerUpdate& innerUpdate() const { return inner_; }
    /// Epochs completed since begin() (the next epoch optimize() runs).
    Index epoch() const { return epoch_; }
    /// Steps taken since begin().
    Index steps() const { return steps_; }
    /// Steps taken in the current epoch (the next batch of a run saved mid-epoch).
    Index stepsInEpoch() const { return epochSteps_; }
    /// The method's stopping test passed at the last endEpoch().
    bool converged() const { return converged_; }
    /// A non-finite loss/iterate or a residual blow-up was seen.
    bool diverged() const { return diverged_; }
    /// begin() was called.
    bool begun() const { return begun_; }

protected:
    /// Method state for f's blocks (base state is already reset).
    virtual void doBegin(Objective& f) = 0;
    /// One update; returns the loss (NaN signals divergence).
    virtual double doStep(Objective& f, Index batch) = 0;
    /// Method bookkeeping at the end of an epoch; fills the method's fields of `stats`.
    virtual void doEndEpoch(Objective& /*f*/, Index /*epoch*/, EpochStats& /*stats*/) {}
    virtual void doDeploy(Objective& /*f*/) {}
    virtual void doRestore(Objective& /*f*/) {}
    /// Method settings as attributes of `prefix`, and method state below it.
    virtual void doSave(StateWriter& /*out*/, const std::string& /*prefix*/) const {}
    /// Reads doSave()'s output; checks the method settings that must match.
    virtual void doLoad(const StateReader& /*in*/, const std::string& /*prefix*/) {}
    /// The method's settings for describe() ("" when it has none).
    virtual std::string describeMethod() const { return ""; }
    /// The method's own iteration budget ran out (ADMM maxOuter); ends optimize() with MaxEpochs.
    virtual bool budgetExhausted() const { return false; }

    /// The blocks of the objective passed to begin(), in order (slot i = block i).
    const std::vector<ParameterBlock*>& blocks() const { return blocks_; }
    /// w -= lr * inner(g) for block i's slot; returns whether the new w is finite.
    bool innerStep(Index slot, VecRef w, CVecRef g, bool decay) {
        return inner_.apply(slot, w, g, lr_, decay);
    }
    /// w -= lr * inner(g) for every unconstrained block (biases, BN); returns whether all stay
    /// finite.
    bool stepUnconstrained() {
        bool finite = true;
        for (size_t i = 0; i < blocks_.size(); ++i)
            if (!blocks_[i]->constrained)
                finite = innerStep(static_cast<Index>(i), blocks_[i]->value, blocks_[i]->grad,
                                   blocks_[i]->decay) &&
                         finite;
        return finite;
    }
    /// Marks the run as diverged.
    void setDiverged() { diverged_ = true; }
    void setConverged(bool c) { converged_ = c; }
    /// The training point of block i as the method keeps it (for save()); default: value.
    virtual const Vector& trainingPoint(Index i) const { return blocks_[i]->value; }
    /// The training point of block i for load(); default: writes value.
    virtual void setTrainingPoint(Index i, const Vector& w) { blocks_[i]->value = w; }

    InnerUpdate inner_;

private:
    TrainSettings train_;
    std::vector<ParameterBlock*> blocks_;
    Objective* objective_ = nullptr;
    std::mt19937_64 rng_;
    double lr_ = 0.01;
    Index epoch_ = 0;
    Index steps_ = 0;
    double epochLoss_ = 0;   // sum of step losses in the current epoch
    Index epochSteps_ = 0;   // steps in the current epoch
    std::chrono::steady_clock::time_point epochStart_;
    bool begun_ = false;
    bool primed_ = false;    // begin()/load() called since the last optimize()
    bool deployed_ = false;
    bool converged_ = false;
    bool diverged_ = false;
};

/// RAII: deploy() in the constructor, restore() in the destructor (evaluating the deployable
/// point mid-run). Does nothing in the destructor if the optimizer was already deployed before.
class ScopedDeploy {
public:
    ScopedDeploy(Optimizer& opt, Objective& f);
    ~ScopedDeploy();
    ScopedDeploy(const ScopedDeploy&) = delete;
    ScopedDeploy& operator=(const ScopedDeploy&) = delete;

private:
    Optimizer& opt_;
    Objective& f_;
    bool wasDeployed_;
};

/// Plain SGD/Adam on every block, constrained or not (the float baseline). deploy() is a no-op.
class Sgd final : public Optimizer {
public:
    explicit Sgd(InnerSettings inner = {}, TrainSettings train = {});
    std::string name() const override { return "sgd"; }

protected:
    void doBegin(Objective& f) override;
    double doStep(Objective& f, Index batch) override;
};

/// True if every entry is finite.
bool allFinite(CVecRef v);

}  // namespace tern::optim
