// End-to-end training runs: data, model, method, progress, metrics, checkpoints, resume.
#include "tern/nn/trainer.hpp"

#include "tern/core/error.hpp"
#include "tern/core/format.hpp"
#include "tern/io/checkpoint.hpp"
#include "tern/nn/layers.hpp"
#include "tern/optim/callbacks.hpp"
#include "tern/optim/admm.hpp"
#include "tern/optim/partial.hpp"
#include "tern/optim/projected_sgd.hpp"
#include "tern/optim/ste.hpp"
#include "tern/optim/optimizer.hpp"
#include "tern/proj/projection.hpp"
#include "tern/proj/quantizer.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <set>
#include <tuple>
#include <sstream>

namespace tern::nn {

std::atomic<bool> stopRequested{false};

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const std::vector<std::string> kMethods{"fp", "bc", "bwn", "twn", "ttq", "admm", "pgd", "rpr", "inc"};

bool oneOf(const std::string& v, const std::vector<std::string>& set) {
    return std::find(set.begin(), set.end(), v) != set.end();
}

std::string joined(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) {
        if (!s.empty()) s += ", ";
        s += x;
    }
    return s;
}

std::string joinedNumbers(const std::vector<double>& v) {
    std::ostringstream o;
    o << std::setprecision(17);
    for (size_t i = 0; i < v.size(); ++i) o << (i ? "," : "") << v[i];
    return o.str();
}

/// Mean TTQ scales (Wp, Wn) over the quantizers of an STE or partial-quantization optimizer.
std::pair<double, double> meanScales(optim::Optimizer& opt) {
    double wp = 0, wn = 0;
    Index n = 0;
    auto add = [&](proj::Quantizer& q) {
        ParameterSet* t = q.trainable();
        if (!t || !t->has("wp")) return;
        wp += t->at("wp").value.mean();
        wn += t->at("wn").value.mean();
        ++n;
    };
    if (auto* ste = dynamic_cast<optim::Ste*>(&opt))
        for (Index k = 0; k < ste->constrainedBlocks(); ++k) add(ste->quantizer(k));
    if (auto* pq = dynamic_cast<optim::PartialQuantization*>(&opt))
        for (Index k = 0; k < pq->constrainedBlocks(); ++k) add(pq->quantizer(k));
    if (n == 0) return {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::quiet_NaN()};
    return {wp / static_cast<double>(n), wn / static_cast<double>(n)};
}

/// Parameters and BN running statistics from a checkpoint (file or run directory).
void loadInitialState(Network& net, const std::string& init) {
    std::string path = init;
    if (fs::is_directory(path)) path = (fs::path(path) / "checkpoint.h5").string();
    if (!fs::exists(path))
        throw std::runtime_error("train(): --init: " + path + " does not exist");
    io::CheckpointReader in(path);
    for (ParameterBlock* b : net.parameters().all()) {
        if (!in.has("params/" + b->name))
            throw std::runtime_error("train(): --init: " + path + " has no parameter '" + b->name +
                                     "' (a checkpoint of another model?)");
        try {
            b->value = in.read("params/" + b->name, b->shape);
        } catch (const std::exception& e) {
            throw std::runtime_error("train(): --init: " + path + ": " + e.what());
        }
    }
    for (const auto& l : net.layers()) l->loadState(in, "net/");
}

std::string jsonEscape(const std::string& s) {
    std::string o;
    for (char c : s) {
        if (c == '"' || c == '\\') o += '\\';
        o += c;
    }
    return o;
}

std::string num(double v) {
    if (!std::isfinite(v)) return "null";
    std::ostringstream o;
    o << std::setprecision(8) << v;
    return o.str();
}

const char* kMetricsHeader =
    "epoch,train_loss,train_acc,test_loss,test_acc,lr,seconds,images_per_s,nonzeros,sparsity,"
    "flip_ratio,primal_res,dual_res,rho,ttq_wp,ttq_wn,freeze_fraction";

std::string csvNum(double v) {
    if (!std::isfinite(v)) return "";
    std::ostringstream o;
    o << std::setprecision(9) << v;
    return o.str();
}

