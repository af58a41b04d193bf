// A training run: data, model, method, and Optimizer::optimize() with the run's callbacks.
#include "tern/run/train.hpp"

#include "tern/core/error.hpp"
#include "tern/core/format.hpp"
#include "tern/io/checkpoint.hpp"
#include "tern/io/integrity.hpp"
#include "tern/nn/gain.hpp"
#include "tern/nn/layer.hpp"
#include "tern/nn/loss.hpp"
#include "tern/nn/models.hpp"
#include "tern/proj/projection.hpp"
#include "tern/run/callbacks.hpp"

#include "text_file.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>

namespace tern::run {

std::atomic<bool> stopRequested{false};

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using json = nlohmann::ordered_json;  // keys in the order written

/// The checkpoint file of a run directory or file given to `flag` (--init, --teacher).
std::string checkpointOf(const std::string& given, const char* flag) {
    std::string path = given;
    if (fs::is_directory(path)) path = (fs::path(path) / "checkpoint.h5").string();
    if (!fs::exists(path))
        throw std::runtime_error(std::string("train(): ") + flag + ": " + path + " does not exist");
    return path;
}

/// Parameters (the checkpoint's deployed point) and BN running statistics of `net` from `in`;
/// `what` prefixes the messages ("train(): --init: <path>"), `misfit` explains a shape that
/// does not fit.
void readNetworkState(nn::Network& net, const io::CheckpointReader& in, const std::string& what,
                      const std::string& misfit) {
    for (ParameterBlock* b : net.parameters().all()) {
        if (!in.has("params/" + b->name))
            throw std::runtime_error(what + " has no parameter '" + b->name +
                                     "' (a checkpoint of another model?)");
        try {
            b->value = in.read("params/" + b->name, b->shape);
        } catch (const std::exception& e) {
            throw std::runtime_error(what + misfit + ": " + e.what());
        }
    }
    try {
        for (const auto& l : net.layers()) l->loadState(in, "net/");
    } catch (const std::invalid_argument& e) {
        throw std::runtime_error(what + ": " + e.what());
    }
}

/// Parameters and BN running statistics from a checkpoint (file or run directory).
void loadInitialState(nn::Network& net, const std::string& init) {
    const std::string path = checkpointOf(init, "--init");
    readNetworkState(net, io::CheckpointReader(path), "train(): --init: " + path, "");
}

/// The frozen teacher of --teacher: the model its checkpoint's config names, built for this
/// run's images and classes, with the checkpoint's parameters (its deployed point) and BN
/// statistics. A teacher for other images or classes is refused, naming both.
std::shared_ptr<nn::Network> loadTeacher(const std::string& teacher, const io::Dataset& d) {
    const std::string path = checkpointOf(teacher, "--teacher");
    io::CheckpointReader in(path);
    auto config = [&](const std::string& key, const std::string& fallback) {
        return in.hasAttr("config", key) ? in.attrString("config", key) : fallback;
    };
    if (!in.hasAttr("config", "model"))
        throw std::runtime_error("train(): --teacher: " + path + " has no config (not a tern-train checkpoint?)");
    nn::ModelOptions mo;
    mo.batchNorm = config("bn", "true") == "true";
    mo.width = parseWholeNumber(config("width", "1")).value_or(1.0);
    mo.quantizeFirst = config("quantize-first", "false") == "true";
    mo.quantizeLast = config("quantize-last", "false") == "true";
    mo.loss = nn::parseLoss(config("loss", "ce"));
    mo.shortcut = nn::parseShortcut(config("shortcut", "auto"));
    // fixed gains (nn::Gain, networks of a fixed-scale set without BN) left their values
    mo.gains = in.hasGroup("net") && nn::hasGainState(in.keys("net"));
    const std::string model = in.attrString("config", "model");
    const std::string dataset = config("dataset", "?");
    std::shared_ptr<nn::Network> net;
    try {
        net = nn::makeModel(model, {d.channels, d.height, d.width}, d.numClasses, mo);
    } catch (const std::exception& e) {
        throw std::runtime_error("train(): --teacher " + path + ": its model " + model +
                                 " cannot take this run's images: " + e.what());
    }
    readNetworkState(*net, in, "train(): --teacher " + path,
                     TERN_MSG(" (" << model << " trained on " << dataset << ") does not fit this run's "
                              << d.channels << "x" << d.height << "x" << d.width << " images and "
                              << d.numClasses << " classes"));
    net->parameters().requireFinite("train(): --teacher " + path);
    return net;
}

std::string defaultDataDir(const TrainConfig& c) {
    if (!c.dataDir.empty()) return c.dataDir;
    if (c.dataset == "cifar10") return "data/cifar-10-batches-bin";
    return "data/" + c.dataset;
}

/// Fields that must match between a checkpoint and the run that resumes it.
const std::vector<std::string> kIdentity{"dataset", "train-limit", "model", "width", "bn",
                                         "dropout", "loss", "quantize-first", "quantize-last",
                                         "batch-size", "method", "projection", "granularity",
                                         "optimizer", "seed"};

/// A checkpoint's config value and this run's are the same setting: the same text, or the same
/// number (integers exactly; others as float32, since older versions printed 17 digits and
/// float fields such as dropout went through double: "0.30000001192092896" is dropout 0.3).
bool sameSetting(const std::string& stored, const std::string& mine) {
    if (stored == mine) return true;
    const auto a = parseWholeInteger(stored), b = parseWholeInteger(mine);
    if (a && b) return *a == *b;
    const auto x = parseWholeNumber(stored), y = parseWholeNumber(mine);
    return x && y && static_cast<float>(*x) == static_cast<float>(*y);
}

/// A number for summary.json: null when not finite (JSON has no NaN).
json number(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

/// summary.json, written atomically (tmp, then rename).
void writeSummary(const std::string& path, const TrainConfig& c, const TrainResult& r,
                  nn::Network& net) {
    json layers = json::array();
    for (const LayerQuant& q : r.layers) {
        json scales = json::array();
        const size_t shown = std::min<size_t>(q.scales.size(), 64);
        for (size_t k = 0; k < shown; ++k) scales.push_back(number(q.scales[k]));
        layers.push_back({{"block", q.block},
                          {"total", q.total},
                          {"nonzeros", q.nonzeros},
                          {"groups", q.groups},
                          {"distinct_values_per_group", q.maxDistinctPerGroup},
                          {"scales", scales},
                          {"set", q.set},
                          {"bits", number(q.bits)}});
    }
    // the layers left float (first/last, "layer=float", a float method): 32 bits per weight
    for (const ParameterBlock* b : net.parameters().all()) {
        const bool weights = b->name.size() > 8 && b->name.rfind(".weights") == b->name.size() - 8;
        const bool listed = std::any_of(r.layers.begin(), r.layers.end(),
                                        [&](const LayerQuant& q) { return q.block == b->name; });
        if (!weights || listed) continue;
        layers.push_back({{"block", b->name},
                          {"total", b->value.size()},
                          {"nonzeros", (b->value.array() != 0.0f).count()},
                          {"set", "float"},
                          {"bits", 32}});
    }
    json model = json::array();
    for (const auto& l : net.layers()) model.push_back(l->describe());
    json config = json::object();
    for (const auto& [k, v] : c.items()) config[k] = v;
    const json summary{
        {"status", r.status},
        {"epochs_completed", r.epochsCompleted},
        {"final_test_acc", number(r.finalTestAcc)},
        {"best_test_acc", number(r.bestTestAcc)},
        {"best_epoch", r.bestEpoch},
        {"seconds", number(r.seconds)},
        {"parameters", r.parameters},
        {"quantized_parameters", r.quantizedParameters},
        {"cost",
         {{"nonzero_weights", r.cost.nonzeroWeights},
          {"total_weights", r.cost.totalWeights},
          {"storage_bits", number(r.cost.storageBits)},
          {"multiplications", r.cost.multiplications},
          {"additions", r.cost.additions}}},
        {"layers", layers},
        {"model", model},
        {"config", config}};
    try {
        detail::writeFileAtomically(path, summary.dump(2) + '\n');
    } catch (const std::exception& e) {
        throw std::runtime_error(std::string("train(): ") + e.what());
    }
}

/// Memory the system can still give this process, in bytes (MemAvailable; 0 if unknown).
double availableMemory() {
    std::ifstream f("/proc/meminfo");
    std::string key;
    double kib = 0;
    std::string unit;
    while (f >> key >> kib >> unit)
        if (key == "MemAvailable:") return kib * 1024.0;
    return 0;
}

/// The model's parameter count at `width`, estimated from the same model at width 1 (which
/// is small): conv and FC blocks grow at most as width^2. Refuses a width whose parameters,
/// gradients and optimizer state (about 6 copies of float32) would not fit in memory, before
/// anything is allocated: --width 1e6 used to end in a bare std::bad_alloc, and a width just
/// too large in the kernel's OOM killer.
void requireModelFits(const TrainConfig& c, const nn::ModelOptions& mo, const io::Dataset& d) {
    nn::ModelOptions small = mo;
    small.width = 1;
    const auto net = nn::makeModel(c.model, {d.channels, d.height, d.width}, d.numClasses, small);
    const double w = std::max(1.0, c.width);
    const double params = static_cast<double>(net->parameters().numel()) * w * w;
    const double need = params * sizeof(float) * 6;
    const double avail = availableMemory();
    if (avail > 0 && need > avail)
        throw std::invalid_argument(TERN_MSG(
            "train(): --width " << c.width << " gives " << c.model << " about " << params
            << " parameters, which need about " << need / (1 << 30) << " GiB with their gradients "
            "and optimizer state; this machine has " << avail / (1 << 30) << " GiB available"));
}

}  // namespace

TrainResult train(const TrainConfig& c, std::ostream* progress) {
    c.validate();
    const int threads = nn::setNumThreads(c.threads);
    if (c.threads > threads)
        io::warning(TERN_MSG("--threads " << c.threads << " is more than the " << threads
                                          << " cores this process may use; using " << threads));
    const auto start = Clock::now();
    const bool out = !c.outDir.empty();
    if (out) {  // before the data are read: an unwritable --out is found at once
        try {
            detail::requireWritableDirectory(c.outDir);
        } catch (const std::exception& e) {
            throw std::runtime_error(std::string("train(): --out: ") + e.what());
        }
    }
    if (c.resume && !out) throw std::invalid_argument("train(): --resume needs --out (the run directory)");
    const std::string ckptPath = out ? (fs::path(c.outDir) / "checkpoint.h5").string() : "";
    if (c.resume && !fs::exists(ckptPath))
        throw std::runtime_error("train(): cannot resume: " + ckptPath + " does not exist");
    io::DataSplit data =
        io::loadDataset(c.dataset, defaultDataDir(c), c.trainLimit, c.testLimit, c.folder);
    if (data.test.count <= 0)
        throw std::runtime_error("train(): the test set of " + c.dataset + " in " + defaultDataDir(c) +
                                 " is empty: no accuracy could be measured");
    if (data.test.channels != data.train.channels || data.test.height != data.train.height ||
        data.test.width != data.train.width || data.test.numClasses != data.train.numClasses)
        throw std::runtime_error(TERN_MSG(
            "train(): the test images of " << defaultDataDir(c) << " are " << data.test.channels
            << "x" << data.test.height << "x" << data.test.width << " (" << data.test.numClasses
            << " classes), the training images " << data.train.channels << "x" << data.train.height
            << "x" << data.train.width << " (" << data.train.numClasses << " classes)"));

    const optim::MethodConfig method = c.methodConfig();
    nn::ModelOptions mo;
    mo.batchNorm = c.batchNorm;
    mo.width = c.width;
    mo.dropout = c.dropout;
    mo.quantizeFirst = c.quantizeFirst;
    mo.quantizeLast = c.quantizeLast;
    mo.loss = nn::parseLoss(c.loss);
    // a fixed-scale set without BN ({-1, 0, 1}: alpha one, bc) gets fixed power-of-two gains
    // after its layers, which keep the activations in range and fold away at export
    mo.weightInit = nn::parseWeightInit(c.weightInit);
    mo.shortcut = nn::parseShortcut(c.shortcut);
    mo.gains = !c.batchNorm && !optim::resolvedProjection(method).empty() &&
               hasFixedScaleSet(method.projection);
    requireModelFits(c, mo, data.train);
    auto net = nn::makeModel(c.model, {data.train.channels, data.train.height, data.train.width},
                             data.train.numClasses, mo);
    applyLayerSets(*net, method.projection, "train()");  // before the optimizer sees the blocks
    net->initialize(c.seed);
    net->setTrainData(data.train, c.batchSize, c.seed);
    if (!c.init.empty() && !c.resume) {
        loadInitialState(*net, c.init);
        net->parameters().requireFinite("train(): --init " + c.init);
    }
    if (!c.teacher.empty())
        net->setTeacher(loadTeacher(c.teacher, data.train), c.distillWeight >= 0 ? c.distillWeight : 1.0,
                        c.distillTemperature);
    auto opt = optim::makeOptimizer(method, c.trainSettings());
    opt->begin(*net);
    const bool quantized = opt->levels() > 0;
    const std::string m = method.method;

    TrainResult result;
    result.parameters = net->parameters().numel();
    for (ParameterBlock* b : net->parameters().constrained())
        if (quantized) result.quantizedParameters += b->value.size();

    // Checkpoint and resume.
    double elapsedBefore = 0;
    Index startEpoch = 0;
    if (c.resume) {
        io::CheckpointReader in(ckptPath);
        startEpoch = in.attrInt("progress", "epoch");
        for (const auto& [k, v] : c.items()) {
            if (std::find(kIdentity.begin(), kIdentity.end(), k) == kIdentity.end()) continue;
            if (!in.hasAttr("config", k))
                throw std::runtime_error("train(): " + ckptPath + " has no config entry '" + k + "'");
            const std::string stored = in.attrString("config", k);
            if (!sameSetting(stored, v))
                throw std::runtime_error("train(): " + ckptPath + " was written for " + k + " = '" +
                                         stored + "', this run has '" + v + "'");
        }
        const std::string fingerprint = dataFingerprint(data);
        if (!in.hasAttr("data", "fingerprint"))
            io::warning(ckptPath + " has no data fingerprint (written by an older tern): the data "
                                   "cannot be checked against the run's");
        else if (in.attrString("data", "fingerprint") != fingerprint)
            throw std::runtime_error(
                "train(): cannot resume: the images of " + defaultDataDir(c) +
                " (with --train-limit/--test-limit) are not those " + ckptPath +
                " was trained on (data fingerprint " + fingerprint + ", the checkpoint's " +
                in.attrString("data", "fingerprint") + ")");
        try {
            net->loadState(in, "net/");
        } catch (const std::invalid_argument& e) {
            throw std::runtime_error("train(): cannot resume: " + ckptPath + ": " + e.what());
        }
        opt->load(in, "optim");
        net->parameters().requireFinite("train(): " + ckptPath);
        elapsedBefore = in.attrDouble("progress", "seconds");
        result.bestTestAcc = in.attrDouble("progress", "best_test_acc");
        result.finalTestAcc = in.hasAttr("progress", "final_test_acc")
                                  ? in.attrDouble("progress", "final_test_acc")
                                  : std::nan("");
        result.bestEpoch = in.attrInt("progress", "best_epoch");
    }
    result.epochsCompleted = startEpoch;
    auto elapsed = [&] {
        return elapsedBefore + std::chrono::duration<double>(Clock::now() - start).count();
    };

    // The run: optimize() with its callbacks, in this order at the end of an epoch.
    EvaluateDeployed::Settings es;
    es.evalBatch = c.evalBatch;
    es.recalibrateBatches =
        c.bnRecalibrate >= 0 ? c.bnRecalibrate : (opt->trainsAtDeployedPoint() ? 0 : 20);
    es.batchSize = c.batchSize;
    es.granularity = method.granularity;
    es.quantized = quantized;
    es.setName = method.projection.empty() ? m : method.projection;
    if (!optim::resolvedProjection(method).empty()) {  // each block's own granularity
        const optim::BlockSets sets = optim::makeBlockSets(method);
        es.granularityOf = [sets](const std::string& block) { return sets.of(block).granularity; };
    }
    const auto evaluate = std::make_shared<EvaluateDeployed>(*net, data.test, es, result);
    std::vector<std::shared_ptr<optim::Callback>> callbacks{evaluate};
    if (out)
        callbacks.push_back(std::make_shared<MetricsCsv>(
            (fs::path(c.outDir) / "metrics.csv").string(), result, c.resume, startEpoch));
    if (out && m == "admm")
        callbacks.push_back(std::make_shared<AdmmTrace>(
            (fs::path(c.outDir) / "admm.csv").string(), c.resume, startEpoch));
    if (out && m == "gtc")
        callbacks.push_back(std::make_shared<BitsTrace>(
            (fs::path(c.outDir) / "bits.csv").string(), c.resume, startEpoch));
    if (out && c.checkpoint)
        callbacks.push_back(std::make_shared<Checkpointer>(ckptPath, c, data, *net, result,
                                                           stopRequested, elapsed));
    if (progress)
        callbacks.push_back(
            std::make_shared<ProgressLine>(*progress, *net, c.epochs, c.batchSize, result));
    callbacks.push_back(std::make_shared<StopOnFlag>(stopRequested));

    if (progress)
        *progress << "tern: " << c.model << " on " << c.dataset << " (" << data.train.count
                  << " training, " << data.test.count << " test images, batch " << c.batchSize
                  << "); method " << m << ": " << opt->describe() << (c.resume ? "; resumed at epoch " +
                                                               std::to_string(startEpoch)
                                                         : std::string())
                  << '\n';
    const optim::TrainReport report = opt->optimize(*net, callbacks);  // ends deployed
    if (const std::string images = io::imageFolderSummary(data); progress && !images.empty())
        *progress << "tern: " << images << '\n';  // grayscale and skipped images of a folder
    if (report.status == optim::Status::Diverged) {
        result.status = "diverged";
        // the last epoch that ended well (its checkpoint is kept), not the diverged point
        if (!result.history.empty()) result.finalTestAcc = result.history.back().testAcc;
    }
    else if (report.status == optim::Status::Stopped) result.status = "interrupted";
    if (report.epochs == 0 && report.status != optim::Status::Stopped &&
        report.status != optim::Status::Diverged) {
        // nothing to run: still report the deployed point
        EpochRecord r;
        evaluate->measure(*opt, *net, r);
        result.finalTestAcc = r.testAcc;
        if (startEpoch == 0) {  // no epoch at all: the starting point is the best one seen
            result.bestTestAcc = result.finalTestAcc;
            result.bestEpoch = -1;
        }
    }
    result.seconds = elapsed();
    // A resume with no epochs left reports the deployed point and leaves an existing
    // summary.json alone: the finished run's record is never replaced by a re-measurement.
    const std::string summaryPath = out ? (fs::path(c.outDir) / "summary.json").string() : "";
    const bool nothingRun = c.resume && startEpoch >= c.epochs;
    if (out && !(nothingRun && fs::exists(summaryPath))) writeSummary(summaryPath, c, result, *net);
    if (nothingRun && progress)
        *progress << "tern: " << ckptPath << " has " << startEpoch << " epochs done (--epochs "
                  << c.epochs << "): nothing to train; give --epochs > " << startEpoch
                  << " to continue\n";
    return result;
}

}  // namespace tern::run
