// Built-in callbacks. Only PrintProgress and CsvLog write anything, and only where told to.
#include "tern/optim/callbacks.hpp"

#include "tern/core/error.hpp"

#include <cmath>
#include <limits>
#include <ostream>
#include <stdexcept>

namespace tern::optim {

// ---------------------------------------------------------------- PrintProgress

PrintProgress::PrintProgress(std::ostream& out, Index every) : out_(out), every_(every) {
    if (every < 1)
        fail("PrintProgress::PrintProgress()", TERN_MSG("every must be >= 1 (got " << every << ")"));
}

bool PrintProgress::endEpoch(Optimizer& opt, Objective& /*f*/, const EpochStats& s) {
    if ((s.epoch + 1) % every_ != 0) return false;
    out_ << opt.name() << " epoch " << s.epoch + 1 << "/" << opt.trainSettings().maxEpochs
         << " loss " << s.loss << " lr " << s.lr << " time " << s.seconds << "s";
    if (!std::isnan(s.primalRes))
        out_ << " primal " << s.primalRes << " dual " << s.dualRes << " rho " << s.rho;
    if (!std::isnan(s.flipRatio)) out_ << " flip " << s.flipRatio;
    if (!std::isnan(s.sparsity)) out_ << " sparsity " << s.sparsity;
    if (!std::isnan(s.bits)) out_ << " bits " << s.bits;
    out_ << '\n';
    return false;
}

void PrintProgress::endOptimization(Optimizer& opt, Objective& /*f*/,
                                    const TrainReport& r) {
    out_ << opt.name() << " finished: " << statusName(r.status) << " after " << r.epochs
         << " epochs, " << r.steps << " steps, final loss " << r.finalLoss << '\n';
}

// ---------------------------------------------------------------- EarlyStop

EarlyStop::EarlyStop(Index patience, double minDelta, Metric metric)
    : patience_(patience),
      minDelta_(minDelta),
      metric_(std::move(metric)),
      best_(std::numeric_limits<double>::infinity()) {
    if (patience < 1)
        fail("EarlyStop::EarlyStop()", TERN_MSG("patience must be >= 1 (got " << patience << ")"));
    requireNonNegative(minDelta, "EarlyStop::EarlyStop()", "minDelta");
}

bool EarlyStop::endEpoch(Optimizer& /*opt*/, Objective& /*f*/, const EpochStats& s) {
    const double v = metric_ ? metric_(s) : s.loss;
    if (v < best_ - minDelta_) {
        best_ = v;
        bad_ = 0;
        return false;
    }
    return ++bad_ >= patience_;
}

// ---------------------------------------------------------------- CsvLog

CsvLog::CsvLog(const std::string& path) : path_(path), out_(path) {
    if (!out_) throw std::runtime_error("CsvLog::CsvLog(): cannot open '" + path + "' for writing");
    out_ << "epoch,loss,lr,seconds,primal_res,dual_res,rho,flip_ratio,sparsity\n";
    out_.flush();
}

bool CsvLog::endEpoch(Optimizer& /*opt*/, Objective& /*f*/, const EpochStats& s) {
    out_.precision(9);
    out_ << s.epoch << ',' << s.loss << ',' << s.lr << ',' << s.seconds << ',' << s.primalRes << ','
         << s.dualRes << ',' << s.rho << ',' << s.flipRatio << ',' << s.sparsity << '\n';
    out_.flush();
    if (!out_) throw std::runtime_error("CsvLog::endEpoch(): write to '" + path_ + "' failed");
    return false;
}

// ---------------------------------------------------------------- TimeLimit

TimeLimit::TimeLimit(double seconds) : seconds_(seconds), start_(std::chrono::steady_clock::now()) {
    requirePositive(seconds, "TimeLimit::TimeLimit()", "seconds");
}

void TimeLimit::beginOptimization(Optimizer& /*opt*/, Objective& /*f*/) {
    start_ = std::chrono::steady_clock::now();
}

bool TimeLimit::expired() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count() >=
           seconds_;
}

bool TimeLimit::stepTaken(Optimizer& /*opt*/, Objective& /*f*/, Index /*step*/,
                          double /*loss*/) {
    return expired();
}

bool TimeLimit::endEpoch(Optimizer& /*opt*/, Objective& /*f*/, const EpochStats& /*s*/) {
    return expired();
}

}  // namespace tern::optim
