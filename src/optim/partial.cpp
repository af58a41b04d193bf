// Partial quantization with a rising fraction: RPR (seed 002) and incremental ternarization
// (seed 003), on a shared stage schedule. See include/tern/optim/partial.hpp.
#include "tern/optim/partial.hpp"

#include "latent_blocks.hpp"
#include "tern/core/error.hpp"
#include "tern/core/format.hpp"
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

/// The stage schedule's rules, shared by both settings structs.
void validateSchedule(const std::vector<double>& fractions, Index stageEpochs, const char* w) {
    if (fractions.empty()) fail(w, "fractions must not be empty");
    for (size_t i = 0; i < fractions.size(); ++i) {
        if (!(fractions[i] > 0 && fractions[i] <= 1))
            fail(w, TERN_MSG("fractions must be in (0, 1] (got " << fractions[i] << ")"));
        if (i > 0 && fractions[i] < fractions[i - 1])
            fail(w, "fractions must be non-decreasing (got " + joinFractions(fractions) + ")");
    }
    requirePositive(static_cast<double>(stageEpochs), w, "stageEpochs");
}

}  // namespace

// ------------------------------------------------------------------ settings

void RprSettings::validate() const {
    validateSchedule(fractions, stageEpochs, "RprSettings::validate()");
}

void IncrementalSettings::validate() const {
    validateSchedule(fractions, stageEpochs, "IncrementalSettings::validate()");
    requirePositive(trainableLr, "IncrementalSettings::validate()", "trainableLr");
}

// ------------------------------------------------------------------ StagedQuantization

StagedQuantization::StagedQuantization(BlockQuantizerFactory factory, Granularity granularity,
                                       std::vector<double> fractions, Index stageEpochs,
                                       double trainableLr, InnerSettings inner,
                                       TrainSettings train, const std::string& owner)
    : Optimizer(std::move(train), inner),
      latent_(std::make_unique<detail::LatentBlocks>(std::move(factory), inner, owner)),
      granularity_(granularity),
      fractions_(std::move(fractions)),
      stageEpochs_(stageEpochs),
      trainableLr_(trainableLr),
      owner_(owner) {}

StagedQuantization::~StagedQuantization() = default;

std::string StagedQuantization::describeMethod() const {
    std::vector<std::string> f;
    for (double x : fractions_) f.push_back(formatShortest(x));
    return "quantizer " + latent_->quantizerName() + ", fractions " + joined(f, ",") +
           ", " + std::to_string(stageEpochs_) + " epoch(s) per stage" +
           (rescales() ? ", rescaled start" : "") +
           (latent_->hasTrainables() ? ", trained scales at lr x" + formatShortest(trainableLr_) : "");
}

int StagedQuantization::levels() const { return latent_->levels(); }
DeployedSet StagedQuantization::deployedSet(Index i) const {
    const DeployedSet d = Optimizer::deployedSet(i);  // range check; float for unconstrained
    const detail::LatentBlocks::Block* b = latent_->bySlot(i);
    return b ? detail::LatentBlocks::deployedSet(*b) : d;
}
bool StagedQuantization::freeScale() const { return latent_->freeScale(); }
Index StagedQuantization::constrainedBlocks() const { return latent_->size(); }
const Vector& StagedQuantization::latent(Index k) const { return latent_->at(k, "latent").latent; }
proj::Quantizer& StagedQuantization::quantizer(Index k) { return *latent_->at(k, "quantizer").q; }

const std::vector<std::uint8_t>& StagedQuantization::mask(Index k) const {
    latent_->at(k, "mask");  // range check
    return masks_[size_t(k)];
}

Index StagedQuantization::stageOf(Index epoch) const {
    const Index last = static_cast<Index>(fractions_.size()) - 1;
    return std::min(last, epoch / stageEpochs_);
}

void StagedQuantization::partition(bool newStage) {
    const double f = fraction();
    for (Index k = 0; k < latent_->size(); ++k) {
        const Index n = latent_->all()[size_t(k)].latent.size();
        std::vector<std::uint8_t> next(size_t(n), 0);
        if (f >= 1) std::fill(next.begin(), next.end(), std::uint8_t{1});
        else select(k, f, next);
        std::vector<std::uint8_t>& mask = masks_[size_t(k)];
        std::vector<std::uint8_t> fresh(size_t(n), 0);  // newly quantized entries
        for (size_t i = 0; i < fresh.size(); ++i) fresh[i] = next[i] && (mask.empty() || !mask[i]);
        mask = std::move(next);
        partitioned(k, fresh, newStage);
    }
}

