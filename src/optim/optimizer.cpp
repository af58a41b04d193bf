// The shared optimization loop (template method), ScopedDeploy and plain SGD.
#include "tern/optim/optimizer.hpp"

#include "tern/core/error.hpp"
#include "tern/core/format.hpp"
#include "tern/optim/callbacks.hpp"

#include <cassert>
#include <cmath>
#include <sstream>

namespace tern::optim {

void TrainSettings::validate() const {
    const char* where = "TrainSettings::validate()";
    if (maxEpochs < 0) fail(where, TERN_MSG("maxEpochs must be >= 0 (got " << maxEpochs << ")"));
    lr.validate();
}

std::string statusName(Status s) {
    switch (s) {
        case Status::Running: return "running";
        case Status::MaxEpochs: return "max-epochs";
        case Status::Converged: return "converged";
        case Status::Diverged: return "diverged";
        case Status::Stopped: return "stopped";
    }
    return "unknown";
}

bool allFinite(CVecRef v) { return v.allFinite(); }

// ---------------------------------------------------------------- Optimizer

Optimizer::Optimizer(TrainSettings train, InnerSettings inner)
    : inner_(std::move(inner)), train_(std::move(train)) {
    train_.validate();
    lr_ = train_.lr.lr(0);
}

Optimizer::~Optimizer() = default;

std::string Optimizer::describe() const {
    const std::string method = describeMethod();
    std::string s = name() + (method.empty() ? "" : " (" + method + ")") + "; " + inner_.settings().name();
    const InnerSettings& in = inner_.settings();
    if (in.rule == InnerSettings::Rule::Sgd)
        s += " (momentum " + formatShortest(in.sgd.momentum) + ", weight decay " +
             formatShortest(in.sgd.weightDecay) + (in.sgd.nesterov ? ", nesterov" : "") + ")";
    else
        s += " (beta1 " + formatShortest(in.adam.beta1) + ", beta2 " + formatShortest(in.adam.beta2) +
             ", weight decay " + formatShortest(in.adam.weightDecay) + ")";
    return s + "; lr " + train_.lr.str() + "; " + std::to_string(train_.maxEpochs) + " epochs, seed " +
           std::to_string(train_.seed);
}

void Optimizer::setLearningRate(double lr) {
    requirePositive(lr, "Optimizer::setLearningRate()", "lr");
    lr_ = lr;
}

void Optimizer::setTrainSettings(const TrainSettings& s) {
    s.validate();
    train_ = s;
}

DeployedSet Optimizer::deployedSet(Index i) const {
    if (i < 0 || i >= static_cast<Index>(blocks_.size()))
        throw std::out_of_range(TERN_MSG("Optimizer::deployedSet(): block " << i << " out of range"));
    DeployedSet d;
    if (!blocks_[size_t(i)]->constrained || levels() == 0) return d;
    d.name = name();
    d.levels = levels();
    d.freeScale = freeScale();
    return d;
}

void Optimizer::begin(Objective& f) {
    ParameterSet& params = f.parameters();
    blocks_ = params.all();
    std::vector<Index> sizes;
    for (ParameterBlock* b : blocks_) {
        if (b->value.size() != b->shape.size() || b->grad.size() != b->shape.size())
            fail("Optimizer::begin()", TERN_MSG("block '" << b->name << "' has shape "
                                                << b->shape.str() << " but value/grad sizes "
                                                << b->value.size() << "/" << b->grad.size()));
        sizes.push_back(b->value.size());
    }
    inner_.reset(sizes);
    objective_ = &f;
    rng_.seed(train_.seed);
    lr_ = train_.lr.lr(0);
    epoch_ = 0;
    steps_ = 0;
    epochLoss_ = 0;
    epochSteps_ = 0;
    epochStart_ = std::chrono::steady_clock::now();
    deployed_ = false;
    converged_ = false;
    diverged_ = false;
    begun_ = true;
    primed_ = true;
    doBegin(f);
}

double Optimizer::step(Objective& f, Index batch) {
    if (!begun_ || objective_ != &f)
        fail("Optimizer::step()", "call begin(f) with this objective first");
    if (batch < 0 || batch >= f.numBatches())
        fail("Optimizer::step()", TERN_MSG("batch must be in [0, " << f.numBatches() << ") (got "
                                                                    << batch << ")"));
    if (deployed_) restore(f);
    const double loss = doStep(f, batch);
    ++steps_;
    if (!std::isfinite(loss)) {
        diverged_ = true;
        return std::numeric_limits<double>::quiet_NaN();
    }
    epochLoss_ += loss;
    ++epochSteps_;
    return loss;
}

EpochStats Optimizer::endEpoch(Objective& f, Index epoch) {
    if (!begun_ || objective_ != &f)
        fail("Optimizer::endEpoch()", "call begin(f) with this objective first");
    if (deployed_) restore(f);
    EpochStats stats;
    stats.epoch = epoch;
    stats.loss = epochSteps_ > 0 ? epochLoss_ / static_cast<double>(epochSteps_)
                                 : std::numeric_limits<double>::quiet_NaN();
    stats.lr = lr_;
    if (!diverged_) doEndEpoch(f, epoch, stats);
    const auto now = std::chrono::steady_clock::now();
    stats.seconds = std::chrono::duration<double>(now - epochStart_).count();
    epochStart_ = now;
    epochLoss_ = 0;
    epochSteps_ = 0;
    epoch_ = epoch + 1;
    return stats;
}

void Optimizer::deploy(Objective& f) {
    if (!begun_ || objective_ != &f)
        fail("Optimizer::deploy()", "call begin(f) with this objective first");
    if (deployed_) return;
    doDeploy(f);
    deployed_ = true;
}

void Optimizer::restore(Objective& f) {
    if (!begun_ || objective_ != &f)
        fail("Optimizer::restore()", "call begin(f) with this objective first");
    if (!deployed_) return;
    doRestore(f);
    deployed_ = false;
}

TrainReport Optimizer::optimize(Objective& f,
                                const std::vector<std::shared_ptr<Callback>>& callbacks) {
    if (!primed_ || objective_ != &f) begin(f);
    primed_ = false;
    if (deployed_) restore(f);
    for (const auto& cb : callbacks) cb->beginOptimization(*this, f);

    TrainReport report;
    const Index batches = f.numBatches();
    if (diverged_) report.status = Status::Diverged;
    for (Index epoch = epoch_; epoch < train_.maxEpochs && report.status == Status::Running;
         ++epoch) {
        // A run stopped mid-epoch and reloaded continues that epoch where it stopped, with
        // the saved lr and batch order.
        const bool midEpoch = epochSteps_ > 0;
        if (!midEpoch) {
            epochStart_ = std::chrono::steady_clock::now();  // EpochStats::seconds: this epoch
            setLearningRate(train_.lr.lr(epoch));
            if (train_.shuffle) f.shuffle(rng_);
        }
        const Index firstBatch = midEpoch ? epochSteps_ : 0;
        for (const auto& cb : callbacks) cb->beginEpoch(*this, f, epoch, firstBatch);
        bool stop = false;
        for (Index b = firstBatch; b < batches; ++b) {
            const double loss = step(f, b);
            ++report.steps;
            if (!std::isfinite(loss)) {
                report.status = Status::Diverged;
                break;
            }
            for (const auto& cb : callbacks) stop = cb->stepTaken(*this, f, steps_, loss) || stop;
            if (stop) {
                report.status = Status::Stopped;
                break;
            }
        }
        if (report.status != Status::Running) break;
        const EpochStats stats = endEpoch(f, epoch);
        report.history.push_back(stats);
        ++report.epochs;
        report.finalLoss = stats.loss;
        if (diverged_) {
            report.status = Status::Diverged;
            break;
        }
        for (const auto& cb : callbacks) stop = cb->endEpoch(*this, f, stats) || stop;
        if (converged_)
            report.status = Status::Converged;
        else if (stop)
            report.status = Status::Stopped;
        else if (budgetExhausted())
            report.status = Status::MaxEpochs;
    }
    if (report.status == Status::Running) report.status = Status::MaxEpochs;
    deploy(f);
    for (const auto& cb : callbacks) cb->endOptimization(*this, f, report);
    return report;
}

void Optimizer::save(StateWriter& out, const std::string& prefix) const {
    if (!begun_) fail("Optimizer::save()", "nothing to save: begin() was not called");
    out.attr(prefix, "method", name());
    out.attr(prefix, "epoch", static_cast<std::int64_t>(epoch_));
    out.attr(prefix, "step", static_cast<std::int64_t>(steps_));
    out.attr(prefix, "lr", lr_);
    out.attr(prefix, "epochLoss", epochLoss_);
    out.attr(prefix, "epochSteps", static_cast<std::int64_t>(epochSteps_));
    out.attr(prefix, "converged", static_cast<std::int64_t>(converged_));
    out.attr(prefix, "diverged", static_cast<std::int64_t>(diverged_));
    std::ostringstream rng;
    rng << rng_;
    out.attr(prefix, "rng", rng.str());
    std::vector<std::string> names;
    for (size_t i = 0; i < blocks_.size(); ++i) {
        names.push_back(blocks_[i]->name);
        out.write(prefix + "/W/" + blocks_[i]->name, trainingPoint(static_cast<Index>(i)),
                  blocks_[i]->shape);
    }
    inner_.save(out, prefix + "/inner", names);
    doSave(out, prefix);
}

void Optimizer::load(const StateReader& in, const std::string& prefix) {
    if (!begun_) fail("Optimizer::load()", "call begin(f) before load()");
    const std::string method = in.attrString(prefix, "method");
    if (method != name())
        fail("Optimizer::load()",
             "state '" + prefix + "' is for method '" + method + "', this optimizer is '" +
                 name() + "'");
    if (deployed_) restore(*objective_);
    std::vector<std::string> names;
    for (size_t i = 0; i < blocks_.size(); ++i) {
        names.push_back(blocks_[i]->name);
        setTrainingPoint(static_cast<Index>(i),
                         in.read(prefix + "/W/" + blocks_[i]->name, blocks_[i]->shape));
    }
    inner_.load(in, prefix + "/inner", names);
    doLoad(in, prefix);
    epoch_ = static_cast<Index>(in.attrInt(prefix, "epoch"));
    steps_ = static_cast<Index>(in.attrInt(prefix, "step"));
    lr_ = in.attrDouble(prefix, "lr");
    epochLoss_ = in.attrDouble(prefix, "epochLoss");
    epochSteps_ = static_cast<Index>(in.attrInt(prefix, "epochSteps"));
    converged_ = in.attrInt(prefix, "converged") != 0;
    diverged_ = in.attrInt(prefix, "diverged") != 0;
    std::istringstream rng(in.attrString(prefix, "rng"));
    rng >> rng_;
    if (rng.fail()) fail("Optimizer::load()", "state '" + prefix + "' has a malformed rng");
    epochStart_ = std::chrono::steady_clock::now();
    primed_ = true;
}

// ---------------------------------------------------------------- ScopedDeploy

ScopedDeploy::ScopedDeploy(Optimizer& opt, Objective& f)
    : opt_(opt), f_(f), wasDeployed_(opt.deployed()) {
    opt_.deploy(f_);
}

ScopedDeploy::~ScopedDeploy() {
    if (!wasDeployed_) opt_.restore(f_);
}

// ---------------------------------------------------------------- Sgd

Sgd::Sgd(InnerSettings inner, TrainSettings train) : Optimizer(std::move(train), std::move(inner)) {}

void Sgd::doBegin(Objective& /*f*/) {}

double Sgd::doStep(Objective& f, Index batch) {
    const double loss = f.evaluateWithGradient(batch, Pass::Commit);
    if (!std::isfinite(loss)) return loss;
    const auto& bs = blocks();
    bool finite = true;
    for (size_t i = 0; i < bs.size(); ++i)
        // W = W - lr * inner(grad f(W))
        finite = innerStep(static_cast<Index>(i), bs[i]->value, bs[i]->grad, bs[i]->decay) && finite;
    return finite ? loss : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace tern::optim
