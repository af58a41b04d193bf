#pragma once
/// \file Callbacks for Optimizer::optimize() (ensmallen semantics: every hook optional, a hook
/// returning true stops the run with Status::Stopped). The library prints nothing by itself;
/// PrintProgress writes to a stream you give it.
#include "tern/optim/optimizer.hpp"

#include <chrono>
#include <fstream>
#include <functional>
#include <iosfwd>
#include <string>

namespace tern::optim {

/// Hooks called by Optimizer::optimize(). They get the optimizer itself (not const), so that a
/// hook can evaluate the deployable point (ScopedDeploy) or save a checkpoint.
class Callback {
public:
    virtual ~Callback() = default;
    /// Once, after begin() (or after a resume), before the first step.
    virtual void beginOptimization(Optimizer& /*opt*/, Objective& /*f*/) {}
    /// Before the first step of every epoch this call runs, after the learning rate and the
    /// shuffle; `firstBatch` > 0 when a run saved mid-epoch continues that epoch.
    virtual void beginEpoch(Optimizer& /*opt*/, Objective& /*f*/, Index /*epoch*/,
                            Index /*firstBatch*/) {}
    /// After every step; `step` counts steps since begin(). Return true to stop.
    virtual bool stepTaken(Optimizer& /*opt*/, Objective& /*f*/, Index /*step*/,
                           double /*loss*/) {
        return false;
    }
    /// After every endEpoch(). Return true to stop.
    virtual bool endEpoch(Optimizer& /*opt*/, Objective& /*f*/, const EpochStats& /*s*/) {
        return false;
    }
    /// Once, after the final deploy().
    virtual void endOptimization(Optimizer& /*opt*/, Objective& /*f*/,
                                 const TrainReport& /*report*/) {}
};

/// One line per `every` epochs to a stream:
/// "epoch 3/30 loss 0.1234 lr 0.01 time 1.2s [primal .. dual .. rho ..] [flip ..] [sparsity ..]".
class PrintProgress final : public Callback {
public:
    explicit PrintProgress(std::ostream& out, Index every = 1);
    bool endEpoch(Optimizer& opt, Objective& f, const EpochStats& s) override;
    void endOptimization(Optimizer& opt, Objective& f, const TrainReport& r) override;

private:
    std::ostream& out_;
    Index every_;
};

/// Stops when a metric (default: the epoch loss; lower is better) has not improved by more
/// than minDelta for `patience` consecutive epochs.
class EarlyStop final : public Callback {
public:
    using Metric = std::function<double(const EpochStats&)>;
    /// patience >= 1, minDelta >= 0.
    explicit EarlyStop(Index patience, double minDelta = 0, Metric metric = {});
    bool endEpoch(Optimizer& opt, Objective& f, const EpochStats& s) override;
    /// Best metric value seen so far.
    double best() const { return best_; }

private:
    Index patience_;
    double minDelta_;
    Metric metric_;
    double best_;
    Index bad_ = 0;
};

/// Writes one CSV row per epoch: epoch,loss,lr,seconds,primal_res,dual_res,rho,flip_ratio,
/// sparsity (NaN fields are written as "nan"). The file is created (truncated) in the
/// constructor; throws std::runtime_error naming the path if it cannot be opened.
class CsvLog final : public Callback {
public:
    explicit CsvLog(const std::string& path);
    bool endEpoch(Optimizer& opt, Objective& f, const EpochStats& s) override;

private:
    std::string path_;
    std::ofstream out_;
};

/// Stops once `seconds` of wall time have passed since beginOptimization() (checked after
/// every step and epoch).
class TimeLimit final : public Callback {
public:
    explicit TimeLimit(double seconds);
    void beginOptimization(Optimizer& opt, Objective& f) override;
    bool stepTaken(Optimizer& opt, Objective& f, Index step, double loss) override;
    bool endEpoch(Optimizer& opt, Objective& f, const EpochStats& s) override;

private:
    bool expired() const;
    double seconds_;
    std::chrono::steady_clock::time_point start_;
};

/// Wraps a lambda as an endEpoch hook (tests, ad-hoc logging).
class OnEpoch final : public Callback {
public:
    using Fn = std::function<bool(Optimizer&, Objective&, const EpochStats&)>;
    explicit OnEpoch(Fn fn) : fn_(std::move(fn)) {}
    bool endEpoch(Optimizer& opt, Objective& f, const EpochStats& s) override {
        return fn_(opt, f, s);
    }

private:
    Fn fn_;
};

}  // namespace tern::optim
