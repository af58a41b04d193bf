// ADMM in scaled form with a projection G-step (docs/algorithms.md section 5).
#include "tern/optim/admm.hpp"

#include "metric.hpp"

#include "tern/core/error.hpp"
#include "tern/core/format.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace tern::optim {

namespace {
/// Beyond this primal residual the run is declared diverged (float range ends at 3e38).
constexpr double kBlowUp = 1e30;

/// Integer code of each entry of z: round(z / scale) per group (0 for a zero scale).
void codesOf(const Vector& z, const std::vector<proj::GroupResult>& groups,
             std::vector<std::int64_t>& codes) {
    codes.resize(static_cast<size_t>(z.size()));
    const Index per = z.size() / static_cast<Index>(groups.size());
    for (Index i = 0; i < z.size(); ++i) {
        const Scalar a = groups[static_cast<size_t>(i / per)].scale;
        codes[static_cast<size_t>(i)] = a > 0 ? std::llround(z[i] / a) : 0;
    }
}
}  // namespace

void AdmmSettings::validate() const {
    const char* where = "AdmmSettings::validate()";
    requirePositive(rho, where, "rho");
    if (!(rhoGrowth >= 1) || !std::isfinite(rhoGrowth))
        fail(where, TERN_MSG("rhoGrowth must be >= 1 (got " << rhoGrowth << ")"));
    if (!(rhoMax >= rho) || !std::isfinite(rhoMax))
        fail(where, TERN_MSG("rhoMax must be >= rho = " << rho << " (got " << rhoMax << ")"));
    if (rhoSchedule == RhoSchedule::Explicit && rhoList.empty())
        fail(where, "rhoList must not be empty with rhoSchedule explicit");
    for (double r : rhoList)
        if (!(r > 0) || !std::isfinite(r))
            fail(where, TERN_MSG("rhoList entries must be > 0 (got " << r << ")"));
    if (outerEvery < 1) fail(where, TERN_MSG("outerEvery must be >= 1 (got " << outerEvery << ")"));
    if (outerEverySteps < 0)
        fail(where, TERN_MSG("outerEverySteps must be >= 0 (got " << outerEverySteps << ")"));
    requireNonNegative(epsAbs, where, "epsAbs");
    requireNonNegative(epsRel, where, "epsRel");
    if (maxOuter < 0) fail(where, TERN_MSG("maxOuter must be >= 0 (got " << maxOuter << ")"));
    if (!(coupling > 0 && coupling < 1))
        fail(where, TERN_MSG("coupling must be in (0, 1) (got " << coupling << ")"));
    if (!(couplingGrowth >= 1 || couplingGrowth == 0) || !std::isfinite(couplingGrowth))
        fail(where, TERN_MSG("couplingGrowth must be >= 1, or 0 for auto (got " << couplingGrowth << ")"));
    if (!(couplingMax >= coupling && couplingMax < 1))
        fail(where, TERN_MSG("couplingMax must be in [coupling, 1) (got " << couplingMax << ")"));
    if (finalEpochs < 0)
        fail(where, TERN_MSG("finalEpochs must be >= 0 (got " << finalEpochs << ")"));
    if (!(dualStep >= 0 && dualStep < 1.618))
        fail(where, TERN_MSG("dualStep must be in [0, 1.618) (got " << dualStep << ")"));
    if (lossAt == LossAt::Projection && extragradient)
        fail(where, "lossAt projection needs the plain W-step (extragradient false): the "
                    "predictor's look-ahead is a step of W, not of P_C(W + U)");
}

LossAt AdmmSettings::parseLossAt(const std::string& name) {
    if (name == "w") return LossAt::W;
    if (name == "projection") return LossAt::Projection;
    fail("AdmmSettings::parseLossAt()", "unknown loss point '" + name + "'; known: w, projection");
}

std::string lossAtName(LossAt l) { return l == LossAt::Projection ? "projection" : "w"; }

RhoSchedule AdmmSettings::parseSchedule(const std::string& name) {
    if (name == "constant") return RhoSchedule::Constant;
    if (name == "growth") return RhoSchedule::Growth;
    if (name == "explicit") return RhoSchedule::Explicit;
    if (name == "coupling") return RhoSchedule::Coupling;
    fail("AdmmSettings::parseSchedule()",
         "unknown rho schedule '" + name + "'; known: constant, growth, explicit, coupling");
}

