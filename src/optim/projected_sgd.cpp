// Projected SGD (docs/algorithms.md section 3).
#include "tern/optim/projected_sgd.hpp"

#include "codes.hpp"
#include "metric.hpp"
#include "tern/core/error.hpp"

#include <cmath>

namespace tern::optim {

namespace {
/// Fraction of changed codes and of zeros over the constrained blocks.
void codeStats(const std::vector<ParameterBlock*>& blocks,
               const std::vector<std::vector<std::int64_t>>& before, EpochStats& stats) {
    static const std::vector<std::int64_t> kNone;
    detail::CodeStats codes;
    size_t k = 0;
    for (const ParameterBlock* b : blocks) {
        if (!b->constrained) continue;
        codes.add(detail::signCodes(b->value), k < before.size() ? before[k] : kNone);
        ++k;
    }
    codes.fill(stats);
}


/// The uniform sets of the single-projection constructor (its null check names ProjectedSgd).
BlockSets uniformSets(std::shared_ptr<const proj::Projection> projection, Granularity g) {
    if (!projection) fail("ProjectedSgd::ProjectedSgd()", "projection must not be null");
    return BlockSets(std::move(projection), g);
}
}  // namespace

ProjectedSgd::ProjectedSgd(std::shared_ptr<const proj::Projection> projection,
                           Granularity granularity, InnerSettings inner, TrainSettings train,
                           PgdSettings pgd)
    : ProjectedSgd(uniformSets(std::move(projection), granularity), std::move(inner),
                   std::move(train), pgd) {}

ProjectedSgd::ProjectedSgd(BlockSets sets, InnerSettings inner, TrainSettings train, PgdSettings pgd)
    : Optimizer(std::move(train), std::move(inner)), sets_(std::move(sets)), settings_(pgd) {}

DeployedSet ProjectedSgd::deployedSet(Index i) const {
    DeployedSet d = Optimizer::deployedSet(i);  // range check; float for unconstrained blocks
    if (!blocks()[size_t(i)]->constrained) return d;
    const BlockSet& set = sets_.of(blocks()[size_t(i)]->name);
    return {set.str(), set.projection->levels(), set.projection->freeScale(), d.bits};
}

void ProjectedSgd::doBegin(Objective& /*f*/) {
    epochCodes_.clear();
    metrics_.clear();
    sets_.check(blocks(), "ProjectedSgd::begin()");
    for (ParameterBlock* b : blocks()) {
        if (!b->constrained) continue;
        requireFinite(b->value, "ProjectedSgd::begin()", b->name.c_str());
        const BlockSet& set = sets_.of(b->name);
        metrics_.push_back(detail::rescaledStart(*set.projection, b->value, b->shape,
                                                 set.granularity, settings_.rescale,
                                                 settings_.precondition));
        // Start on C: W = P_C(W)
        set.projection->project(b->value, b->value, b->shape, set.granularity);
        epochCodes_.push_back(detail::signCodes(b->value));
    }
}

double ProjectedSgd::doStep(Objective& f, Index batch) {
    const double loss = f.evaluateWithGradient(batch, Pass::Commit);
    if (!std::isfinite(loss)) return loss;
    const auto& bs = blocks();
    bool finite = true;
    size_t k = 0;  // index of the constrained block
    for (size_t i = 0; i < bs.size(); ++i) {
        ParameterBlock& b = *bs[i];
        if (!b.constrained) {
            // Unconstrained: W = W - lr * inner(g)
            finite = innerStep(static_cast<Index>(i), b.value, b.grad, b.decay) && finite;
            continue;
        }
        // Gradient step: V = W - lr * inner(M g), M the per-group metric (identity when empty)
        candidate_ = b.value;
        const Vector& metric = metrics_[static_cast<size_t>(k++)];
        const Vector* g = &b.grad;
        if (metric.size() > 0) {
            scaled_ = b.grad;
            detail::scaleGroups(scaled_, metric);
            g = &scaled_;
        }
        if (!innerStep(static_cast<Index>(i), candidate_, *g, b.decay)) {
            finite = false;  // keep the last point on C
            continue;
        }
        // Projection: W = P_C(V)
        const BlockSet& set = sets_.of(b.name);
        set.projection->project(candidate_, b.value, b.shape, set.granularity);
    }
    return finite ? loss : std::numeric_limits<double>::quiet_NaN();
}

void ProjectedSgd::doEndEpoch(Objective& /*f*/, Index /*epoch*/, EpochStats& stats) {
    codeStats(blocks(), epochCodes_, stats);
    epochCodes_.clear();
    for (const ParameterBlock* b : blocks())
        if (b->constrained) epochCodes_.push_back(detail::signCodes(b->value));
}

void ProjectedSgd::doSave(StateWriter& out, const std::string& prefix) const {
    out.attr(prefix, "projection", projection().name());
    out.attr(prefix, "granularity", granularityName(granularity()));
    out.attr(prefix, "sets", sets_.resolved(blocks()));  // each constrained block's set
    out.attr(prefix, "rescale", static_cast<std::int64_t>(settings_.rescale));
    size_t k = 0;
    for (const ParameterBlock* b : blocks()) {
        if (!b->constrained) continue;
        out.writeInts(prefix + "/codes/" + b->name, epochCodes_[k]);
        if (metrics_[k].size() > 0)
            out.write(prefix + "/metric/" + b->name, metrics_[k], Shape{metrics_[k].size()});
        ++k;
    }
}

void ProjectedSgd::doLoad(const StateReader& in, const std::string& prefix) {
    // every block's set; a state written before per-block sets had one projection for all
    sets_.requireSame(in, prefix, blocks(), "ProjectedSgd::load()");
    // codes at the start of the epoch (a mid-epoch save keeps the flip ratio exact)
    epochCodes_.clear();
    size_t k = 0;
    for (const ParameterBlock* b : blocks()) {
        if (!b->constrained) continue;
        epochCodes_.push_back(in.readInts(prefix + "/codes/" + b->name));
        // the metric of the run that wrote the state (begin() computed it from this run's start)
        const std::string key = prefix + "/metric/" + b->name;
        if (k < metrics_.size())
            metrics_[k] = in.has(key) ? in.read(key, Shape{b->shape.groups(sets_.of(b->name).granularity)}) : Vector();
        ++k;
    }
}

}  // namespace tern::optim