void StagedQuantization::writeTrainingPoint() {
    for (Index k = 0; k < latent_->size(); ++k) {
        auto& b = latent_->all()[size_t(k)];
        const Vector* q = quantizedValues(k);
        if (!q) continue;
        const std::vector<std::uint8_t>& mask = masks_[size_t(k)];
        // value = quantized ? Q(W) : W
        for (Index i = 0; i < b.latent.size(); ++i)
            b.param->value[i] = mask[size_t(i)] ? (*q)[i] : b.latent[i];
    }
}

void StagedQuantization::doBegin(Objective& /*f*/) {
    checkBlocks();
    latent_->begin(blocks());
    masks_.assign(size_t(latent_->size()), {});
    partRng_.seed(trainSettings().seed ^ 0x5250525f50415254ULL);  // "RPR_PART"
    prepare();
    stage_ = 0;
    partition(/*newStage=*/true);
    latent_->resetCodes([](detail::LatentBlocks::Block& b) -> const Vector& {
        b.quantize(b.work);
        return b.work;
    });
    writeTrainingPoint();
    latent_->resetTrainables();
}

double StagedQuantization::doStep(Objective& f, Index batch) {
    writeTrainingPoint();
    const double loss = f.evaluateWithGradient(batch, Pass::Commit);
    if (!std::isfinite(loss)) return loss;
    bool finite = true;
    for (Index k = 0; k < latent_->size(); ++k) finite = update(k) && finite;
    finite = latent_->stepTrainables(learningRate() * trainableLr_) && finite;
    // Unconstrained blocks: W = W - lr * inner(g)
    finite = stepUnconstrained() && finite;
    return finite ? loss : std::numeric_limits<double>::quiet_NaN();
}

void StagedQuantization::doEndEpoch(Objective& /*f*/, Index epoch, EpochStats& stats) {
    // flips and sparsity of the deployed codes Q(W)
    latent_->codeStats(stats, [](detail::LatentBlocks::Block& b) -> const Vector& {
        b.quantize(b.work);
        return b.work;
    });
    stats.freezeFraction = fraction();
    // next epoch: RPR redraws its partition every epoch; incremental moves at stage changes
    const Index next = stageOf(epoch + 1);
    const bool newStage = next != stage_;
    stage_ = next;
    if (newStage || repartitionEveryEpoch()) partition(newStage);
    writeTrainingPoint();
    latent_->scaleStats(stats);
}

void StagedQuantization::doDeploy(Objective& /*f*/) {
    // value = Q(W) for every entry
    for (auto& b : latent_->all())
        if (b.latent.allFinite()) b.quantize(b.param->value);
}

void StagedQuantization::doRestore(Objective& /*f*/) { writeTrainingPoint(); }

const Vector& StagedQuantization::trainingPoint(Index i) const {
    const auto* b = latent_->bySlot(i);
    return b ? b->latent : blocks()[size_t(i)]->value;
}

void StagedQuantization::setTrainingPoint(Index i, const Vector& w) {
    if (auto* b = latent_->bySlot(i)) b->latent = w;
    else blocks()[size_t(i)]->value = w;
}

void StagedQuantization::doSave(StateWriter& out, const std::string& prefix) const {
    out.attr(prefix, "fractions", joinFractions(fractions_));
    out.attr(prefix, "stageEpochs", static_cast<std::int64_t>(stageEpochs_));
    out.attr(prefix, "freeze", static_cast<std::int64_t>(freezes()));
    out.attr(prefix, "rescale", static_cast<std::int64_t>(rescales()));
    out.attr(prefix, "trainableLr", trainableLr_);
    out.attr(prefix, "stage", static_cast<std::int64_t>(stage_));
    out.attr(prefix, "fraction", fraction());
    std::ostringstream rng;
    rng << partRng_;
    out.attr(prefix, "partitionRng", rng.str());
    for (Index k = 0; k < latent_->size(); ++k) {
        const std::vector<std::uint8_t>& mask = masks_[size_t(k)];
        out.writeInts(prefix + "/mask/" + latent_->all()[size_t(k)].param->name,
                      std::vector<std::int64_t>(mask.begin(), mask.end()));
    }
    latent_->save(out, prefix);
    saveMore(out, prefix);
}

