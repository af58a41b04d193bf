#pragma once
/// \file ADMM for min f(W) s.t. W in C (Leng et al., AAAI 2018), scaled form:
///
///   L_rho(W, G, U) = f(W) + I_C(G) + rho/2 ||W - G + U||^2 - rho/2 ||U||^2
///
///   W-step (every minibatch): SGD on f(W) + rho/2 ||W - G + U||^2, with the extragradient
///           predictor/corrector by default
///   G-step (every outer iteration): G = P_C(W + U)
///   U-step:                         U = U + W - G
///
/// docs/algorithms.md section 5, docs/optim.md.
#include "tern/optim/block_sets.hpp"
#include "tern/optim/optimizer.hpp"
#include "tern/proj/projection.hpp"

#include <memory>
#include <string>
#include <vector>

namespace tern::optim {

/// How rho evolves between outer iterations.
enum class RhoSchedule {
    Constant,  ///< rho never changes
    Growth,    ///< rho = min(rho * rhoGrowth, rhoMax) after every outer iteration
    Explicit,  ///< rho = rhoList[k] for outer iteration k (the last entry repeats), <= rhoMax
    /// rho follows the learning rate so that the penalty alone closes a fraction `coupling` of
    /// the gap W - (G - U) per outer iteration of S steps (SGD with momentum mu):
    ///   rho = (1 - mu) / lr * (1 - (1 - coupling)^(1/S))
    /// coupling = min(coupling * couplingGrowth, couplingMax) after every outer iteration;
    /// couplingGrowth 0 (auto): the growth that reaches couplingMax at the last outer iteration
    /// before the last learning-rate drop (or else the final phase), (couplingMax /
    /// coupling)^(1 / (K - 1)) for K outer iterations: the codes search while the steps are
    /// large and settle in the last lr stage.
    Coupling,
};

/// "constant", "growth", "explicit", "coupling" (AdmmSettings::parseSchedule reads them).
std::string rhoScheduleName(RhoSchedule s);

/// Where the W-step evaluates the loss gradient.
enum class LossAt {
    W,           ///< grad f(W): ADMM as written (Leng et al.); the network trains at W
    /// grad f(Z), Z = P_C(W + U) recomputed every step: the forward pass runs at the point the
    /// next G-step would deploy, so the network trains at (a fresh) G. A linearisation of the
    /// W-step: its fixed points are ADMM's (W = G, U = -grad f(G) / rho, G = P_C(G + U)),
    /// since W = G there. One projection per step.
    Projection,
};

/// "w", "projection" (AdmmSettings::parseLossAt reads them).
std::string lossAtName(LossAt l);

/// One outer iteration (G-step and U-step) as it happened: Admm::trace().
struct OuterRecord {
    Index outer = 0;          ///< 1-based number of the outer iteration
    Index epoch = 0;          ///< epoch it ran in (0-based)
    Index step = 0;           ///< optimizer steps taken when it ran (the triggering one included)
    double primalRes = 0;     ///< ||W - G||
    double dualRes = 0;       ///< rho ||G - G_prev||
    double rho = 0;           ///< the penalty used in the steps before it
    double flipRatio = 0;     ///< fraction of G's codes it changed (NaN for unquantized sets)
    double coupling = 0;      ///< Coupling schedule: the fraction in use (NaN otherwise)
};

/// ADMM hyper-parameters (scaled form). Names follow docs/algorithms.md section 5.
struct AdmmSettings {
    double rho = 1e-4;                         ///< initial penalty (> 0)
    double rhoGrowth = 1.1;                    ///< factor per outer iteration (>= 1), Growth only
    double rhoMax = 1e3;                       ///< clamp on rho (>= rho), like OSQP_RHO_MAX
    RhoSchedule rhoSchedule = RhoSchedule::Growth;  ///< constant | growth | explicit | coupling
    std::vector<double> rhoList;               ///< Explicit: rho per outer iteration (each > 0)
    Index outerEvery = 1;                      ///< epochs per outer iteration (G-step, U-step), >= 1
    Index outerEverySteps = 0;                 ///< > 0: an outer iteration every this many steps
                                               ///< instead (small problems); 0 = per epoch
    bool extragradient = true;                 ///< predictor/corrector W-step: two passes per step
    LossAt lossAt = LossAt::W;                 ///< W-step's loss gradient at W or at P_C(W + U)
                                               ///< (Projection excludes the extragradient)
    /// begin(): divide each group of W by proj::bestScale(P, W) first, so that a fixed-scale set
    /// (alpha = 1: {-1, 0, 1}) sees weights at its own scale; without it small initial weights
    /// all round to 0. Harmless in front of batch norm, which undoes any per-channel scale.
    bool rescale = false;
    /// With rescale: multiply the loss gradient of each rescaled group by s^2 (s its divisor)
    /// in the W-step, i.e. a per-group penalty rho / s^2 and step lr s^2 (a diagonal metric).
    /// The rescaled W then moves as much, relative to its size, as the original W would: a
    /// network that is blind to the scale (BN, or the fixed gains without BN) sees a gradient
    /// s times smaller on W / s, so plain SGD on it would learn s^2 times slower, and with
    /// s ~ 1/16..1/32 the codes never cross a threshold.
    bool precondition = true;
    double epsAbs = 0;                         ///< absolute residual tolerance (>= 0); 0 and
    double epsRel = 0;                         ///< epsRel 0 = no convergence test
    Index maxOuter = 0;                        ///< stop after this many outer iterations; 0 = no limit
    double coupling = 0.05;                    ///< Coupling: first fraction, in (0, 1)
    double couplingGrowth = 1.2;               ///< Coupling: factor per outer iteration (>= 1;
                                               ///< 0 = auto: couplingMax by the last lr drop)
    double couplingMax = 0.9;                  ///< Coupling: cap, in [coupling, 1)
    /// Coupling: rho from the current lr (true: the pull per outer iteration survives an lr
    /// drop, and the codes freeze once the loss's steps shrink) or from the schedule's initial
    /// lr (false: an lr drop slows the penalty and the loss alike, so W - (G - U) keeps its
    /// balance and the codes keep moving, more slowly).
    bool couplingFollowsLr = true;
    /// The U-step's size follows the learning rate: U += (lr / lr0) (W - G), lr0 the
    /// schedule's initial rate (a dual step in (0, 1], within the range where ADMM with a
    /// relaxed multiplier step converges on convex problems, (0, (1 + sqrt 5) / 2)). With rho
    /// blind to lr drops (couplingFollowsLr false) the pull on W slows with the lr but a unit
    /// dual step does not: U keeps integrating W - G while W stands still, and G = P(W + U)
    /// churns at a tiny lr. Scaling the dual step slows the whole outer loop with the lr.
    bool dualFollowsLr = false;
    /// The U-step's base size gamma0: U += gamma0 (W - G) (times lr / lr0 with dualFollowsLr),
    /// in [0, (1 + sqrt 5) / 2). Far from C (a small coupling) a unit step makes U integrate
    /// the quantisation residual W - G every outer iteration: G = P(W + U) then dithers
    /// between the two levels around W (a code at 0 with W = 0.3a flips to a after two
    /// G-steps and back), so the network at G is noisy. 0 = no multiplier: the quadratic
    /// penalty method.
    double dualStep = 1.0;
    /// Weight decay on the constrained W too. Off by default: it pulls W toward 0 against the
    /// penalty (with a fixed scale, W settles at rho/(rho+wd) (G - U), which drives codes to 0).
    bool decayConstrained = false;
    /// The last finalEpochs epochs of optimize() (TrainSettings::maxEpochs) run at G with the
    /// codes frozen: value = a q per group, the scales a (free-scale sets only), biases, BN and
    /// float layers train with the forward pass at the deployed point; no G/U steps.
    Index finalEpochs = 0;
    /// Throws std::invalid_argument naming the offending field:
    /// "AdmmSettings::validate(): rho must be > 0 (got -0.001)".
    void validate() const;
    /// "constant", "growth", "explicit", "coupling".
    static RhoSchedule parseSchedule(const std::string& name);
    /// "w", "projection".
    static LossAt parseLossAt(const std::string& name);
};

/// ADMM with a projection G-step. Constrained blocks carry W (= value while training), G and
/// U; unconstrained blocks get plain inner updates.
///
/// W-step for a constrained block, at batch B:
///   g  = grad f_B(W) + rho (W - G + U)                       (pass 1)
///        (LossAt::Projection: grad f_B(Z) with Z = P_C(W + U), the forward pass at Z)
///   extragradient: W' = W - lr g (no momentum), written into value;
///                  g' = grad f_B(W') + rho (W' - G + U)       (pass 2)
///                  W  = W - lr * inner(g')                    (momentum on the corrector)
///   otherwise:     W  = W - lr * inner(g)
/// Pass 1 is Pass::Probe and pass 2 Pass::Commit when extragradient is on (side state such as BN
/// statistics is updated once per step, by the corrector pass); a single pass is Pass::Commit.
/// Unconstrained blocks stay at W during the predictor and take one inner step with the
/// gradient of the committing pass. The reported loss is f_B(W) from pass 1.
///
/// Outer iteration (every outerEvery epochs, or every outerEverySteps steps):
///   G-step: G = P_C(W + U);  U-step: U += gamma (W - G), gamma = dualStep (times lr / lr0
///   with dualFollowsLr)
///   primal r = ||W - G||, dual s = rho ||G - Gprev|| (over all constrained blocks, n entries)
///   converged if r <= sqrt(n) epsAbs + epsRel max(||W||, ||G||) and
///                s <= sqrt(n) epsAbs + epsRel rho ||U||        (OSQP/SCS)
///   rho update, then U *= rhoOld / rhoNew so that the unscaled multiplier rho*U is continuous.
/// begin() sets G = P_C(W), U = 0. deploy(): value = G; restore(): value = W.
/// A non-finite loss, W or residual is Status::Diverged.
class Admm final : public Optimizer {
public:
    /// Validates every settings struct; throws std::invalid_argument on a null projection.
    Admm(std::shared_ptr<const proj::Projection> projection, Granularity granularity,
         AdmmSettings settings = {}, InnerSettings inner = {}, TrainSettings train = {});
    /// Each constrained block on its own set (BlockSets::of(block name)); begin() checks the
    /// sets against the objective's blocks (BlockSets::check()).
    explicit Admm(BlockSets sets, AdmmSettings settings = {}, InnerSettings inner = {},
                  TrainSettings train = {});
    std::string name() const override { return "admm"; }