std::string rhoScheduleName(RhoSchedule s) {
    switch (s) {
        case RhoSchedule::Constant: return "constant";
        case RhoSchedule::Growth: return "growth";
        case RhoSchedule::Explicit: return "explicit";
        case RhoSchedule::Coupling: return "coupling";
    }
    return "?";
}

namespace {
/// The uniform sets of the single-projection constructor (its null check names Admm).
BlockSets uniformSets(std::shared_ptr<const proj::Projection> projection, Granularity g) {
    if (!projection) fail("Admm::Admm()", "projection must not be null");
    return BlockSets(std::move(projection), g);
}
}  // namespace

Admm::Admm(std::shared_ptr<const proj::Projection> projection, Granularity granularity,
           AdmmSettings settings, InnerSettings inner, TrainSettings train)
    : Admm(uniformSets(std::move(projection), granularity), std::move(settings), std::move(inner),
           std::move(train)) {}

Admm::Admm(BlockSets sets, AdmmSettings settings, InnerSettings inner, TrainSettings train)
    : Optimizer(std::move(train), std::move(inner)),
      sets_(std::move(sets)),
      settings_(std::move(settings)),
      scaleInner_(inner_.settings()) {
    settings_.validate();
    rho_ = settings_.rho;
    coupling_ = settings_.coupling;
}

DeployedSet Admm::deployedSet(Index i) const {
    DeployedSet d = Optimizer::deployedSet(i);  // range check; float for unconstrained blocks
    if (!blocks()[size_t(i)]->constrained) return d;
    const BlockSet& set = sets_.of(blocks()[size_t(i)]->name);
    return {set.str(), set.projection->levels(), set.projection->freeScale(), d.bits};
}

Index Admm::stepsPerOuter() const {
    return settings_.outerEverySteps > 0 ? settings_.outerEverySteps
                                         : settings_.outerEvery * batches_;
}

double Admm::couplingRho(double lr) const {
    // The penalty's pull on W - (G - U) per SGD step is lr rho / (1 - mu) at steady momentum;
    // S such steps close 1 - (1 - lr rho / (1 - mu))^S of the gap: solve that for `coupling`.
    const InnerSettings& in = inner_.settings();
    const double mu = in.rule == InnerSettings::Rule::Sgd ? in.sgd.momentum : 0.0;
    const double perStep =
        1.0 - std::pow(1.0 - coupling_, 1.0 / static_cast<double>(std::max<Index>(stepsPerOuter(), 1)));
    return std::min((1.0 - mu) / lr * perStep, settings_.rhoMax);
}

double Admm::couplingLr() const {
    return settings_.couplingFollowsLr ? learningRate() : trainSettings().lr.lr(0);
}

double Admm::coupling() const {
    return settings_.rhoSchedule == RhoSchedule::Coupling ? coupling_
                                                          : std::numeric_limits<double>::quiet_NaN();
}

void Admm::setRho(double r) {
    if (r == rho_) return;
    // U *= rhoOld / rhoNew so that rho U (the unscaled multiplier) is unchanged
    const auto ratio = static_cast<Scalar>(rho_ / r);
    for (BlockState& s : state_) s.U *= ratio;
    rho_ = r;
}

double Admm::scheduledRho(Index k, double current) const {
    switch (settings_.rhoSchedule) {
        case RhoSchedule::Constant:
        case RhoSchedule::Coupling:  // follows the learning rate: couplingRho()
            return current;
        case RhoSchedule::Growth:
            return std::min(current * settings_.rhoGrowth, settings_.rhoMax);
        case RhoSchedule::Explicit: {
            const size_t i = std::min(static_cast<size_t>(k), settings_.rhoList.size() - 1);
            return std::min(settings_.rhoList[i], settings_.rhoMax);
        }
    }
    return current;
}

Index Admm::projectInto(BlockState& s, const Vector& v) {
    const ParameterBlock& b = *blocks()[static_cast<size_t>(s.slot)];
    const std::vector<proj::GroupResult> groups =
        s.set.projection->project(v, s.G, b.shape, s.set.granularity);
    s.a.resize(static_cast<Index>(groups.size()));
    for (size_t j = 0; j < groups.size(); ++j) s.a[static_cast<Index>(j)] = groups[j].scale;
    std::vector<std::int64_t> codes;
    codesOf(s.G, groups, codes);
    Index changed = 0;
    if (s.codes.size() == codes.size())
        for (size_t i = 0; i < codes.size(); ++i) changed += codes[i] != s.codes[i];
    s.codes = std::move(codes);
    return changed;
}