std::string metricsRow(const EpochRecord& r) {
    std::ostringstream o;
    o << r.epoch << ',' << csvNum(r.trainLoss) << ',' << csvNum(r.trainAcc) << ','
      << csvNum(r.testLoss) << ',' << csvNum(r.testAcc) << ',' << csvNum(r.lr) << ','
      << csvNum(r.seconds) << ',' << csvNum(r.imagesPerSecond) << ',' << r.nonzeros << ','
      << csvNum(r.sparsity) << ',' << csvNum(r.flipRatio) << ',' << csvNum(r.primalRes) << ','
      << csvNum(r.dualRes) << ',' << csvNum(r.rho) << ',' << csvNum(r.wp) << ','
      << csvNum(r.wn) << ',' << csvNum(r.freezeFraction);
    return o.str();
}

/// Keeps the header and the rows of epochs < `epochs` (a resumed run rewrites the rest).
void truncateMetrics(const std::string& path, Index epochs) {
    std::ifstream in(path);
    std::vector<std::string> keep;
    std::string line;
    if (std::getline(in, line)) keep.push_back(line);
    while (std::getline(in, line)) {
        const Index e = std::stol(line.substr(0, line.find(',')));
        if (e < epochs) keep.push_back(line);
    }
    in.close();
    std::ofstream out(path, std::ios::trunc);
    for (const auto& l : keep) out << l << '\n';
}

int levelsOf(const TrainConfig& c) {
    if (c.method == "bc" || c.method == "bwn") return 2;
    if (c.method == "ttq" || c.method == "twn" || c.method == "inc") return 3;
    if (c.method == "fp") return 0;
    if (!c.projection.empty()) return proj::makeProjection(c.projection)->levels();
    if (c.levels == "binary") return 2;
    if (c.levels == "pow2") return 2 * c.bits + 1;
    return 3;
}

}  // namespace

// ------------------------------------------------------------------------- TrainConfig

void TrainConfig::validate() const {
    const char* w = "TrainConfig::validate()";
    if (!oneOf(dataset, io::datasetNames()))
        fail(w, "unknown dataset '" + dataset + "'; known: " + joined(io::datasetNames()));
    if (!oneOf(model, modelNames()))
        fail(w, "unknown model '" + model + "'; known: " + joined(modelNames()));
    if (!oneOf(method, kMethods))
        fail(w, "unknown method '" + method + "'; known: " + joined(kMethods));
    if (!oneOf(levels, {"ternary", "binary", "pow2"}))
        fail(w, "unknown levels '" + levels + "'; known: ternary, binary, pow2");
    if (!oneOf(alpha, {"free", "one"})) fail(w, "alpha must be free or one (got '" + alpha + "')");
    if (!oneOf(optimizer, {"sgd", "adam"}))
        fail(w, "unknown optimizer '" + optimizer + "'; known: sgd, adam");
    if (!oneOf(lrSchedule, {"multistep", "cosine", "constant"}))
        fail(w, "unknown lr schedule '" + lrSchedule + "'; known: multistep, cosine, constant");
    parseGranularity(granularity);
    parseLoss(loss);
    requirePositive(width, w, "width");
    requireInRange(dropout, 0, 0.99, w, "dropout");
    requireNonNegative(static_cast<double>(epochs), w, "epochs");
    requirePositive(static_cast<double>(batchSize), w, "batch-size");
    requirePositive(lr, w, "lr");
    requirePositive(lrGamma, w, "lr-gamma");
    requireInRange(momentum, 0, 0.999, w, "momentum");
    requireNonNegative(weightDecay, w, "weight-decay");
    requireNonNegative(static_cast<double>(trainLimit), w, "train-limit");
    requireNonNegative(static_cast<double>(testLimit), w, "test-limit");
    requireNonNegative(threads, w, "threads");
    requireInRange(bits, 1, 16, w, "bits");
    requireInRange(ttqThreshold, 0, 1, w, "ttq-threshold");
    requirePositive(ttqScaleLr, w, "ttq-scale-lr");
    requirePositive(rho, w, "rho");
    requireInRange(rhoGrowth, 1, 1e6, w, "rho-growth");
    requirePositive(rhoMax, w, "rho-max");
    requirePositive(static_cast<double>(outerEvery), w, "outer-every");
    requirePositive(static_cast<double>(evalBatch), w, "eval-batch");
    for (Index s : lrSteps)
        if (s <= 0) fail(w, TERN_MSG("lr-steps must be positive epochs (got " << s << ")"));
    requireNonNegative(static_cast<double>(stageEpochs), w, "stage-epochs");
    if (bnRecalibrate < -1) fail(w, TERN_MSG("bn-recalibrate must be -1 (auto) or >= 0 (got " << bnRecalibrate << ")"));
    if (!fractions.empty()) {
        optim::PartialSettings p;
        p.fractions = fractions;
        p.validate();
    }
    if (resume && outDir.empty()) fail(w, "resume needs an output directory (--out)");
    if (method == "fp" && alpha == "one")
        fail(w, "alpha one has no meaning for the float baseline (method fp)");
    const std::string spec = projectionSpec();
    if (!spec.empty()) proj::makeProjection(spec);  // unknown specs fail here, with the list
}

