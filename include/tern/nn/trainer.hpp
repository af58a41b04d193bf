#pragma once
/// \file Trains a network end to end from a configuration: data, model, method, schedule,
/// progress, metrics.csv / summary.json, atomic checkpoints and exact resume. tern-train is a
/// thin command line over this; tern-ablate runs many of these.
#include "tern/io/dataset.hpp"
#include "tern/nn/models.hpp"
#include "tern/optim/optimizer.hpp"

#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace tern::nn {

/// Everything a training run depends on. Field names follow the CLI flags (camelCase of
/// --kebab-case).
struct TrainConfig {
    // Data
    std::string dataset = "mnist";  ///< mnist | fashion-mnist | cifar10
    std::string dataDir;            ///< default: data/<dataset> (cifar10: data/cifar-10-batches-bin)
    Index trainLimit = 0;           ///< use the first N training images (0 = all)
    Index testLimit = 0;            ///< use the first N test images (0 = all)
    // Model
    std::string model = "lenet5";   ///< lenet5 | vgg7 | tiny
    double width = 1.0;
    bool batchNorm = true;
    float dropout = 0.0f;
    std::string loss = "ce";        ///< ce | hinge | sqhinge
    bool quantizeFirst = false, quantizeLast = false;
    // Schedule
    Index epochs = 30;
    Index batchSize = 100;
    double lr = 0.01;
    std::vector<Index> lrSteps;     ///< epochs at which lr *= lrGamma (multi-step)
    double lrGamma = 0.1;
    std::string lrSchedule = "multistep";  ///< multistep | cosine | constant
    std::string optimizer = "sgd";  ///< inner update: sgd | adam
    double momentum = 0.9, weightDecay = 1e-4;
    std::uint64_t seed = 1;
    int threads = 0;                ///< 0 = OpenMP default
    // Method
    std::string method = "fp";      ///< fp | bc | bwn | twn | ttq | admm | pgd | rpr | inc
    std::string levels = "ternary"; ///< admm/pgd: ternary | binary | pow2
    int bits = 3;                   ///< pow2: a*{0, +-1, ..., +-2^(bits-1)}
    std::string alpha = "free";     ///< free | one: the scale a is solved or fixed to 1
    bool exact = false;             ///< twn: exact projection instead of delta = 0.7 mean|W|
    std::string projection;         ///< explicit makeProjection() spec (overrides levels/alpha)
    std::string granularity = "tensor";  ///< tensor | filter
    double ttqThreshold = 0.05;
    double ttqScaleLr = 1e-3;       ///< ttq / inc: learning-rate factor of Wp, Wn (their gradient sums a whole group)
    double rho = 1e-4, rhoGrowth = 1.1, rhoMax = 1e3;
    Index outerEvery = 1;
    bool extragradient = true;
    /// rpr / inc: quantized fraction per stage (empty = the method's default: rpr 0.9, 0.95,
    /// 0.975, 0.9875, 1; inc 0.5, 0.75, 1).
    std::vector<double> fractions;
    Index stageEpochs = 0;          ///< rpr / inc: epochs per stage (0 = epochs / (stages + 1))
    /// Start from the parameters and BN statistics of this checkpoint (a file, or a run
    /// directory holding checkpoint.h5), e.g. a float run for rpr. Ignored by --resume.
    std::string init;
    // Output
    std::string outDir;             ///< metrics.csv, summary.json, checkpoint.h5 (empty = none)
    bool resume = false;            ///< continue from outDir/checkpoint.h5
    Index evalBatch = 500;
    /// Batch-norm running statistics re-estimated at the deployed weights over this many
    /// training minibatches before each evaluation (-1 = auto: 20 for admm, rpr and inc, whose
    /// deployed weights differ from the ones they train; 0 for the others).
    Index bnRecalibrate = -1;
    bool checkpoint = true;         ///< write outDir/checkpoint.h5 after every epoch

    /// Throws std::invalid_argument naming the field.
    void validate() const;
    /// The projection spec the method uses ("" for fp / ttq).
    std::string projectionSpec() const;
    /// key=value lines (also the INI form tern-train reads back).
    std::vector<std::pair<std::string, std::string>> items() const;
};

/// Per quantized layer, at the deployed point.
struct LayerQuant {
    std::string block;
    Index total = 0, nonzeros = 0;
    Index groups = 1;
    Index maxDistinctPerGroup = 0;  ///< distinct values in the most varied group
    std::vector<float> scales;      ///< max |value| per group
};

/// Costs of the deployed network, per image.
struct NetworkCost {
    Index nonzeroWeights = 0;  ///< nonzero weights over all conv/FC layers
    Index totalWeights = 0;
    double storageBits = 0;    ///< 2 bits per ternary weight, 32 per float value, 32 per scale
    Index multiplications = 0; ///< after BN folding: ternary layers only scale per output value
    Index additions = 0;
};

struct EpochRecord {
    Index epoch = 0;
    double trainLoss = 0, trainAcc = 0, testLoss = 0, testAcc = 0, lr = 0, seconds = 0,
           imagesPerSecond = 0;
    Index nonzeros = 0;
    double sparsity = 0, flipRatio = 0, primalRes = 0, dualRes = 0, rho = 0, wp = 0, wn = 0,
           freezeFraction = 0;
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
};

/// Set by a signal handler (tern-train installs one for SIGINT/SIGTERM): the run stops after
/// the current step, writes its checkpoint and returns status "interrupted".
extern std::atomic<bool> stopRequested;

/// Runs the whole job. Progress lines go to `progress` (nullptr = silent). Throws
/// std::invalid_argument for a bad configuration, std::runtime_error for data or checkpoint
/// problems (naming the file).
TrainResult train(const TrainConfig& config, std::ostream* progress);

/// The optimizer that implements `config.method` (fp -> Sgd; bc/bwn/twn/ttq -> Ste; admm; pgd;
/// rpr/inc -> PartialQuantization),
/// with the configuration's inner update, schedule and method settings.
std::unique_ptr<optim::Optimizer> makeMethod(const TrainConfig& config);

/// Quantization statistics of the constrained blocks as they are now.
std::vector<LayerQuant> quantStats(Network& net, Granularity g);
/// Cost of the network as it is now (call at the deployed point).
NetworkCost networkCost(Network& net, const std::vector<LayerQuant>& layers, bool hasScale);

}  // namespace tern::nn