void Admm::doBegin(Objective& f) {
    state_.clear();
    trace_.clear();
    batches_ = f.numBatches();
    final_ = false;
    coupling_ = settings_.coupling;
    const auto& bs = blocks();
    sets_.check(bs, "Admm::begin()");
    for (size_t i = 0; i < bs.size(); ++i) {
        if (!bs[i]->constrained) continue;
        BlockState s;
        s.slot = static_cast<Index>(i);
        s.set = sets_.of(bs[i]->name);
        s.G = Vector::Zero(bs[i]->value.size());
        s.U = Vector::Zero(bs[i]->value.size());
        s.g = Vector::Zero(bs[i]->value.size());
        requireFinite(bs[i]->value, "Admm::begin()", bs[i]->name.c_str());
        s.metric = detail::rescaledStart(*s.set.projection, bs[i]->value, bs[i]->shape,
                                         s.set.granularity, settings_.rescale,
                                         settings_.precondition);
        state_.push_back(std::move(s));
        // G = P_C(W), U = 0
        projectInto(state_.back(), bs[i]->value);
    }
    rho_ = settings_.rhoSchedule == RhoSchedule::Explicit
               ? std::min(settings_.rhoList.front(), settings_.rhoMax)
               : settings_.rho;
    couplingGrowth_ = settings_.couplingGrowth;
    if (couplingGrowth_ == 0) {
        // auto: reach couplingMax at the last of the K outer iterations before the last lr
        // drop (the codes search while the steps are large and settle in the last lr stage),
        // or before the final phase when the lr never drops
        const Index end = std::max<Index>(trainSettings().maxEpochs - settings_.finalEpochs, 0);
        Index epochs = end;
        const LrSchedule& lr = trainSettings().lr;
        for (Index e = 1; e < end; ++e)
            if (lr.lr(e) < lr.lr(e - 1)) epochs = e;
        const Index k = epochs * std::max<Index>(batches_, 1) / std::max<Index>(stepsPerOuter(), 1);
        couplingGrowth_ = k >= 2 ? std::pow(settings_.couplingMax / settings_.coupling,
                                            1.0 / static_cast<double>(k - 1))
                                 : 1.0;
    }
    if (settings_.rhoSchedule == RhoSchedule::Coupling) rho_ = couplingRho(couplingLr());
    primalRes_ = dualRes_ = flipRatio_ = std::numeric_limits<double>::quiet_NaN();
    outer_ = 0;
}