std::string TrainConfig::projectionSpec() const {
    if (method == "fp" || method == "ttq" || method == "inc") return "";
    if (!projection.empty()) return projection;
    const std::string one = alpha == "one" ? ",scale=one" : "";
    if (method == "bc") return "binary";
    if (method == "bwn") return alpha == "one" ? "binary" : "binary:scaled";
    if (method == "twn") return (exact ? "ternary:exact" : "ternary:twn") + one;
    if (levels == "binary") return alpha == "one" ? "binary" : "binary:scaled";
    if (levels == "pow2") return "pow2,bits=" + std::to_string(bits) + ",solver=exact" + one;
    return "ternary:exact" + one;
}

std::vector<std::pair<std::string, std::string>> TrainConfig::items() const {
    auto b = [](bool v) { return std::string(v ? "true" : "false"); };
    std::string steps;
    for (Index s : lrSteps) {
        if (!steps.empty()) steps += ',';
        steps += std::to_string(s);
    }
    std::ostringstream d;
    d << std::setprecision(17);
    auto n = [&d](double v) {
        d.str("");
        d << v;
        return d.str();
    };
    return {{"dataset", dataset},          {"data-dir", dataDir},
            {"train-limit", std::to_string(trainLimit)}, {"test-limit", std::to_string(testLimit)},
            {"model", model},              {"width", n(width)},
            {"bn", b(batchNorm)},          {"dropout", n(dropout)},
            {"loss", loss},                {"quantize-first", b(quantizeFirst)},
            {"quantize-last", b(quantizeLast)}, {"epochs", std::to_string(epochs)},
            {"batch-size", std::to_string(batchSize)}, {"lr", n(lr)},
            {"lr-steps", steps},           {"lr-gamma", n(lrGamma)},
            {"lr-schedule", lrSchedule},   {"optimizer", optimizer},
            {"momentum", n(momentum)},     {"weight-decay", n(weightDecay)},
            {"seed", std::to_string(seed)}, {"threads", std::to_string(threads)},
            {"method", method},            {"levels", levels},
            {"bits", std::to_string(bits)}, {"alpha", alpha},
            {"exact", b(exact)},           {"projection", projectionSpec()},
            {"granularity", granularity},  {"ttq-threshold", n(ttqThreshold)},
            {"ttq-scale-lr", n(ttqScaleLr)},
            {"rho", n(rho)},               {"rho-growth", n(rhoGrowth)},
            {"rho-max", n(rhoMax)},        {"outer-every", std::to_string(outerEvery)},
            {"extragradient", b(extragradient)}, {"fractions", joinedNumbers(fractions)},
            {"stage-epochs", std::to_string(stageEpochs)}, {"init", init},
            {"bn-recalibrate", std::to_string(bnRecalibrate)}};
}

// ------------------------------------------------------------------- statistics