void StagedQuantization::doLoad(const StateReader& in, const std::string& prefix) {
    const char* where = "StagedQuantization::load()";
    const std::string theirs = in.attrString(prefix, "fractions");
    if (theirs != joinFractions(fractions_))
        fail(where, "state '" + prefix + "' has fractions " + theirs + ", this optimizer has " +
                        joinFractions(fractions_));
    if (in.attrInt(prefix, "stageEpochs") != stageEpochs_ ||
        in.attrInt(prefix, "freeze") != std::int64_t(freezes()) ||
        in.attrInt(prefix, "rescale") != std::int64_t(rescales()))
        fail(where, "state '" + prefix + "' was written with other stage-epochs/freeze/rescale settings");
    stage_ = in.attrInt(prefix, "stage");
    if (stage_ < 0 || stage_ >= static_cast<Index>(fractions_.size()))
        fail(where, TERN_MSG("state '" << prefix << "' has stage " << stage_ << " out of range"));
    std::istringstream rng(in.attrString(prefix, "partitionRng"));
    rng >> partRng_;
    if (rng.fail()) fail(where, "state '" + prefix + "' has a malformed partitionRng");
    latent_->load(in, prefix);
    for (Index k = 0; k < latent_->size(); ++k) {
        const ParameterBlock& b = *latent_->all()[size_t(k)].param;
        const std::vector<std::int64_t> mask = in.readInts(prefix + "/mask/" + b.name);
        if (static_cast<Index>(mask.size()) != b.value.size())
            fail(where, TERN_MSG("state '" << prefix << "' has a mask of " << mask.size()
                                           << " entries for block '" << b.name << "' of "
                                           << b.value.size()));
        masks_[size_t(k)].assign(mask.begin(), mask.end());
    }
    loadMore(in, prefix);
    writeTrainingPoint();
}

// ------------------------------------------------------------------ Rpr

namespace {
/// The uniform sets of Rpr's single-projection constructor (its null check names Rpr).
BlockSets rprSets(std::shared_ptr<const proj::Projection> projection, Granularity g) {
    if (!projection) fail("Rpr::Rpr()", "projection must not be null");
    return BlockSets(std::move(projection), g);
}
}  // namespace

Rpr::Rpr(std::shared_ptr<const proj::Projection> projection, Granularity granularity,
         RprSettings settings, InnerSettings inner, TrainSettings train)
    : Rpr(rprSets(std::move(projection), granularity), std::move(settings), std::move(inner),
          std::move(train)) {}

Rpr::Rpr(BlockSets sets, RprSettings settings, InnerSettings inner, TrainSettings train)
    : StagedQuantization(
          [sets](const ParameterBlock& b) {
              const BlockSet& set = sets.of(b.name);
              if (set.isFloat())  // Rpr's begin() says which block (BlockSets::check())
                  return std::unique_ptr<proj::Quantizer>();
              return proj::makeSte(set.projection, set.granularity);
          },
          sets.defaultSet().granularity, settings.fractions, settings.stageEpochs, 1.0, inner,
          std::move(train), "Rpr"),
      sets_(std::move(sets)),
      settings_(std::move(settings)) {
    settings_.validate();
}

DeployedSet Rpr::deployedSet(Index i) const {
    DeployedSet d = StagedQuantization::deployedSet(i);
    if (blocks()[size_t(i)]->constrained) d.name = sets_.of(blocks()[size_t(i)]->name).str();
    return d;
}

void Rpr::checkBlocks() const { sets_.check(blocks(), "Rpr::begin()"); }

void Rpr::prepare() {
    frozen_.assign(size_t(latentBlocks().size()), Vector());
    if (!settings_.rescale) return;
    for (auto& b : latentBlocks().all()) {
        const BlockSet& set = sets_.of(b.param->name);
        proj::rescaleToLevels(*set.projection, b.latent, b.param->shape, set.granularity);
    }
}

void Rpr::select(Index /*k*/, double f, std::vector<std::uint8_t>& next) {
    // constrained with probability f, independently per entry
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (auto& m : next) m = u(partitionRng()) < f;
}

void Rpr::partitioned(Index k, const std::vector<std::uint8_t>& /*fresh*/, bool /*newStage*/) {
    // Wc = P_C(W) over the whole group, fixed until the next partition
    auto& b = latentBlocks().all()[size_t(k)];
    frozen_[size_t(k)].resize(b.latent.size());
    b.quantize(frozen_[size_t(k)]);
}

const Vector* Rpr::quantizedValues(Index k) { return &frozen_[size_t(k)]; }