    const AdmmSettings& settings() const { return settings_; }
    /// The default set's projection and granularity (every block's, without entries).
    const proj::Projection& projection() const { return *sets_.defaultSet().projection; }
    Granularity granularity() const { return sets_.defaultSet().granularity; }
    const BlockSets& sets() const { return sets_; }
    /// The most levels of the sets (one set: its levels()).
    int levels() const override { return sets_.maxLevels(); }
    bool freeScale() const override { return sets_.anyFreeScale(); }
    DeployedSet deployedSet(Index i) const override;
    bool trainsAtDeployedPoint() const override { return false; }  // W, not G
    /// Current penalty.
    double rho() const { return rho_; }
    /// ||W - G|| at the last outer iteration (NaN before the first).
    double primalResidual() const { return primalRes_; }
    /// rho ||G - Gprev|| at the last outer iteration (NaN before the first).
    double dualResidual() const { return dualRes_; }
    /// Outer iterations done since begin().
    Index outerIterations() const { return outer_; }
    /// Fraction of G's codes that changed at the last outer iteration (NaN before the first,
    /// or for a continuous set).
    double flipRatio() const { return flipRatio_; }
    /// Every outer iteration since begin() (or since load(): the trace is not in the state).
    const std::vector<OuterRecord>& trace() const { return trace_; }
    /// Fraction of zeros in G.
    double sparsity() const;
    /// In the final phase (codes frozen, training at G).
    bool finalPhase() const { return final_; }
    /// The Coupling schedule's current fraction (NaN for the other schedules).
    double coupling() const;