std::vector<LayerQuant> quantStats(Network& net, Granularity g) {
    std::vector<LayerQuant> out;
    for (ParameterBlock* b : net.parameters().constrained()) {
        LayerQuant q;
        q.block = b->name;
        q.total = b->value.size();
        q.groups = b->shape.groups(g);
        const Index per = q.total / q.groups;
        for (Index k = 0; k < q.groups; ++k) {
            std::set<float> distinct;
            float scale = 0;
            for (Index i = k * per; i < (k + 1) * per; ++i) {
                const float v = b->value[i];
                distinct.insert(v == 0.0f ? 0.0f : v);  // -0 and +0 are one value
                q.nonzeros += v != 0.0f;
                scale = std::max(scale, std::abs(v));
            }
            q.maxDistinctPerGroup = std::max<Index>(q.maxDistinctPerGroup, distinct.size());
            q.scales.push_back(scale);
        }
        out.push_back(std::move(q));
    }
    return out;
}

NetworkCost networkCost(Network& net, const std::vector<LayerQuant>& layers, bool hasScale) {
    NetworkCost c;
    const auto& ls = net.layers();
    for (size_t i = 0; i < ls.size(); ++i) {
        const Layer* l = ls[i].get();
        const ParameterBlock* w = nullptr;
        Index outChannels = 0;
        if (auto* conv = dynamic_cast<const Conv2d*>(l)) {
            w = conv->weights();
            outChannels = conv->outChannels();
        } else if (auto* fc = dynamic_cast<const Linear*>(l)) {
            w = fc->weights();
            outChannels = fc->outFeatures();
        } else {
            continue;
        }
        const LayerCost lc = l->cost(net.inputDimsOf(i));
        const Index positions = lc.macs / std::max<Index>(lc.weights, 1);  // output positions
        const bool bnAfter = i + 1 < ls.size() && dynamic_cast<const BatchNorm*>(ls[i + 1].get());
        const auto q = std::find_if(layers.begin(), layers.end(),
                                    [&](const LayerQuant& x) { return x.block == w->name; });
        c.totalWeights += lc.weights;
        if (q == layers.end()) {  // float layer
            c.nonzeroWeights += (w->value.array() != 0.0f).count();
            c.storageBits += 32.0 * static_cast<double>(lc.weights);
            c.multiplications += lc.macs;
            c.additions += lc.macs;
        } else {
            c.nonzeroWeights += q->nonzeros;
            c.storageBits += 2.0 * static_cast<double>(q->total) + 32.0 * static_cast<double>(q->groups);
            c.additions += q->nonzeros * positions;  // one add/sub per nonzero weight use
            // One multiply per output value where a scale or a folded BN remains.
            if (hasScale || bnAfter) c.multiplications += outChannels * positions;
        }
    }
    // Biases and BN (folded: one scale and one shift per channel) stay float.
    for (const ParameterBlock* b : net.parameters().all())
        if (!b->constrained && b->name.find(".weights") == std::string::npos)
            c.storageBits += 32.0 * static_cast<double>(b->value.size());
    return c;
}

// ------------------------------------------------------------------------- train

