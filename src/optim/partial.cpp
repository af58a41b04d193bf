// Partial quantization with a rising fraction: RPR (seed 002) and incremental ternarization
// (seed 003). See include/tern/optim/partial.hpp.
#include "tern/optim/partial.hpp"

#include "codes.hpp"
#include "quantizers.hpp"
#include "tern/core/error.hpp"
#include "tern/proj/quantizer.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <utility>

namespace tern::optim {

namespace {

std::string joinFractions(const std::vector<double>& f) {
    std::ostringstream o;
    o.precision(17);
    for (size_t i = 0; i < f.size(); ++i) o << (i ? "," : "") << f[i];
    return o.str();
}
}  // namespace

// ------------------------------------------------------------------ settings

void PartialSettings::validate() const {
    const char* w = "PartialSettings::validate()";
    if (fractions.empty()) fail(w, "fractions must not be empty");
    for (size_t i = 0; i < fractions.size(); ++i) {
        if (!(fractions[i] > 0 && fractions[i] <= 1))
            fail(w, TERN_MSG("fractions must be in (0, 1] (got " << fractions[i] << ")"));
        if (i > 0 && fractions[i] < fractions[i - 1])
            fail(w, "fractions must be non-decreasing (got " + joinFractions(fractions) + ")");
    }
    requirePositive(static_cast<double>(stageEpochs), w, "stageEpochs");
    requirePositive(trainableLr, w, "trainableLr");
}

PartialSettings PartialSettings::rpr() { return PartialSettings{}; }

PartialSettings PartialSettings::incremental() {
    PartialSettings s;
    s.selection = Selection::Magnitude;
    s.fractions = {0.5, 0.75, 1.0};
    s.stageEpochs = 5;
    s.freeze = false;
    return s;
}

// ------------------------------------------------------------------ optimizer

PartialQuantization::PartialQuantization(QuantizerFactory factory, Granularity granularity,
                                         PartialSettings settings, InnerSettings inner,
                                         TrainSettings train)
    : Optimizer(std::move(train), inner),
      factory_(std::move(factory)),
      granularity_(granularity),
      settings_(std::move(settings)),
      qInner_(inner) {
    settings_.validate();
    if (!factory_) fail("PartialQuantization::PartialQuantization()", "quantizer factory must not be empty");
    const std::unique_ptr<proj::Quantizer> probe = factory_();
    if (!probe) fail("PartialQuantization::PartialQuantization()", "quantizer factory returned nullptr");
    levels_ = probe->levels();
    freeScale_ = probe->freeScale();
}

std::string PartialQuantization::name() const {
    return settings_.selection == PartialSettings::Selection::Random ? "rpr" : "inc";
}

double PartialQuantization::fraction() const { return settings_.fractions[size_t(stage_)]; }

Index PartialQuantization::stageOf(Index epoch) const {
    const Index last = static_cast<Index>(settings_.fractions.size()) - 1;
    return std::min(last, epoch / settings_.stageEpochs);
}

const std::vector<std::uint8_t>& PartialQuantization::mask(Index k) const {
    if (k < 0 || k >= constrainedBlocks())
        throw std::out_of_range(TERN_MSG("PartialQuantization::mask(): block " << k << " out of range"));
    return state_[size_t(k)].mask;
}

const Vector& PartialQuantization::latent(Index k) const {
    if (k < 0 || k >= constrainedBlocks())
        throw std::out_of_range(TERN_MSG("PartialQuantization::latent(): block " << k << " out of range"));
    return state_[size_t(k)].latent;
}

proj::Quantizer& PartialQuantization::quantizer(Index k) {
    if (k < 0 || k >= constrainedBlocks())
        throw std::out_of_range(TERN_MSG("PartialQuantization::quantizer(): block " << k << " out of range"));
    return *state_[size_t(k)].q;
}

std::vector<detail::NamedQuantizer> PartialQuantization::quantizers() const {
    std::vector<detail::NamedQuantizer> out;
    for (const BlockState& s : state_) out.push_back({blocks()[size_t(s.slot)]->name, s.q.get()});
    return out;
}

void PartialQuantization::partition(bool newStage) {
    const double f = fraction();
    const auto& bs = blocks();
    for (BlockState& s : state_) {
        const ParameterBlock& b = *bs[size_t(s.slot)];
        const Index n = s.latent.size();
        const Index groups = b.shape.groups(granularity_);
        const Index m = n / groups;
        std::vector<std::uint8_t> next(size_t(n), 0);
        if (f >= 1) {
            std::fill(next.begin(), next.end(), std::uint8_t{1});
        } else if (settings_.selection == PartialSettings::Selection::Random) {
            // constrained with probability f, independently per entry
            std::uniform_real_distribution<double> u(0.0, 1.0);
            for (Index i = 0; i < n; ++i) next[size_t(i)] = u(partRng_) < f;
        } else {
            // the largest-|W| fraction f of each group (at least one entry)
            std::vector<Scalar> mag(static_cast<size_t>(m));
            for (Index g = 0; g < groups; ++g) {
                for (Index i = 0; i < m; ++i) mag[size_t(i)] = std::abs(s.latent[g * m + i]);
                const Index k = std::clamp<Index>(static_cast<Index>(std::ceil(f * double(m))), 1, m);
                std::nth_element(mag.begin(), mag.begin() + (k - 1), mag.end(), std::greater<>());
                const Scalar thr = mag[size_t(k - 1)];
                Index taken = 0;  // ties at the threshold: keep exactly k
                for (Index i = 0; i < m; ++i)
                    if (std::abs(s.latent[g * m + i]) > thr) {
                        next[size_t(g * m + i)] = 1;
                        ++taken;
                    }
                for (Index i = 0; i < m && taken < k; ++i)
                    if (std::abs(s.latent[g * m + i]) == thr) {
                        next[size_t(g * m + i)] = 1;
                        ++taken;
                    }
            }
        }
        if (newStage && !settings_.freeze) {
            // re-initialise the quantizer's scales from the newly quantized entries
            std::vector<std::uint8_t> fresh(size_t(n), 0);
            for (size_t i = 0; i < fresh.size(); ++i)
                fresh[i] = next[i] && (s.mask.empty() || !s.mask[i]);
            s.q->initFrom(s.latent, b.shape, fresh);
        }
        s.mask = std::move(next);
        if (settings_.freeze) {
            // Wc = P_C(W) over the whole group, fixed until the next partition
            s.frozen.resize(n);
            s.q->forward(s.latent, s.frozen, b.shape);
        }
    }
}

void PartialQuantization::writeTrainingPoint() {
    const auto& bs = blocks();
    for (BlockState& s : state_) {
        ParameterBlock& b = *bs[size_t(s.slot)];
        const Vector* q = &s.frozen;
        if (!settings_.freeze) {
            if (!s.latent.allFinite()) continue;
            s.q->forward(s.latent, s.work, b.shape);
            q = &s.work;
        }
        // value = quantized ? Q(W) : W
        for (Index i = 0; i < s.latent.size(); ++i)
            b.value[i] = s.mask[size_t(i)] ? (*q)[i] : s.latent[i];
    }
}

void PartialQuantization::doBegin(Objective& /*f*/) {
    state_.clear();
    const auto& bs = blocks();
    partRng_.seed(trainSettings().seed ^ 0x5250525f50415254ULL);  // "RPR_PART"
    for (size_t i = 0; i < bs.size(); ++i) {
        if (!bs[i]->constrained) continue;
        requireFinite(bs[i]->value, "PartialQuantization::begin()", bs[i]->name.c_str());
        BlockState s;
        s.slot = static_cast<Index>(i);
        s.latent = bs[i]->value;
        s.work.resize(s.latent.size());
        s.dLatent = Vector::Zero(s.latent.size());
        s.q = factory_();
        if (!s.q) fail("PartialQuantization::begin()", "the quantizer factory returned nullptr");
        if (settings_.rescale) {
            auto* ste = dynamic_cast<proj::SteQuantizer*>(s.q.get());
            if (!ste)
                fail("PartialQuantization::begin()",
                     "rescale needs an STE quantizer over a projection (got '" + s.q->name() + "')");
            proj::rescaleToLevels(ste->projection(), s.latent, bs[i]->shape, granularity_);
        }
        state_.push_back(std::move(s));
    }
    stage_ = 0;
    partition(/*newStage=*/true);
    for (BlockState& s : state_) {
        ParameterBlock& b = *bs[size_t(s.slot)];
        s.q->forward(s.latent, s.work, b.shape);
        s.codes = detail::signCodes(s.work);
    }
    writeTrainingPoint();
    detail::resetTrainables(qInner_, quantizers());
}

double PartialQuantization::doStep(Objective& f, Index batch) {
    const auto& bs = blocks();
    writeTrainingPoint();
    const double loss = f.evaluateWithGradient(batch, Pass::Commit);
    if (!std::isfinite(loss)) return loss;
    bool finite = true;
    for (BlockState& s : state_) {
        ParameterBlock& b = *bs[size_t(s.slot)];
        const Index n = s.latent.size();
        if (settings_.freeze) {
            // RPR: only the relaxed entries train; the constrained keep their latent value
            for (Index i = 0; i < n; ++i) {
                s.dLatent[i] = s.mask[size_t(i)] ? Scalar(0) : b.grad[i];
                s.work[i] = s.latent[i];
            }
            finite = innerStep(s.slot, s.latent, s.dLatent, b.decay) && finite;
            for (Index i = 0; i < n; ++i)
                if (s.mask[size_t(i)]) s.latent[i] = s.work[i];
        } else {
            // incremental: quantized entries through Q.backward (scale grads from them only)
            for (Index i = 0; i < n; ++i) s.work[i] = s.mask[size_t(i)] ? b.grad[i] : Scalar(0);
            s.q->backward(s.latent, s.work, s.dLatent);
            for (Index i = 0; i < n; ++i)
                if (!s.mask[size_t(i)]) s.dLatent[i] = b.grad[i];
            finite = innerStep(s.slot, s.latent, s.dLatent, b.decay) && finite;
        }
    }
    finite = detail::stepTrainables(qInner_, quantizers(), learningRate() * settings_.trainableLr) &&
             finite;
    for (size_t i = 0; i < bs.size(); ++i) {
        if (bs[i]->constrained) continue;
        finite = innerStep(static_cast<Index>(i), bs[i]->value, bs[i]->grad, bs[i]->decay) && finite;
    }
    return finite ? loss : std::numeric_limits<double>::quiet_NaN();
}

void PartialQuantization::doEndEpoch(Objective& /*f*/, Index epoch, EpochStats& stats) {
    const auto& bs = blocks();
    // flips and sparsity of the deployed codes Q(W)
    detail::CodeStats codes;
    for (BlockState& s : state_) {
        s.q->forward(s.latent, s.work, bs[size_t(s.slot)]->shape);
        std::vector<std::int64_t> now = detail::signCodes(s.work);
        codes.add(now, s.codes);
        s.codes = std::move(now);
    }
    codes.fill(stats);
    stats.freezeFraction = fraction();
    // next epoch: RPR redraws its partition every epoch; incremental moves at stage changes
    const Index next = stageOf(epoch + 1);
    const bool newStage = next != stage_;
    stage_ = next;
    if (newStage || settings_.selection == PartialSettings::Selection::Random) partition(newStage);
    writeTrainingPoint();
}

void PartialQuantization::doDeploy(Objective& /*f*/) {
    // value = Q(W) for every entry
    const auto& bs = blocks();
    for (BlockState& s : state_)
        if (s.latent.allFinite()) s.q->forward(s.latent, bs[size_t(s.slot)]->value, bs[size_t(s.slot)]->shape);
}

void PartialQuantization::doRestore(Objective& /*f*/) { writeTrainingPoint(); }

const Vector& PartialQuantization::trainingPoint(Index i) const {
    for (const BlockState& s : state_)
        if (s.slot == i) return s.latent;
    return blocks()[size_t(i)]->value;
}

void PartialQuantization::setTrainingPoint(Index i, const Vector& w) {
    for (BlockState& s : state_)
        if (s.slot == i) {
            s.latent = w;
            return;
        }
    blocks()[size_t(i)]->value = w;
}

void PartialQuantization::doSave(StateWriter& out, const std::string& prefix) const {
    out.attr(prefix, "fractions", joinFractions(settings_.fractions));
    out.attr(prefix, "stageEpochs", static_cast<std::int64_t>(settings_.stageEpochs));
    out.attr(prefix, "freeze", static_cast<std::int64_t>(settings_.freeze));
    out.attr(prefix, "rescale", static_cast<std::int64_t>(settings_.rescale));
    out.attr(prefix, "trainableLr", settings_.trainableLr);
    out.attr(prefix, "stage", static_cast<std::int64_t>(stage_));
    out.attr(prefix, "fraction", fraction());
    std::ostringstream rng;
    rng << partRng_;
    out.attr(prefix, "partitionRng", rng.str());
    for (const BlockState& s : state_) {
        const ParameterBlock& b = *blocks()[size_t(s.slot)];
        out.writeInts(prefix + "/codes/" + b.name, s.codes);
        out.writeInts(prefix + "/mask/" + b.name, std::vector<std::int64_t>(s.mask.begin(), s.mask.end()));
        if (settings_.freeze) out.write(prefix + "/frozen/" + b.name, s.frozen, b.shape);
    }
    detail::saveQuantizers(out, prefix, quantizers(), qInner_);
}

void PartialQuantization::doLoad(const StateReader& in, const std::string& prefix) {
    const char* where = "PartialQuantization::load()";
    const auto expect = [&](const char* key, const std::string& mine) {
        const std::string theirs = in.attrString(prefix, key);
        if (theirs != mine)
            fail(where, "state '" + prefix + "' has " + key + " " + theirs + ", this optimizer has " + mine);
    };
    expect("fractions", joinFractions(settings_.fractions));
    if (in.attrInt(prefix, "stageEpochs") != settings_.stageEpochs ||
        in.attrInt(prefix, "freeze") != std::int64_t(settings_.freeze) ||
        in.attrInt(prefix, "rescale") != std::int64_t(settings_.rescale))
        fail(where, "state '" + prefix + "' was written with other stage-epochs/freeze/rescale settings");
    stage_ = in.attrInt(prefix, "stage");
    if (stage_ < 0 || stage_ >= static_cast<Index>(settings_.fractions.size()))
        fail(where, TERN_MSG("state '" << prefix << "' has stage " << stage_ << " out of range"));
    std::istringstream rng(in.attrString(prefix, "partitionRng"));
    rng >> partRng_;
    if (rng.fail()) fail(where, "state '" + prefix + "' has a malformed partitionRng");
    detail::loadQuantizers(in, prefix, quantizers(), qInner_, where);
    for (BlockState& s : state_) {
        const ParameterBlock& b = *blocks()[size_t(s.slot)];
        s.codes = in.readInts(prefix + "/codes/" + b.name);
        const std::vector<std::int64_t> mask = in.readInts(prefix + "/mask/" + b.name);
        if (static_cast<Index>(mask.size()) != b.value.size())
            fail(where, TERN_MSG("state '" << prefix << "' has a mask of " << mask.size()
                                           << " entries for block '" << b.name << "' of "
                                           << b.value.size()));
        s.mask.assign(mask.begin(), mask.end());
        if (settings_.freeze) s.frozen = in.read(prefix + "/frozen/" + b.name, b.shape);
    }
    writeTrainingPoint();
}

}  // namespace tern::optim