    /// G and U of the k-th constrained block (order of ParameterSet::constrained()).
    const Vector& G(Index k) const;
    const Vector& U(Index k) const;
    /// The training point W of the k-th constrained block (value unless deployed).
    const Vector& W(Index k) const;
    /// Number of constrained blocks.
    Index constrainedBlocks() const { return static_cast<Index>(state_.size()); }
    /// Runs one outer iteration (G-step, U-step, residuals, rho update) now. optimize() and
    /// step()/endEpoch() call it on their own schedule.
    void outerIteration();

protected:
    void doBegin(Objective& f) override;
    double doStep(Objective& f, Index batch) override;
    void doEndEpoch(Objective& f, Index epoch, EpochStats& stats) override;
    void doDeploy(Objective& f) override;
    void doRestore(Objective& f) override;
    void doSave(StateWriter& out, const std::string& prefix) const override;
    void doLoad(const StateReader& in, const std::string& prefix) override;
    std::string describeMethod() const override;
    bool budgetExhausted() const override;
    const Vector& trainingPoint(Index i) const override;
    void setTrainingPoint(Index i, const Vector& w) override;

private:
    struct BlockState {
        Index slot = 0;          // index into blocks()
        BlockSet set;            // its projection and granularity
        Vector G, U;
        Vector stash;            // W while deployed
        Vector Wsave;            // W during the extragradient predictor or the pass at Z
        Vector g;                // scratch: augmented gradient
        std::vector<std::int64_t> codes;  // G / scale, for the flip ratio
        Vector q;                // final phase: G = a q per group, q frozen
        Vector a;                // final phase: the scale of each group
        Vector metric;           // per group: the loss gradient's factor (empty: 1)
    };
    /// Steps per outer iteration (Coupling schedule).
    Index stepsPerOuter() const;
    /// rho of the Coupling schedule at learning rate lr.
    double couplingRho(double lr) const;
    /// outerIteration(), recorded in the trace as run after `stepsTaken` steps.
    void outerIterationAt(Index stepsTaken);
    /// s.g = metric * grad f + rho (W - G + U) from the block's current value and gradient.
    void augmentedGradient(BlockState& s, Scalar rho) const;
    /// The lr the Coupling schedule computes rho from (couplingFollowsLr).
    double couplingLr() const;
    /// rho := r, U *= rhoOld / r (the unscaled multiplier rho U is unchanged).
    void setRho(double r);
    /// Freezes the codes of G (q, a per group); training continues at G.
    void enterFinalPhase();
    /// A step of the final phase: scales, biases, BN and float layers at value = a q.
    double finalStep(Objective& f, Index batch);
    /// rho for outer iteration k under the schedule.
    double scheduledRho(Index k, double current) const;
    /// G = P_C(v) for one block; refreshes its codes, returns the number that changed.
    Index projectInto(BlockState& s, const Vector& v);

    BlockSets sets_;
    AdmmSettings settings_;
    std::vector<BlockState> state_;
    double rho_ = 0;
    double primalRes_ = 0, dualRes_ = 0, flipRatio_ = 0;
    Index outer_ = 0;
    Index batches_ = 1;      // the objective's batches per epoch (Coupling: steps per outer)
    double coupling_ = 0;    // Coupling: the current fraction
    double couplingGrowth_ = 1;  // Coupling: the factor in use (auto resolved in begin())
    std::vector<OuterRecord> trace_;
    bool final_ = false;     // final phase
    InnerUpdate scaleInner_; // final phase: the scales' inner update (no decay)
};

}  // namespace tern::optim