std::unique_ptr<optim::Optimizer> makeMethod(const TrainConfig& c) {
    const Granularity g = parseGranularity(c.granularity);
    optim::InnerSettings inner;
    if (c.optimizer == "adam") {
        optim::AdamSettings a;
        a.weightDecay = c.weightDecay;
        inner = a;
    } else {
        optim::SgdSettings s;
        s.momentum = c.momentum;
        s.weightDecay = c.weightDecay;
        inner = s;
    }
    optim::TrainSettings train;
    train.maxEpochs = c.epochs;
    train.seed = c.seed;
    train.shuffle = true;
    if (c.lrSchedule == "cosine") train.lr = optim::LrSchedule::cosine(c.lr, std::max<Index>(c.epochs, 1));
    else if (c.lrSchedule == "constant") train.lr = optim::LrSchedule::constant(c.lr);
    else train.lr = optim::LrSchedule::multiStep(c.lr, c.lrSteps, c.lrGamma);
    if (c.method == "fp") return std::make_unique<optim::Sgd>(inner, train);
    if (c.method == "ttq") {
        const auto t = static_cast<Scalar>(c.ttqThreshold);
        optim::SteSettings ste;
        ste.trainableLr = c.ttqScaleLr;
        return std::make_unique<optim::Ste>([t, g] { return proj::makeTtq(t, g); }, ste, inner,
                                            train);
    }
    if (c.method == "rpr" || c.method == "inc") {
        optim::PartialSettings ps = c.method == "rpr" ? optim::PartialSettings::rpr()
                                                      : optim::PartialSettings::incremental();
        if (!c.fractions.empty()) ps.fractions = c.fractions;
        const auto stages = static_cast<Index>(ps.fractions.size());
        ps.stageEpochs = c.stageEpochs > 0 ? c.stageEpochs : std::max<Index>(1, c.epochs / (stages + 1));
        if (c.method == "inc") {
            ps.trainableLr = c.ttqScaleLr;
            const auto t = static_cast<Scalar>(c.ttqThreshold);
            return std::make_unique<optim::PartialQuantization>(
                [t, g] { return proj::makeTtq(t, g); }, g, ps, inner, train);
        }
        // RPR's rescale makes a fixed-scale set fit the weights; only BN makes it harmless
        ps.rescale = c.alpha == "one" && c.batchNorm;
        std::shared_ptr<const proj::Projection> p = proj::makeProjection(c.projectionSpec());
        return std::make_unique<optim::PartialQuantization>([p, g] { return proj::makeSte(p, g); },
                                                            g, ps, inner, train);
    }
    std::shared_ptr<const proj::Projection> p = proj::makeProjection(c.projectionSpec());
    if (c.method == "admm") {
        optim::AdmmSettings a;
        a.rho = c.rho;
        a.rhoGrowth = c.rhoGrowth;
        a.rhoMax = std::max(c.rhoMax, c.rho);
        a.outerEvery = c.outerEvery;
        a.extragradient = c.extragradient;
        // alpha = 1: start W at the levels' scale (else P(W) = 0 for small initial weights)
        a.rescale = c.alpha == "one";
        return std::make_unique<optim::Admm>(p, g, a, inner, train);
    }
    if (c.method == "pgd") {
        optim::PgdSettings pgd;
        pgd.rescale = c.alpha == "one";  // as ADMM: else P(W) = 0 for small initial weights
        return std::make_unique<optim::ProjectedSgd>(p, g, inner, train, pgd);
    }
    // STE family: BinaryConnect (binary, latent clipped to [-1, 1]), BWN, TWN.
    optim::SteSettings ste;
    if (c.method == "bc") ste.latentClip = 1;
    return std::make_unique<optim::Ste>([p, g] { return proj::makeSte(p, g); }, ste, inner, train);
}

namespace {

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

void writeSummary(const std::string& path, const TrainConfig& c, const TrainResult& r,
                  Index epochsDone, Network& net) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream o(tmp);
        o << "{\n  \"status\": \"" << r.status << "\",\n";
        o << "  \"epochs_completed\": " << epochsDone << ",\n";
        o << "  \"final_test_acc\": " << num(r.finalTestAcc) << ",\n";
        o << "  \"best_test_acc\": " << num(r.bestTestAcc) << ",\n";
        o << "  \"best_epoch\": " << r.bestEpoch << ",\n";
        o << "  \"seconds\": " << num(r.seconds) << ",\n";
        o << "  \"parameters\": " << r.parameters << ",\n";
        o << "  \"quantized_parameters\": " << r.quantizedParameters << ",\n";
        o << "  \"cost\": {\"nonzero_weights\": " << r.cost.nonzeroWeights
          << ", \"total_weights\": " << r.cost.totalWeights
          << ", \"storage_bits\": " << num(r.cost.storageBits)
          << ", \"multiplications\": " << r.cost.multiplications
          << ", \"additions\": " << r.cost.additions << "},\n";
        o << "  \"layers\": [";
        for (size_t i = 0; i < r.layers.size(); ++i) {
            const auto& q = r.layers[i];
            o << (i ? ",\n    " : "\n    ") << "{\"block\": \"" << q.block << "\", \"total\": " << q.total
              << ", \"nonzeros\": " << q.nonzeros << ", \"groups\": " << q.groups
              << ", \"distinct_values_per_group\": " << q.maxDistinctPerGroup << ", \"scales\": [";
            const size_t shown = std::min<size_t>(q.scales.size(), 64);
            for (size_t k = 0; k < shown; ++k) o << (k ? ", " : "") << num(q.scales[k]);
            o << "]}";
        }
        o << "\n  ],\n  \"model\": [";
        for (size_t i = 0; i < net.layers().size(); ++i)
            o << (i ? ", " : "") << "\"" << jsonEscape(net.layers()[i]->describe()) << "\"";
        o << "],\n  \"config\": {";
        const auto items = c.items();
        for (size_t i = 0; i < items.size(); ++i)
            o << (i ? ", " : "") << "\"" << items[i].first << "\": \"" << jsonEscape(items[i].second)
              << "\"";
        o << "}\n}\n";
        if (!o) throw std::runtime_error("train(): cannot write " + tmp);
    }
    fs::rename(tmp, path);
}

}  // namespace