bool Rpr::update(Index k) {
    // only the relaxed entries train; the constrained keep their latent value
    auto& b = latentBlocks().all()[size_t(k)];
    const std::vector<std::uint8_t>& m = mask(k);
    for (Index i = 0; i < b.latent.size(); ++i) {
        b.dLatent[i] = m[size_t(i)] ? Scalar(0) : b.param->grad[i];
        b.work[i] = b.latent[i];
    }
    const bool finite = innerStep(b.slot, b.latent, b.dLatent, b.param->decay);
    for (Index i = 0; i < b.latent.size(); ++i)
        if (m[size_t(i)]) b.latent[i] = b.work[i];
    return finite;
}

void Rpr::saveMore(StateWriter& out, const std::string& prefix) const {
    for (size_t k = 0; k < frozen_.size(); ++k) {
        const ParameterBlock& b = *latentBlocks().all()[k].param;
        out.write(prefix + "/frozen/" + b.name, frozen_[k], b.shape);
    }
}

void Rpr::loadMore(const StateReader& in, const std::string& prefix) {
    for (Index k = 0; k < latentBlocks().size(); ++k) {
        const ParameterBlock& b = *latentBlocks().all()[size_t(k)].param;
        frozen_[size_t(k)] = in.read(prefix + "/frozen/" + b.name, b.shape);
    }
}

// ------------------------------------------------------------------ Incremental

Incremental::Incremental(QuantizerFactory factory, Granularity granularity,
                         IncrementalSettings settings, InnerSettings inner, TrainSettings train)
    : StagedQuantization(factory ? BlockQuantizerFactory([f = std::move(factory)](const ParameterBlock&) {
                                       return f();
                                   })
                                 : BlockQuantizerFactory(),
                         granularity, settings.fractions,
                         settings.stageEpochs, settings.trainableLr, inner, std::move(train),
                         "Incremental"),
      settings_(std::move(settings)) {
    settings_.validate();
}

void Incremental::select(Index k, double f, std::vector<std::uint8_t>& next) {
    // the largest-|W| fraction f of each group (at least one entry)
    auto& b = latentBlocks().all()[size_t(k)];
    const Vector& w = b.latent;
    const Index groups = b.param->shape.groups(granularity());
    const Index m = w.size() / groups;
    std::vector<Scalar> mag(static_cast<size_t>(m));
    for (Index g = 0; g < groups; ++g) {
        for (Index i = 0; i < m; ++i) mag[size_t(i)] = std::abs(w[g * m + i]);
        const Index keep = std::clamp<Index>(static_cast<Index>(std::ceil(f * double(m))), 1, m);
        std::nth_element(mag.begin(), mag.begin() + (keep - 1), mag.end(), std::greater<>());
        const Scalar thr = mag[size_t(keep - 1)];
        Index taken = 0;  // ties at the threshold: keep exactly `keep`
        for (Index i = 0; i < m; ++i)
            if (std::abs(w[g * m + i]) > thr) {
                next[size_t(g * m + i)] = 1;
                ++taken;
            }
        for (Index i = 0; i < m && taken < keep; ++i)
            if (std::abs(w[g * m + i]) == thr) {
                next[size_t(g * m + i)] = 1;
                ++taken;
            }
    }
}

void Incremental::partitioned(Index k, const std::vector<std::uint8_t>& fresh, bool newStage) {
    // re-initialise the quantizer's scales from the newly quantized entries
    auto& b = latentBlocks().all()[size_t(k)];
    if (newStage) b.q->initFrom(b.latent, b.param->shape, fresh);
}

const Vector* Incremental::quantizedValues(Index k) {
    auto& b = latentBlocks().all()[size_t(k)];
    if (!b.latent.allFinite()) return nullptr;
    b.quantize(b.work);
    return &b.work;
}

bool Incremental::update(Index k) {
    // quantized entries through Q.backward (scale grads from them only); float entries: dW = g
    auto& b = latentBlocks().all()[size_t(k)];
    const std::vector<std::uint8_t>& m = mask(k);
    for (Index i = 0; i < b.latent.size(); ++i)
        b.work[i] = m[size_t(i)] ? b.param->grad[i] : Scalar(0);
    b.q->backward(b.latent, b.work, b.dLatent);
    for (Index i = 0; i < b.latent.size(); ++i)
        if (!m[size_t(i)]) b.dLatent[i] = b.param->grad[i];
    return innerStep(b.slot, b.latent, b.dLatent, b.param->decay);
}

}  // namespace tern::optim