double Admm::doStep(Objective& f, Index batch) {
    const auto& bs = blocks();
    if (!final_ && settings_.finalEpochs > 0 &&
        epoch() >= trainSettings().maxEpochs - settings_.finalEpochs)
        enterFinalPhase();
    if (final_) return finalStep(f, batch);
    // Coupling: rho follows the learning rate (an lr drop raises rho, the pull stays). U stays
    // too: lr/k (grad f + k rho (W - G + U)) = lr (grad (f/k) + rho (W - G + U)) is ADMM on f/k
    // with the same rho, whose scaled dual is U itself; rescaling U would move G = P(W + U).
    if (settings_.rhoSchedule == RhoSchedule::Coupling) rho_ = couplingRho(couplingLr());
    const auto rho = static_cast<Scalar>(rho_);
    const auto lr = static_cast<Scalar>(learningRate());
    const bool eg = settings_.extragradient;

    // LossAt::Projection: the pass runs at Z = P_C(W + U) (the extragradient is off, validated)
    const bool atZ = settings_.lossAt == LossAt::Projection;
    if (atZ)
        for (BlockState& s : state_) {
            ParameterBlock& b = *bs[size_t(s.slot)];
            s.Wsave = b.value;
            s.g = b.value + s.U;  // scratch, overwritten by augmentedGradient
            s.set.projection->project(s.g, b.value, b.shape, s.set.granularity);
        }
    // Pass 1: g = grad f(W) + rho (W - G + U), or grad f(Z) + rho (W - G + U)
    const double loss = f.evaluateWithGradient(batch, eg ? Pass::Probe : Pass::Commit);
    if (atZ)
        for (BlockState& s : state_) bs[size_t(s.slot)]->value = s.Wsave;  // back to W
    if (!std::isfinite(loss)) return loss;
    for (BlockState& s : state_) augmentedGradient(s, rho);
    if (eg) {
        // Predictor: W' = W - lr g (no momentum; weight decay as in the corrector)
        for (BlockState& s : state_) {
            ParameterBlock& b = *bs[size_t(s.slot)];
            s.Wsave = b.value;
            const InnerSettings& in = inner_.settings();
            const double decay = in.rule == InnerSettings::Rule::Sgd ? in.sgd.weightDecay
                                                                     : in.adam.weightDecay;
            const auto wd = static_cast<Scalar>(b.decay && settings_.decayConstrained ? decay : 0.0);
            b.value -= lr * (s.g + wd * s.Wsave);
        }
        // Pass 2 at W': g' = grad f(W') + rho (W' - G + U)
        const double lossPredicted = f.evaluateWithGradient(batch, Pass::Commit);
        for (BlockState& s : state_) {
            augmentedGradient(s, rho);
            bs[size_t(s.slot)]->value = s.Wsave;  // back to W for the corrector
        }
        if (!std::isfinite(lossPredicted)) return lossPredicted;
    }
    // Corrector (or plain W-step): W = W - lr * inner(g)
    bool finite = true;
    for (BlockState& s : state_) {
        ParameterBlock& b = *bs[size_t(s.slot)];
        finite = innerStep(s.slot, b.value, s.g, b.decay && settings_.decayConstrained) && finite;
    }
    // Unconstrained blocks: plain inner step with the committing pass's gradient
    finite = stepUnconstrained() && finite;
    if (!finite) return std::numeric_limits<double>::quiet_NaN();

    if (settings_.outerEverySteps > 0 && (steps() + 1) % settings_.outerEverySteps == 0) {
        outerIterationAt(steps() + 1);  // this step counts (the counter moves after doStep)
        if (diverged()) return std::numeric_limits<double>::quiet_NaN();
    }
    return loss;
}

void Admm::augmentedGradient(BlockState& s, Scalar rho) const {
    // g = M grad f(W) + rho (W - G + U), M = the per-group metric (identity when empty)
    const ParameterBlock& b = *blocks()[size_t(s.slot)];
    s.g = b.grad;
    detail::scaleGroups(s.g, s.metric);
    s.g += rho * (b.value - s.G + s.U);
}

void Admm::outerIteration() { outerIterationAt(steps()); }

void Admm::outerIterationAt(Index stepsTaken) {
    if (!begun()) fail("Admm::outerIteration()", "call begin(f) first");
    const auto& bs = blocks();
    double primal2 = 0, dual2 = 0, normW2 = 0, normG2 = 0, normU2 = 0;
    Index n = 0, flips = 0;
    const auto gamma = static_cast<Scalar>(
        settings_.dualStep * (settings_.dualFollowsLr ? learningRate() / trainSettings().lr.lr(0) : 1.0));
    for (BlockState& s : state_) {
        const Vector& W = deployed() ? s.stash : bs[size_t(s.slot)]->value;
        if (!W.allFinite() || !s.U.allFinite()) {
            setDiverged();
            primalRes_ = dualRes_ = std::numeric_limits<double>::quiet_NaN();
            return;
        }
        const Vector Gprev = s.G;
        // G-step: G = P_C(W + U)
        flips += projectInto(s, W + s.U);
        // U-step: U += gamma (W - G)
        s.U += gamma * (W - s.G);
        primal2 += (W - s.G).cast<double>().squaredNorm();
        dual2 += (s.G - Gprev).cast<double>().squaredNorm();
        normW2 += W.cast<double>().squaredNorm();
        normG2 += s.G.cast<double>().squaredNorm();
        normU2 += s.U.cast<double>().squaredNorm();
        n += W.size();
    }
    // Residuals: r = ||W - G||, s = rho ||G - Gprev||
    primalRes_ = std::sqrt(primal2);
    dualRes_ = rho_ * std::sqrt(dual2);
    flipRatio_ = sets_.maxLevels() > 0 && n > 0
                     ? static_cast<double>(flips) / static_cast<double>(n)
                     : std::numeric_limits<double>::quiet_NaN();
    ++outer_;
    trace_.push_back({outer_, epoch(), stepsTaken, primalRes_, dualRes_, rho_, flipRatio_, coupling()});
    if (!std::isfinite(primalRes_) || !std::isfinite(dualRes_) || primalRes_ > kBlowUp) {
        setDiverged();
        return;
    }
    // Stopping test (OSQP/SCS): r <= sqrt(n) epsAbs + epsRel max(||W||, ||G||),
    //                           s <= sqrt(n) epsAbs + epsRel rho ||U||
    if (settings_.epsAbs > 0 || settings_.epsRel > 0) {
        const double sn = std::sqrt(static_cast<double>(n));
        const double epsPrimal =
            sn * settings_.epsAbs + settings_.epsRel * std::sqrt(std::max(normW2, normG2));
        const double epsDual = sn * settings_.epsAbs + settings_.epsRel * rho_ * std::sqrt(normU2);
        setConverged(primalRes_ <= epsPrimal && dualRes_ <= epsDual);
    }
    // rho update (U rescaled with it)
    if (settings_.rhoSchedule == RhoSchedule::Coupling) {
        coupling_ = std::min(coupling_ * couplingGrowth_, settings_.couplingMax);
        setRho(couplingRho(couplingLr()));
    } else {
        setRho(scheduledRho(outer_, rho_));
    }
}

