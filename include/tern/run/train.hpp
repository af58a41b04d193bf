#pragma once
/// \file A training run end to end: data, model, method, and Optimizer::optimize() with the
/// run's callbacks (evaluation at the deployed point, progress, metrics.csv, checkpoints, stop
/// on a signal), then summary.json. tern-train is a thin command line over this; tern-ablate
/// runs many of these.
#include "tern/run/config.hpp"
#include "tern/run/stats.hpp"

#include <atomic>
#include <iosfwd>
#include <string>
#include <vector>

namespace tern::run {

/// One row of metrics.csv.
struct EpochRecord {
    Index epoch = 0;
    double trainLoss = 0, trainAcc = 0, testLoss = 0, testAcc = 0, lr = 0, seconds = 0,
           imagesPerSecond = 0;
    Index nonzeros = 0;
    double sparsity = 0, flipRatio = 0, primalRes = 0, dualRes = 0, rho = 0, wp = 0, wn = 0,
           freezeFraction = 0;
    /// Mean bits per weight of the quantized layers (GTC; NaN for other methods). Shown on the
    /// progress line, not a column of metrics.csv.
    double bits = 0;
};

struct TrainResult {
    std::string status = "completed";  ///< completed | interrupted | diverged
    std::vector<EpochRecord> history;  ///< the epochs run in this call
    double finalTestAcc = 0, bestTestAcc = 0;
    Index bestEpoch = 0;
    double seconds = 0;
    std::vector<LayerQuant> layers;
    NetworkCost cost;
    Index parameters = 0, quantizedParameters = 0;
    Index epochsCompleted = 0;         ///< over the whole run, resumed parts included
    std::string checkpointPath;        ///< the last checkpoint written ("" = none)
};

/// Set by a signal handler (tern-train installs one for SIGINT/SIGTERM): the run stops after
/// the current step, writes its checkpoint and returns status "interrupted".
extern std::atomic<bool> stopRequested;

/// Runs the whole job. Progress lines go to `progress` (nullptr = silent). A divergence is a
/// status ("diverged"), not an exception. Throws std::invalid_argument for a bad
/// configuration, std::runtime_error for data or checkpoint problems (naming the file).
TrainResult train(const TrainConfig& config, std::ostream* progress);

}  // namespace tern::run
