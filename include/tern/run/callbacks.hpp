#pragma once
/// \file The training run's callbacks on optim::Optimizer::optimize(), usable on their own in a
/// custom loop over a network: evaluation at the deployed point, the progress line,
/// metrics.csv, checkpoints, and a stop flag.
#include "tern/io/dataset.hpp"
#include "tern/optim/callbacks.hpp"
#include "tern/run/config.hpp"
#include "tern/run/train.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <iosfwd>
#include <string>

namespace tern::run {

/// Stops the run (Status::Stopped) after the step in which `flag` became true.
class StopOnFlag final : public optim::Callback {
public:
    explicit StopOnFlag(const std::atomic<bool>& flag) : flag_(flag) {}
    bool stepTaken(optim::Optimizer&, optim::Objective&, Index, double) override {
        return flag_.load();
    }

private:
    const std::atomic<bool>& flag_;
};

/// After every epoch: the epoch's record (train loss and accuracy, lr, time, the method's
/// statistics) and, at the deployed point (optim::ScopedDeploy), BN recalibration, test loss
/// and accuracy, per-layer quantization statistics and cost. Appends to `result.history` and
/// keeps its final/best accuracy. Each quantized layer's record carries its set and bits
/// (optim::Optimizer::deployedSet()). Throws std::runtime_error if a deployed block holds more
/// distinct values per group than its set's levels.
class EvaluateDeployed final : public optim::Callback {
public:
    struct Settings {
        Index evalBatch = 500;
        Index recalibrateBatches = 0;  ///< BN statistics re-estimated over this many batches
        Index batchSize = 100;
        Granularity granularity = Granularity::PerTensor;
        bool quantized = true;         ///< the method constrains the weights
        std::string setName;           ///< the level set, for the error message
        /// Each block's granularity where per-layer sets give their own (empty: granularity).
        std::function<Granularity(const std::string& block)> granularityOf;
    };
    EvaluateDeployed(nn::Network& net, const io::Dataset& test, Settings s, TrainResult& result);
    void beginEpoch(optim::Optimizer& opt, optim::Objective& f, Index epoch,
                    Index firstBatch) override;
    bool endEpoch(optim::Optimizer& opt, optim::Objective& f, const optim::EpochStats& s) override;
    /// At the deployed point: BN recalibration, test loss and accuracy, nonzeros and sparsity
    /// into `r`; per-layer statistics and cost into the result (the set's levels checked).
    void measure(optim::Optimizer& opt, optim::Objective& f, EpochRecord& r);

private:
    nn::Network& net_;
    const io::Dataset& test_;
    Settings s_;
    TrainResult& result_;
    Index firstBatch_ = 0;
};

/// The live progress line (epoch, batch, loss, accuracy, images/s, ETA) during an epoch and a
/// summary line after it (reads the record EvaluateDeployed appended).
class ProgressLine final : public optim::Callback {
public:
    ProgressLine(std::ostream& out, nn::Network& net, Index epochs, Index batchSize,
                 const TrainResult& result);
    void beginEpoch(optim::Optimizer& opt, optim::Objective& f, Index epoch,
                    Index firstBatch) override;
    bool stepTaken(optim::Optimizer& opt, optim::Objective& f, Index step, double loss) override;
    bool endEpoch(optim::Optimizer& opt, optim::Objective& f, const optim::EpochStats& s) override;
    void endOptimization(optim::Optimizer& opt, optim::Objective& f,
                         const optim::TrainReport& r) override;

private:
    std::ostream& out_;
    nn::Network& net_;
    Index epochs_, batchSize_;
    const TrainResult& result_;
    bool tty_;
    std::chrono::steady_clock::time_point t0_;
    double lossSum_ = 0;
    Index steps_ = 0;
    bool open_ = false;  // a \r line is on screen
};

/// metrics.csv: one row per epoch (the record EvaluateDeployed appended), flushed and checked.
/// A fresh run writes the header; a resumed run keeps the rows of the epochs already done.
class MetricsCsv final : public optim::Callback {
public:
    /// The header of metrics.csv.
    static const char* header();
    MetricsCsv(std::string path, const TrainResult& result, bool resume, Index epochsDone);
    bool endEpoch(optim::Optimizer& opt, optim::Objective& f, const optim::EpochStats& s) override;

private:
    std::string path_;
    const TrainResult& result_;
};

/// admm.csv: one row per outer iteration of an optim::Admm (G-step, U-step), appended at the
/// end of every epoch: outer, epoch, step, primal_res, dual_res, rho, flip_ratio, coupling.
/// A resumed run keeps the rows of the epochs already done. Nothing for other optimizers.
class AdmmTrace final : public optim::Callback {
public:
    AdmmTrace(std::string path, bool resume, Index epochsDone);
    bool endEpoch(optim::Optimizer& opt, optim::Objective& f, const optim::EpochStats& s) override;

private:
    std::string path_;
    size_t written_ = 0;  // records of Admm::trace() already in the file
};

/// bits.csv: per epoch and quantized layer of a GTC run (optim::Ste with proj::GtcQuantizer),
/// the learned bit width 1 + ceil(log2(M - m + 1)), the exponent range [m, M], theta1, theta2
/// and the nonzero weights, at the epoch's end (the deployed point): the paper's Table 1 over
/// training. Rows for epochs a resumed run has done are kept; nothing is written for other
/// methods.
class BitsTrace final : public optim::Callback {
public:
    BitsTrace(std::string path, bool resume, Index epochsDone);
    bool endEpoch(optim::Optimizer& opt, optim::Objective& f, const optim::EpochStats& s) override;

private:
    std::string path_;
};

/// checkpoint.h5 after every epoch, and mid-epoch when `stop` becomes true, written atomically
/// (io::CheckpointWriter): the configuration, input shape and normalization, network state,
/// optimizer state, the deployable parameters, and the run's progress.
/// A fingerprint of the training and test data as the run sees them (images after
/// normalization, labels, sizes): 16 hex digits. Checkpointer stores it (attribute
/// data/fingerprint) and a resumed run compares it, so that --resume with a --data-dir holding
/// other images, or another --test-limit, is an error instead of a silently different run.
std::string dataFingerprint(const io::DataSplit& data);

class Checkpointer final : public optim::Callback {
public:
    Checkpointer(std::string path, const TrainConfig& config, const io::DataSplit& data,
                 nn::Network& net, TrainResult& result, const std::atomic<bool>& stop,
                 std::function<double()> elapsed);
    bool stepTaken(optim::Optimizer& opt, optim::Objective& f, Index step, double loss) override;
    bool endEpoch(optim::Optimizer& opt, optim::Objective& f, const optim::EpochStats& s) override;
    /// Writes the checkpoint for `epoch` epochs done and `batch` steps into the next.
    void save(optim::Optimizer& opt, Index epoch, Index batch);

private:
    std::string path_;
    const TrainConfig& config_;
    const io::DataSplit& data_;
    nn::Network& net_;
    TrainResult& result_;
    const std::atomic<bool>& stop_;
    std::function<double()> elapsed_;
    std::string fingerprint_;  // dataFingerprint(data), computed once
};

}  // namespace tern::run