void Admm::enterFinalPhase() {
    // codes frozen: G = a q per group; W = G from here on
    const auto& bs = blocks();
    std::vector<Index> sizes;
    for (BlockState& s : state_) {
        ParameterBlock& b = *bs[size_t(s.slot)];
        const Index groups = s.a.size();
        const Index per = s.G.size() / groups;
        s.q.resize(s.G.size());
        for (Index j = 0; j < groups; ++j)
            s.q.segment(j * per, per) =
                s.a[j] > 0 ? Vector(s.G.segment(j * per, per) / s.a[j]) : Vector::Zero(per);
        b.value = s.G;
        sizes.push_back(groups);
    }
    scaleInner_.reset(sizes);
    flipRatio_ = 0;
    final_ = true;
}

double Admm::finalStep(Objective& f, Index batch) {
    const auto& bs = blocks();
    const double loss = f.evaluateWithGradient(batch, Pass::Commit);
    if (!std::isfinite(loss)) return loss;
    bool finite = true;
    for (size_t k = 0; k < state_.size(); ++k) {
        BlockState& s = state_[k];
        ParameterBlock& b = *bs[size_t(s.slot)];
        const Index groups = s.a.size();
        const Index per = s.G.size() / groups;
        if (s.set.projection->freeScale()) {
            // dL/da_j = sum_{i in group j} q_i dL/dw_i;  a -= lr inner(dL/da), a >= 0
            Vector da(groups);
            for (Index j = 0; j < groups; ++j)
                da[j] = s.q.segment(j * per, per).dot(b.grad.segment(j * per, per));
            finite = scaleInner_.apply(static_cast<Index>(k), s.a, da, learningRate(), false) &&
                     finite;
            s.a = s.a.cwiseMax(Scalar(0));
        }
        // value = G = a q
        for (Index j = 0; j < groups; ++j) s.G.segment(j * per, per) = s.a[j] * s.q.segment(j * per, per);
        b.value = s.G;
    }
    finite = stepUnconstrained() && finite;
    return finite ? loss : std::numeric_limits<double>::quiet_NaN();
}

void Admm::doEndEpoch(Objective& /*f*/, Index epoch, EpochStats& stats) {
    if (!final_ && settings_.outerEverySteps == 0 && (epoch + 1) % settings_.outerEvery == 0)
        outerIteration();
    stats.primalRes = primalRes_;
    stats.dualRes = dualRes_;
    stats.rho = rho_;
    stats.flipRatio = flipRatio_;
    stats.sparsity = sparsity();
}