TrainResult train(const TrainConfig& c, std::ostream* progress) {
    c.validate();
    setNumThreads(c.threads);
    const auto start = Clock::now();
    const std::string dataDir = defaultDataDir(c);
    io::DataSplit data = io::loadDataset(c.dataset, dataDir, c.trainLimit, c.testLimit);

    ModelOptions mo;
    mo.batchNorm = c.batchNorm;
    mo.width = c.width;
    mo.dropout = c.dropout;
    mo.quantizeFirst = c.quantizeFirst;
    mo.quantizeLast = c.quantizeLast;
    mo.loss = parseLoss(c.loss);
    auto net = makeModel(c.model, {data.train.channels, data.train.height, data.train.width},
                         data.train.numClasses, mo);
    net->initialize(c.seed);
    net->setTrainData(data.train, c.batchSize, c.seed);
    if (!c.init.empty() && !c.resume) loadInitialState(*net, c.init);
    auto opt = makeMethod(c);
    opt->begin(*net);
    const Granularity gran = parseGranularity(c.granularity);
    const bool quantized = c.method != "fp";
    const int levels = levelsOf(c);
    const bool hasScale = c.method == "ttq" || c.method == "inc" || (c.alpha == "free" && c.method != "bc");
    const Index recalibrate =
        c.bnRecalibrate >= 0 ? c.bnRecalibrate
                             : (c.method == "admm" || c.method == "rpr" || c.method == "inc" ? 20 : 0);

    TrainResult result;
    result.parameters = net->parameters().numel();
    for (ParameterBlock* b : net->parameters().constrained())
        if (quantized) result.quantizedParameters += b->value.size();

    // Output directory, checkpoint, resume.
    const bool out = !c.outDir.empty();
    const std::string ckptPath = out ? (fs::path(c.outDir) / "checkpoint.h5").string() : "";
    const std::string metricsPath = out ? (fs::path(c.outDir) / "metrics.csv").string() : "";
    Index startEpoch = 0, startBatch = 0;
    double elapsedBefore = 0;
    if (out) fs::create_directories(c.outDir);
    if (c.resume) {
        if (!fs::exists(ckptPath))
            throw std::runtime_error("train(): cannot resume: " + ckptPath + " does not exist");
        io::CheckpointReader in(ckptPath);
        const auto items = c.items();
        for (const auto& [k, v] : items) {
            if (!oneOf(k, kIdentity)) continue;
            if (!in.hasAttr("config", k))
                throw std::runtime_error("train(): " + ckptPath + " has no config entry '" + k + "'");
            const std::string stored = in.attrString("config", k);
            if (stored != v)
                throw std::runtime_error("train(): " + ckptPath + " was written for " + k + " = '" +
                                         stored + "', this run has '" + v + "'");
        }
        net->loadState(in, "net/");
        opt->load(in, "optim");
        startEpoch = in.attrInt("progress", "epoch");
        startBatch = in.attrInt("progress", "batch");
        elapsedBefore = in.attrDouble("progress", "seconds");
        result.bestTestAcc = in.attrDouble("progress", "best_test_acc");
        result.bestEpoch = in.attrInt("progress", "best_epoch");
        truncateMetrics(metricsPath, startEpoch);
    } else if (out) {
        std::ofstream m(metricsPath, std::ios::trunc);
        m << kMetricsHeader << '\n';
    }

    const std::string summaryPath = out ? (fs::path(c.outDir) / "summary.json").string() : "";
    auto elapsed = [&] {
        return elapsedBefore + std::chrono::duration<double>(Clock::now() - start).count();
    };
    auto saveCheckpoint = [&](Index epoch, Index batch) {
        if (!out || !c.checkpoint) return;
        io::CheckpointWriter w(ckptPath);
        for (const auto& [k, v] : c.items()) w.attr("config", k, v);
        // what the network was trained on: input C, H, W and the per-channel normalization
        // (export and evaluation need no training data to rebuild and deploy it)
        const auto channels = static_cast<Index>(data.mean.size());
        Vector shape(3);
        shape << static_cast<Scalar>(data.train.channels), static_cast<Scalar>(data.train.height),
            static_cast<Scalar>(data.train.width);
        w.write("input/shape", shape, Shape{3});
        w.write("input/mean", Eigen::Map<const Vector>(data.mean.data(), channels), Shape{channels});
        w.write("input/std", Eigen::Map<const Vector>(data.stddev.data(), channels), Shape{channels});
        net->saveState(w, "net/");
        opt->save(w, "optim");
        {
            optim::ScopedDeploy d(*opt, *net);  // params/ holds the deployable point
            for (const ParameterBlock* b : net->parameters().all())
                w.write("params/" + b->name, b->value, b->shape);
        }
        w.attr("progress", "epoch", static_cast<std::int64_t>(epoch));
        w.attr("progress", "batch", static_cast<std::int64_t>(batch));
        w.attr("progress", "seconds", elapsed());
        w.attr("progress", "best_test_acc", result.bestTestAcc);
        w.attr("progress", "best_epoch", static_cast<std::int64_t>(result.bestEpoch));
        w.close();
    };

    const Index nb = net->numBatches();
    const bool tty = progress && isatty(STDERR_FILENO) && progress == &std::cerr;
    Index epochsDone = startEpoch;
    for (Index epoch = startEpoch; epoch < c.epochs; ++epoch) {
        const auto t0 = Clock::now();
        Index firstBatch = 0;
        if (epoch == startEpoch && startBatch > 0) {
            firstBatch = startBatch;  // the checkpoint was taken mid-epoch (signal)
        } else {
            opt->setLearningRate(opt->trainSettings().lr.lr(epoch));
            net->shuffle(opt->rng());
            net->resetTrainMetrics();
        }
        double lossSum = 0;
        Index steps = 0;
        bool diverged = false;
        for (Index b = firstBatch; b < nb; ++b) {
            const double loss = opt->step(*net, b);
            if (!std::isfinite(loss) || opt->diverged()) {
                diverged = true;
                break;
            }
            lossSum += loss;
            ++steps;
            if (progress && (tty ? (b % 5 == 0 || b + 1 == nb) : ((b + 1) % std::max<Index>(nb / 5, 1) == 0))) {
                const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
                const double ips = static_cast<double>(steps * c.batchSize) / std::max(sec, 1e-9);
                const double left = static_cast<double>((nb - b - 1) + (c.epochs - epoch - 1) * nb) *
                                    static_cast<double>(c.batchSize) / std::max(ips, 1e-9);
                const auto tm = net->trainMetrics();
                std::ostringstream line;
                line << "epoch " << epoch + 1 << "/" << c.epochs << " batch " << b + 1 << "/" << nb
                     << " loss " << std::fixed << std::setprecision(4) << lossSum / steps << " acc "
                     << std::setprecision(2) << 100 * tm.accuracy << "% " << std::setprecision(0)
                     << ips << " img/s ETA " << formatDuration(left);
                if (tty) *progress << "\r" << line.str() << "\033[K" << std::flush;
                else *progress << line.str() << '\n' << std::flush;
            }
            if (stopRequested.load()) {
                if (tty) *progress << '\n';
                saveCheckpoint(epoch, b + 1);
                result.status = "interrupted";
                result.seconds = elapsed();
                if (out) writeSummary(summaryPath, c, result, epochsDone, *net);
                return result;
            }
        }
        if (tty) *progress << '\n';
        if (diverged) {
            result.status = "diverged";
            result.seconds = elapsed();
            if (out) writeSummary(summaryPath, c, result, epochsDone, *net);
            throw std::runtime_error(TERN_MSG("train(): the loss diverged (non-finite) in epoch "
                                              << epoch + 1 << "; lower --lr. The last good checkpoint is kept"
                                              << (out ? " in " + ckptPath : std::string())));
        }
        const optim::EpochStats st = opt->endEpoch(*net, epoch);
        EpochRecord r;
        r.epoch = epoch;
        const auto tm = net->trainMetrics();
        r.trainLoss = tm.loss;
        r.trainAcc = tm.accuracy;
        r.lr = st.lr;
        r.flipRatio = st.flipRatio;
        r.primalRes = st.primalRes;
        r.dualRes = st.dualRes;
        r.rho = st.rho;
        r.freezeFraction = st.freezeFraction;
        std::tie(r.wp, r.wn) = meanScales(*opt);
        r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        r.imagesPerSecond = static_cast<double>((nb - firstBatch) * c.batchSize) / std::max(r.seconds, 1e-9);
        {
            optim::ScopedDeploy d(*opt, *net);
            net->recalibrateBatchNorm(recalibrate);
            const Evaluation te = net->evaluateDataset(data.test, c.evalBatch);
            r.testLoss = te.loss;
            r.testAcc = te.accuracy;
            if (quantized) {
                result.layers = quantStats(*net, gran);
                Index nz = 0, total = 0;
                for (const auto& q : result.layers) {
                    nz += q.nonzeros;
                    total += q.total;
                    if (levels > 0 && q.maxDistinctPerGroup > levels)
                        throw std::runtime_error(TERN_MSG(
                            "train(): deployed block '" << q.block << "' has "
                            << q.maxDistinctPerGroup << " distinct values in one group; the set '"
                            << (c.projectionSpec().empty() ? c.method : c.projectionSpec())
                            << "' allows " << levels));
                }
                r.nonzeros = nz;
                r.sparsity = total ? 1.0 - static_cast<double>(nz) / static_cast<double>(total) : 0;
            }
            result.cost = networkCost(*net, result.layers, hasScale);
        }
        result.history.push_back(r);
        result.finalTestAcc = r.testAcc;
        if (r.testAcc > result.bestTestAcc || epoch == 0) {
            result.bestTestAcc = r.testAcc;
            result.bestEpoch = epoch;
        }
        epochsDone = epoch + 1;
        if (out) {
            std::ofstream m(metricsPath, std::ios::app);
            m << metricsRow(r) << '\n';
        }
        saveCheckpoint(epoch + 1, 0);
        if (progress) {
            *progress << "epoch " << epoch + 1 << "/" << c.epochs << " done: train loss " << std::fixed
                      << std::setprecision(4) << r.trainLoss << " acc " << std::setprecision(2)
                      << 100 * r.trainAcc << "%, test acc " << 100 * r.testAcc << "%, lr "
                      << std::setprecision(5) << r.lr << ", " << std::setprecision(1) << r.seconds
                      << " s, " << std::setprecision(0) << r.imagesPerSecond << " img/s";
            if (quantized)
                *progress << ", nonzeros " << r.nonzeros << " (sparsity " << std::setprecision(3)
                          << r.sparsity << ")";
            if (std::isfinite(r.freezeFraction))
                *progress << ", fraction " << std::setprecision(4) << r.freezeFraction;
            if (std::isfinite(r.rho))
                *progress << std::scientific << std::setprecision(2) << ", rho " << r.rho
                          << ", primal " << r.primalRes << ", dual " << r.dualRes << std::defaultfloat;
            *progress << '\n' << std::flush;
        }
    }
    if (c.epochs == startEpoch) {  // nothing to run: still report the deployed point
        optim::ScopedDeploy d(*opt, *net);
        net->recalibrateBatchNorm(recalibrate);
        result.finalTestAcc = net->evaluateDataset(data.test, c.evalBatch).accuracy;
        if (startEpoch == 0) {  // no epoch at all: the starting point is the best one seen
            result.bestTestAcc = result.finalTestAcc;
            result.bestEpoch = -1;
        }
        if (quantized) result.layers = quantStats(*net, gran);
        result.cost = networkCost(*net, result.layers, hasScale);
    }
    result.seconds = elapsed();
    if (out) writeSummary(summaryPath, c, result, epochsDone, *net);
    return result;
}

}  // namespace tern::nn
