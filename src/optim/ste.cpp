// Straight-through estimation with a latent float copy (docs/algorithms.md section 2).
#include "tern/optim/ste.hpp"

#include "latent_blocks.hpp"
#include "tern/core/error.hpp"
#include "tern/core/format.hpp"
#include "tern/optim/distill.hpp"
#include "tern/proj/quantizer.hpp"

#include <cmath>
#include <utility>

namespace tern::optim {

void SteSettings::validate() const {
    requireNonNegative(latentClip, "SteSettings::validate()", "latentClip");
    requireNonNegative(trainableLr, "SteSettings::validate()", "trainableLr");
    requireNonNegative(bitPenalty, "SteSettings::validate()", "bitPenalty");
    if (bitPenaltyEvery < 0)
        fail("SteSettings::validate()", TERN_MSG("bitPenaltyEvery must be >= 0 (got " << bitPenaltyEvery << ")"));
    if (!(bitPenaltyDecay > 0 && bitPenaltyDecay <= 1))
        fail("SteSettings::validate()",
             TERN_MSG("bitPenaltyDecay must be in (0, 1] (got " << bitPenaltyDecay << ")"));
    requireNonNegative(distillWeight, "SteSettings::validate()", "distillWeight");
    requirePositive(distillTemperature, "SteSettings::validate()", "distillTemperature");
    if (!jointTeacher && distillWeight > 0)
        fail("SteSettings::validate()",
             TERN_MSG("distillWeight " << distillWeight << " needs jointTeacher (a teacher to distil from)"));
}

double SteSettings::bitPenaltyAt(Index steps) const {
    if (bitPenaltyEvery <= 0 || bitPenalty == 0) return bitPenalty;
    return bitPenalty * std::pow(bitPenaltyDecay, static_cast<double>(steps / bitPenaltyEvery));
}

Ste::Ste(QuantizerFactory factory, SteSettings settings, InnerSettings inner,
         TrainSettings train)
    : Ste(factory ? BlockQuantizerFactory([f = std::move(factory)](const ParameterBlock&) { return f(); })
                  : BlockQuantizerFactory(),
          settings, std::move(inner), std::move(train)) {}

Ste::Ste(BlockSets sets, SteSettings settings, InnerSettings inner, TrainSettings train)
    : Ste(BlockQuantizerFactory([sets](const ParameterBlock& b) {
              const BlockSet& set = sets.of(b.name);
              if (set.isFloat())  // Ste::begin() says which block (BlockSets::check())
                  return std::unique_ptr<proj::Quantizer>();
              return proj::makeSte(set.projection, set.granularity);
          }),
          settings, std::move(inner), std::move(train)) {
    sets_ = std::move(sets);
}

Ste::Ste(BlockQuantizerFactory factory, SteSettings settings, InnerSettings inner,
         TrainSettings train)
    : Optimizer(std::move(train), inner), settings_(settings) {
    settings_.validate();
    latent_ = std::make_unique<detail::LatentBlocks>(std::move(factory), inner, "Ste");
    if (settings_.bitPenalty > 0 && !latent_->hasPenalty())
        fail("Ste::Ste()", TERN_MSG("bitPenalty > 0 needs a quantizer with a bit penalty (gtc); '"
                                    << latent_->quantizerName() << "' has none (got "
                                    << settings_.bitPenalty << ")"));
}

DeployedSet Ste::deployedSet(Index i) const {
    DeployedSet d = Optimizer::deployedSet(i);  // range check; float for unconstrained blocks
    const detail::LatentBlocks::Block* b = latent_->bySlot(i);
    if (!b) return d;
    d = detail::LatentBlocks::deployedSet(*b);
    if (sets_) d.name = sets_->of(b->param->name).str();
    return d;
}

Ste::~Ste() = default;

int Ste::levels() const { return latent_->levels(); }
bool Ste::freeScale() const { return latent_->freeScale(); }
Index Ste::constrainedBlocks() const { return latent_->size(); }
const std::string& Ste::blockName(Index k) const { return latent_->at(k, "blockName").param->name; }
const Vector& Ste::latent(Index k) const { return latent_->at(k, "latent").latent; }
proj::Quantizer& Ste::quantizer(Index k) { return *latent_->at(k, "quantizer").q; }

std::string Ste::describeMethod() const {
    std::string s = "quantizer " + latent_->quantizerName();
    if (settings_.latentClip > 0) s += ", latent clipped to " + formatShortest(settings_.latentClip);
    if (latent_->hasTrainables())
        s += std::string(", trained ") +
             (latent_->trainablesNonNegative() ? "scales" : "parameters") + " at lr x" +
             formatShortest(settings_.trainableLr);
    if (settings_.bitPenalty > 0) {
        s += ", bit penalty " + formatShortest(settings_.bitPenalty);
        if (settings_.bitPenaltyEvery > 0)
            s += " x" + formatShortest(settings_.bitPenaltyDecay) + " every " +
                 std::to_string(settings_.bitPenaltyEvery) + " steps";
    }
    if (settings_.jointTeacher)
        s += ", joint float teacher (distillation weight " + formatShortest(settings_.distillWeight) +
             (settings_.distillTemperature != 1
                  ? ", temperature " + formatShortest(settings_.distillTemperature)
                  : std::string()) +
             ")";
    return s;
}

void Ste::clip(Vector& w) const {
    if (settings_.latentClip <= 0) return;
    const auto c = static_cast<Scalar>(settings_.latentClip);
    w = w.cwiseMax(-c).cwiseMin(c);
}

void Ste::quantizeAll() {
    // value = Q(W)
    for (auto& b : latent_->all())
        if (b.finite) b.quantize(b.param->value);
}

void Ste::doBegin(Objective& /*f*/) {
    if (sets_) sets_->check(blocks(), "Ste::begin()");
    latent_->begin(blocks());
    for (auto& b : latent_->all()) clip(b.latent);  // BinaryConnect: W = clip(W, -c, c)
    quantizeAll();
    latent_->resetCodes([](detail::LatentBlocks::Block& b) -> const Vector& { return b.param->value; });
    latent_->resetTrainables();
}

double Ste::studentGradient(Objective& f, Index batch) {
    // Forward: value = Q(W)
    quantizeAll();
    const double loss = f.evaluateWithGradient(batch, Pass::Commit);
    if (!std::isfinite(loss)) return loss;
    // Backward: dW = Q.backward(W, dL/dvalue)
    for (auto& b : latent_->all()) b.q->backward(b.latent, b.param->grad, b.dLatent);
    return loss;
}

double Ste::jointGradient(Objective& f, Index batch) {
    auto* lf = dynamic_cast<LogitObjective*>(&f);
    if (!lf)
        fail("Ste::step()", "jointTeacher needs an objective with logits (optim::LogitObjective, "
                            "e.g. nn::Network)");
    const Index n = lf->logitRows(), k = lf->logitColumns();
    const auto size = static_cast<size_t>(n * k);
    // Teacher at W, slot 0 (Probe: the student's pass gathers BN statistics and metrics)
    for (auto& b : latent_->all()) b.param->value = b.latent;
    const float* t = lf->forwardLogits(batch, Pass::Probe, 0);
    teacherLogits_.assign(t, t + size);
    // Student at Q(W), slot 1
    quantizeAll();
    const float* s = lf->forwardLogits(batch, Pass::Commit, 1);
    // L(teacher) + lambda1 * D(teacher, student) and their logit gradients
    dTeacher_.assign(size, 0.0f);
    dStudent_.assign(size, 0.0f);
    const double lambda1 = settings_.distillWeight;
    double loss = lf->logitLoss(0, dTeacher_.data());
    loss += lambda1 * softCrossEntropy(teacherLogits_.data(), s, n, k, settings_.distillTemperature,
                                       lambda1, dStudent_.data(), dTeacher_.data());
    if (!std::isfinite(loss)) return loss;
    // Student backward at Q(W): dW = Q.backward(W, dD/dvalue); keep the other blocks' grads
    lf->backwardFromLogits(1, dStudent_.data());
    for (auto& b : latent_->all()) b.q->backward(b.latent, b.param->grad, b.dLatent);
    const auto& all = blocks();
    studentGrad_.resize(all.size());
    for (size_t i = 0; i < all.size(); ++i)
        if (!all[i]->constrained) studentGrad_[i] = all[i]->grad;
    // Teacher backward at W: dW += dL/dW + lambda1 dD/dt dt/dW
    for (auto& b : latent_->all()) b.param->value = b.latent;
    lf->backwardFromLogits(0, dTeacher_.data());
    for (auto& b : latent_->all()) b.dLatent += b.param->grad;
    for (size_t i = 0; i < all.size(); ++i)
        if (!all[i]->constrained) all[i]->grad += studentGrad_[i];
    return loss;
}

double Ste::doStep(Objective& f, Index batch) {
    double loss = settings_.jointTeacher ? jointGradient(f, batch) : studentGradient(f, batch);
    if (!std::isfinite(loss)) return loss;
    // Bit penalty (GTC's lambda2 * B): the loss is f_B + lambda * sum_blocks Q.penalty()
    const double lambda = settings_.bitPenaltyAt(steps());
    if (lambda > 0) loss += lambda * latent_->penalty();
    bool finite = true;
    for (auto& b : latent_->all()) {
        // dW += lambda * dpenalty/dW (and lambda * dpenalty/dtheta into the trainables' grads)
        if (lambda > 0) b.q->addPenaltyGradient(lambda, b.dLatent);
        // Latent update: W = W - lr * inner(dW)
        b.finite = innerStep(b.slot, b.latent, b.dLatent, b.param->decay);
        // BinaryConnect: W = clip(W, -c, c)
        if (b.finite) clip(b.latent);
        finite = finite && b.finite;
    }
    // Quantizer trainables (TTQ's Wp, Wn, GTC's theta): own inner update, no weight decay
    finite = latent_->stepTrainables(learningRate() * settings_.trainableLr) && finite;
    // Unconstrained blocks: W = W - lr * inner(g)
    finite = stepUnconstrained() && finite;
    return finite ? loss : std::numeric_limits<double>::quiet_NaN();
}

void Ste::doEndEpoch(Objective& /*f*/, Index /*epoch*/, EpochStats& stats) {
    // Flip ratio and sparsity of the sign codes of Q(W); TTQ's mean scales; GTC's mean bits
    quantizeAll();
    latent_->codeStats(stats, [](detail::LatentBlocks::Block& b) -> const Vector& { return b.param->value; });
    latent_->scaleStats(stats);
    latent_->bitStats(stats);
}

void Ste::doDeploy(Objective& /*f*/) {
    // value = Q(W)
    quantizeAll();
}

void Ste::doRestore(Objective& /*f*/) {
    // value = W (the next step quantizes again)
    for (auto& b : latent_->all()) b.param->value = b.latent;
}

const Vector& Ste::trainingPoint(Index i) const {
    const auto* b = latent_->bySlot(i);
    return b ? b->latent : blocks()[size_t(i)]->value;
}

void Ste::setTrainingPoint(Index i, const Vector& w) {
    if (auto* b = latent_->bySlot(i)) {
        b->latent = w;
        b->finite = b->latent.allFinite();
        return;
    }
    blocks()[size_t(i)]->value = w;
}

void Ste::doSave(StateWriter& out, const std::string& prefix) const {
    out.attr(prefix, "latentClip", settings_.latentClip);
    out.attr(prefix, "trainableLr", settings_.trainableLr);
    out.attr(prefix, "bitPenalty", settings_.bitPenalty);
    out.attr(prefix, "bitPenaltyEvery", static_cast<std::int64_t>(settings_.bitPenaltyEvery));
    out.attr(prefix, "bitPenaltyDecay", settings_.bitPenaltyDecay);
    out.attr(prefix, "jointTeacher", static_cast<std::int64_t>(settings_.jointTeacher));
    out.attr(prefix, "distillWeight", settings_.distillWeight);
    out.attr(prefix, "distillTemperature", settings_.distillTemperature);
    latent_->save(out, prefix);
}

void Ste::doLoad(const StateReader& in, const std::string& prefix) {
    latent_->load(in, prefix);
    // value holds Q(W) between steps
    quantizeAll();
}

}  // namespace tern::optim