std::string Admm::describeMethod() const {
    const AdmmSettings& a = settings_;
    std::string rho;
    switch (a.rhoSchedule) {
        case RhoSchedule::Constant: rho = "rho " + formatShortest(a.rho) + " constant"; break;
        case RhoSchedule::Growth:
            rho = "rho " + formatShortest(a.rho) + " x" + formatShortest(a.rhoGrowth) + " per G/U step <= " +
                  formatShortest(a.rhoMax);
            break;
        case RhoSchedule::Explicit: rho = "rho from a list of " + std::to_string(a.rhoList.size()); break;
        case RhoSchedule::Coupling:
            rho = std::string(a.couplingFollowsLr ? "rho from lr" : "rho from the initial lr") +
                  ": coupling " + formatShortest(a.coupling) +
                  (a.couplingGrowth == 0 ? " to " + formatShortest(a.couplingMax) + " by the last lr drop (x" +
                                               formatShortest(static_cast<float>(couplingGrowth_)) + ")"
                                         : " x" + formatShortest(a.couplingGrowth) + " <= " +
                                               formatShortest(a.couplingMax));
            break;
    }
    const std::string every = a.outerEverySteps > 0 ? std::to_string(a.outerEverySteps) + " steps"
                                                    : std::to_string(a.outerEvery) + " epoch(s)";
    return "projection " + sets_.describe() + ", " + rho +
           ", G/U every " + every + (a.extragradient ? ", extragradient" : "") +
           (a.lossAt == LossAt::Projection ? ", loss at P(W + U)" : "") +
           (a.dualStep != 1 ? ", U-step x" + formatShortest(a.dualStep) : "") +
           (a.dualFollowsLr ? ", U-step x lr/lr0" : "") +
           (a.rescale ? (a.precondition ? ", rescaled start (gradient x 1/s^2)" : ", rescaled start")
                      : "") +
           (a.decayConstrained ? ", weight decay on W" : ", no weight decay on W") +
           (a.finalEpochs > 0 ? ", final " + std::to_string(a.finalEpochs) + " epochs at G" : "");
}

bool Admm::budgetExhausted() const {
    return settings_.maxOuter > 0 && outer_ >= settings_.maxOuter;
}

double Admm::sparsity() const {
    Index zeros = 0, n = 0;
    for (const BlockState& s : state_) {
        zeros += (s.G.array() == 0).count();
        n += s.G.size();
    }
    return n > 0 ? static_cast<double>(zeros) / static_cast<double>(n)
                 : std::numeric_limits<double>::quiet_NaN();
}

void Admm::doDeploy(Objective& /*f*/) {
    // value = G (W kept in the stash)
    for (BlockState& s : state_) {
        ParameterBlock& b = *blocks()[size_t(s.slot)];
        s.stash = b.value;
        b.value = s.G;
    }
}

void Admm::doRestore(Objective& /*f*/) {
    // value = W
    for (BlockState& s : state_) blocks()[size_t(s.slot)]->value = s.stash;
}

const Vector& Admm::G(Index k) const {
    if (k < 0 || k >= constrainedBlocks())
        throw std::out_of_range(TERN_MSG("Admm::G(): block " << k << " out of range"));
    return state_[size_t(k)].G;
}

const Vector& Admm::U(Index k) const {
    if (k < 0 || k >= constrainedBlocks())
        throw std::out_of_range(TERN_MSG("Admm::U(): block " << k << " out of range"));
    return state_[size_t(k)].U;
}

const Vector& Admm::W(Index k) const {
    if (k < 0 || k >= constrainedBlocks())
        throw std::out_of_range(TERN_MSG("Admm::W(): block " << k << " out of range"));
    return trainingPoint(state_[size_t(k)].slot);
}

const Vector& Admm::trainingPoint(Index i) const {
    const ParameterBlock& b = *blocks()[size_t(i)];
    if (deployed() && b.constrained)
        for (const BlockState& s : state_)
            if (s.slot == i) return s.stash;
    return b.value;
}

void Admm::setTrainingPoint(Index i, const Vector& w) { blocks()[size_t(i)]->value = w; }

