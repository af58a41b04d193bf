// Straight-through estimation with a latent float copy (docs/algorithms.md section 2).
#include "tern/optim/ste.hpp"

#include "codes.hpp"
#include "quantizers.hpp"
#include "tern/core/error.hpp"

#include <cmath>
#include <utility>

namespace tern::optim {

namespace {
}  // namespace

void SteSettings::validate() const {
    requireNonNegative(latentClip, "SteSettings::validate()", "latentClip");
    requirePositive(trainableLr, "SteSettings::validate()", "trainableLr");
}

Ste::Ste(QuantizerFactory factory, SteSettings settings, InnerSettings inner,
         TrainSettings train)
    : Optimizer(std::move(train), inner),
      factory_(std::move(factory)),
      settings_(settings),
      qInner_(inner) {
    settings_.validate();
    if (!factory_) fail("Ste::Ste()", "quantizer factory must not be empty");
    const std::unique_ptr<proj::Quantizer> probe = factory_();
    if (!probe) fail("Ste::Ste()", "quantizer factory returned nullptr");
    levels_ = probe->levels();
    freeScale_ = probe->freeScale();
}

std::vector<detail::NamedQuantizer> Ste::quantizers() const {
    std::vector<detail::NamedQuantizer> out;
    for (const BlockState& s : state_) out.push_back({blocks()[size_t(s.slot)]->name, s.q.get()});
    return out;
}

void Ste::quantizeAll() {
    for (BlockState& s : state_) {
        ParameterBlock& b = *blocks()[size_t(s.slot)];
        // value = Q(W)
        if (s.finite) s.q->forward(s.latent, b.value, b.shape);
    }
}

void Ste::doBegin(Objective& /*f*/) {
    state_.clear();
    const auto& bs = blocks();
    for (size_t i = 0; i < bs.size(); ++i) {
        if (!bs[i]->constrained) continue;
        requireFinite(bs[i]->value, "Ste::begin()", bs[i]->name.c_str());
        BlockState s;
        s.slot = static_cast<Index>(i);
        s.latent = bs[i]->value;
        // BinaryConnect: W = clip(W, -c, c)
        if (settings_.latentClip > 0) {
            const auto c = static_cast<Scalar>(settings_.latentClip);
            s.latent = s.latent.cwiseMax(-c).cwiseMin(c);
        }
        s.dLatent = Vector::Zero(s.latent.size());
        s.q = factory_();
        if (!s.q) fail("Ste::begin()", "the quantizer factory returned nullptr");
        state_.push_back(std::move(s));
    }
    quantizeAll();
    for (BlockState& s : state_) s.codes = detail::signCodes(bs[size_t(s.slot)]->value);
    detail::resetTrainables(qInner_, quantizers());
}

double Ste::doStep(Objective& f, Index batch) {
    const auto& bs = blocks();
    // Forward: value = Q(W)
    quantizeAll();
    const double loss = f.evaluateWithGradient(batch, Pass::Commit);
    if (!std::isfinite(loss)) return loss;
    bool finite = true;
    for (BlockState& s : state_) {
        ParameterBlock& b = *bs[size_t(s.slot)];
        // Backward: dW = Q.backward(W, dL/dvalue)
        s.q->backward(s.latent, b.grad, s.dLatent);
        // Latent update: W = W - lr * inner(dW)
        s.finite = innerStep(s.slot, s.latent, s.dLatent, b.decay);
        // BinaryConnect: W = clip(W, -c, c)
        if (settings_.latentClip > 0 && s.finite) {
            const auto c = static_cast<Scalar>(settings_.latentClip);
            s.latent = s.latent.cwiseMax(-c).cwiseMin(c);
        }
        finite = finite && s.finite;
    }
    // Quantizer trainables (TTQ's Wp, Wn): own inner update, no weight decay
    finite = detail::stepTrainables(qInner_, quantizers(), learningRate() * settings_.trainableLr) &&
             finite;
    // Unconstrained blocks: W = W - lr * inner(g)
    for (size_t i = 0; i < bs.size(); ++i) {
        if (bs[i]->constrained) continue;
        finite = innerStep(static_cast<Index>(i), bs[i]->value, bs[i]->grad, bs[i]->decay) && finite;
    }
    return finite ? loss : std::numeric_limits<double>::quiet_NaN();
}

void Ste::doEndEpoch(Objective& /*f*/, Index /*epoch*/, EpochStats& stats) {
    // Flip ratio and sparsity of the sign codes of Q(W)
    quantizeAll();
    detail::CodeStats codes;
    for (BlockState& s : state_) {
        std::vector<std::int64_t> now = detail::signCodes(blocks()[size_t(s.slot)]->value);
        codes.add(now, s.codes);
        s.codes = std::move(now);
    }
    codes.fill(stats);
}

void Ste::doDeploy(Objective& /*f*/) {
    // value = Q(W)
    quantizeAll();
}

void Ste::doRestore(Objective& /*f*/) {
    // value = W (the next step quantizes again)
    for (BlockState& s : state_) blocks()[size_t(s.slot)]->value = s.latent;
}

const Vector& Ste::latent(Index k) const {
    if (k < 0 || k >= constrainedBlocks())
        throw std::out_of_range(TERN_MSG("Ste::latent(): block " << k << " out of range"));
    return state_[size_t(k)].latent;
}

proj::Quantizer& Ste::quantizer(Index k) {
    if (k < 0 || k >= constrainedBlocks())
        throw std::out_of_range(TERN_MSG("Ste::quantizer(): block " << k << " out of range"));
    return *state_[size_t(k)].q;
}

const Vector& Ste::trainingPoint(Index i) const {
    for (const BlockState& s : state_)
        if (s.slot == i) return s.latent;
    return blocks()[size_t(i)]->value;
}

void Ste::setTrainingPoint(Index i, const Vector& w) {
    for (BlockState& s : state_)
        if (s.slot == i) {
            s.latent = w;
            s.finite = s.latent.allFinite();
            return;
        }
    blocks()[size_t(i)]->value = w;
}

void Ste::doSave(StateWriter& out, const std::string& prefix) const {
    out.attr(prefix, "latentClip", settings_.latentClip);
    out.attr(prefix, "trainableLr", settings_.trainableLr);
    for (const BlockState& s : state_)
        out.writeInts(prefix + "/codes/" + blocks()[size_t(s.slot)]->name, s.codes);
    detail::saveQuantizers(out, prefix, quantizers(), qInner_);
}

void Ste::doLoad(const StateReader& in, const std::string& prefix) {
    detail::loadQuantizers(in, prefix, quantizers(), qInner_, "Ste::load()");
    for (BlockState& s : state_) s.codes = in.readInts(prefix + "/codes/" + blocks()[size_t(s.slot)]->name);
    // value holds Q(W) between steps
    quantizeAll();
}

}  // namespace tern::optim