void Admm::doSave(StateWriter& out, const std::string& prefix) const {
    out.attr(prefix, "projection", projection().name());
    out.attr(prefix, "granularity", granularityName(granularity()));
    out.attr(prefix, "sets", sets_.resolved(blocks()));  // each constrained block's set
    out.attr(prefix, "extragradient", static_cast<std::int64_t>(settings_.extragradient));
    out.attr(prefix, "rescale", static_cast<std::int64_t>(settings_.rescale));
    out.attr(prefix, "lossAt", lossAtName(settings_.lossAt));
    out.attr(prefix, "dualFollowsLr", static_cast<std::int64_t>(settings_.dualFollowsLr));
    out.attr(prefix, "dualStep", settings_.dualStep);
    out.attr(prefix, "rhoSchedule", rhoScheduleName(settings_.rhoSchedule));
    out.attr(prefix, "rhoGrowth", settings_.rhoGrowth);
    out.attr(prefix, "rhoMax", settings_.rhoMax);
    out.attr(prefix, "rho", rho_);
    out.attr(prefix, "outer", static_cast<std::int64_t>(outer_));
    out.attr(prefix, "primalRes", primalRes_);
    out.attr(prefix, "dualRes", dualRes_);
    out.attr(prefix, "flipRatio", flipRatio_);
    out.attr(prefix, "coupling", coupling_);
    out.attr(prefix, "final", static_cast<std::int64_t>(final_));
    std::vector<std::string> names;
    for (const BlockState& s : state_) {
        const ParameterBlock& b = *blocks()[size_t(s.slot)];
        out.write(prefix + "/G/" + b.name, s.G, b.shape);
        out.write(prefix + "/U/" + b.name, s.U, b.shape);
        out.writeInts(prefix + "/codes/" + b.name, s.codes);
        out.write(prefix + "/scale/" + b.name, s.a, Shape{s.a.size()});
        if (final_) out.write(prefix + "/q/" + b.name, s.q, b.shape);
        if (s.metric.size() > 0)
            out.write(prefix + "/metric/" + b.name, s.metric, Shape{s.metric.size()});
        names.push_back(b.name);
    }
    if (final_) scaleInner_.save(out, prefix + "/scaleInner", names);
}

void Admm::doLoad(const StateReader& in, const std::string& prefix) {
    const char* where = "Admm::load()";
    auto check = [&](const std::string& key, const std::string& mine) {
        const std::string theirs = in.attrString(prefix, key);
        if (theirs != mine)
            fail(where, "state '" + prefix + "' has " + key + " '" + theirs +
                            "', this optimizer has '" + mine + "'");
    };
    // every block's set; a state written before per-block sets had one projection for all
    sets_.requireSame(in, prefix, blocks(), where);
    check("rhoSchedule", rhoScheduleName(settings_.rhoSchedule));
    if ((in.attrInt(prefix, "extragradient") != 0) != settings_.extragradient)
        fail(where, "state '" + prefix + "' differs in extragradient");
    // written since the loss point became a setting (older states trained at W)
    const std::string lossAt = in.hasAttr(prefix, "lossAt") ? in.attrString(prefix, "lossAt") : "w";
    if (lossAt != lossAtName(settings_.lossAt))
        fail(where, "state '" + prefix + "' has lossAt '" + lossAt + "', this optimizer has '" +
                        lossAtName(settings_.lossAt) + "'");
    rho_ = in.attrDouble(prefix, "rho");
    outer_ = static_cast<Index>(in.attrInt(prefix, "outer"));
    primalRes_ = in.attrDouble(prefix, "primalRes");
    dualRes_ = in.attrDouble(prefix, "dualRes");
    flipRatio_ = in.attrDouble(prefix, "flipRatio");
    // written since the coupling schedule and the final phase (older states have neither)
    coupling_ = in.hasAttr(prefix, "coupling") ? in.attrDouble(prefix, "coupling") : settings_.coupling;
    final_ = in.hasAttr(prefix, "final") && in.attrInt(prefix, "final") != 0;
    std::vector<std::string> names;
    std::vector<Index> sizes;
    for (BlockState& s : state_) {
        const ParameterBlock& b = *blocks()[size_t(s.slot)];
        s.G = in.read(prefix + "/G/" + b.name, b.shape);
        s.U = in.read(prefix + "/U/" + b.name, b.shape);
        s.codes = in.readInts(prefix + "/codes/" + b.name);
        if (static_cast<Index>(s.codes.size()) != b.value.size())
            fail(where, "state '" + prefix + "/codes/" + b.name + "' has the wrong size");
        if (in.has(prefix + "/scale/" + b.name))
            s.a = in.read(prefix + "/scale/" + b.name, Shape{s.a.size()});
        if (final_) s.q = in.read(prefix + "/q/" + b.name, b.shape);
        // the metric of the run that wrote the state (begin() computed it from this run's start)
        if (in.has(prefix + "/metric/" + b.name))
            s.metric = in.read(prefix + "/metric/" + b.name, Shape{s.a.size()});
        else
            s.metric.resize(0);
        names.push_back(b.name);
        sizes.push_back(s.a.size());
    }
    if (final_) {
        scaleInner_.reset(sizes);
        scaleInner_.load(in, prefix + "/scaleInner", names);
    }
}

}  // namespace tern::optim
