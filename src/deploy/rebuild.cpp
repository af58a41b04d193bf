// The trained network of a tern-train checkpoint, rebuilt from its config, and the export of a
// checkpoint into a TernaryModel (include/tern/deploy/rebuild.hpp).
#include "tern/deploy/rebuild.hpp"

#include "tern/core/error.hpp"
#include "tern/core/format.hpp"
#include "tern/deploy/model.hpp"
#include "tern/io/checkpoint.hpp"
#include "tern/io/integrity.hpp"
#include "tern/nn/gain.hpp"
#include "tern/nn/layers.hpp"
#include "tern/nn/loss.hpp"
#include "tern/nn/models.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <stdexcept>

namespace tern::deploy {

namespace fs = std::filesystem;

namespace {

/// Default image size of a dataset when the data cannot be read.
std::vector<Index> standardInput(const std::string& dataset) {
    if (dataset == "cifar10") return {3, 32, 32};
    return {1, 28, 28};
}

bool parseBool(const std::string& v, const std::string& key, const std::string& where) {
    if (v == "true" || v == "1") return true;
    if (v == "false" || v == "0") return false;
    throw std::runtime_error(where + ": config '" + key + "' is '" + v + "', expected true/false");
}

/// The number a config entry holds; a garbled entry is an error naming the key and the file.
double parseNumber(const std::string& v, const std::string& key, const std::string& where) {
    const std::optional<double> x = parseWholeNumber(v);
    if (!x || !std::isfinite(*x))
        throw std::runtime_error(where + ": config '" + key + "' is '" + v + "', not a number");
    return *x;
}

Index parseCount(const std::string& v, const std::string& key, const std::string& where) {
    const double x = parseNumber(v, key, where);
    if (x < 0 || x != std::floor(x) || x > 1e15)
        throw std::runtime_error(where + ": config '" + key + "' is '" + v +
                                 "', not a count (an integer >= 0)");
    return static_cast<Index>(x);
}

}  // namespace

namespace {
std::unique_ptr<nn::Network> networkUnguarded(const std::string& path, const ExportOptions& opt,
                                              io::DataSplit* data);
TernaryModel exportUnguarded(const std::string& path, const ExportOptions& opt);
}  // namespace

// A checkpoint without tern's checksum is read in a child process first (libhdf5 may crash on
// a damaged one): io::readUnverifiedSafely.
std::unique_ptr<nn::Network> networkFromCheckpoint(const std::string& path,
                                                   const ExportOptions& opt, io::DataSplit* data) {
    io::readUnverifiedSafely(path, "networkFromCheckpoint()", [&] {
        io::DataSplit scratch;
        networkUnguarded(path, opt, data ? &scratch : nullptr);
    });
    return networkUnguarded(path, opt, data);
}

TernaryModel TernaryModel::fromCheckpoint(const std::string& path, const ExportOptions& opt) {
    io::readUnverifiedSafely(path, "TernaryModel::fromCheckpoint()",
                             [&] { exportUnguarded(path, opt); });
    return exportUnguarded(path, opt);
}

namespace {

std::unique_ptr<nn::Network> networkUnguarded(const std::string& path, const ExportOptions& opt,
                                              io::DataSplit* data) {
    const std::string where = "networkFromCheckpoint(): '" + path + "'";
    std::unique_ptr<io::CheckpointReader> r;
    try {
        r = std::make_unique<io::CheckpointReader>(path);
    } catch (const std::runtime_error& e) {
        if (std::string(e.what()).find("format 'tern-model'") != std::string::npos)
            throw std::runtime_error(where + " is a tern model file, not a checkpoint");
        throw;
    }
    auto cfg = [&](const std::string& key) {
        if (!r->hasAttr("config", key))
            throw std::runtime_error(where + " has no config entry '" + key +
                                     "' (not written by tern-train?)");
        return r->attrString("config", key);
    };
    nn::ModelOptions mo;
    const std::string model = cfg("model");
    mo.batchNorm = parseBool(cfg("bn"), "bn", where);
    mo.width = parseNumber(cfg("width"), "width", where);
    mo.dropout = static_cast<float>(parseNumber(cfg("dropout"), "dropout", where));
    mo.quantizeFirst = parseBool(cfg("quantize-first"), "quantize-first", where);
    mo.quantizeLast = parseBool(cfg("quantize-last"), "quantize-last", where);
    mo.loss = nn::parseLoss(cfg("loss"));
    // written since ResNets came (checkpoints before have no residual models)
    if (r->hasAttr("config", "shortcut")) mo.shortcut = nn::parseShortcut(cfg("shortcut"));
    // Fixed gains (nn::Gain) leave their values under net/<name>.gain; checkpoints written
    // before gains existed have none.
    mo.gains = r->hasGroup("net") && nn::hasGainState(r->keys("net"));
    const std::string dataset = cfg("dataset");
    std::vector<Index> input = opt.input;
    if (input.empty() && r->has("input/shape")) {  // written by tern-train since session 3
        const Vector s = r->read("input/shape", Shape{3});
        for (Index i = 0; i < 3; ++i) input.push_back(static_cast<Index>(s[i]));
    }
    int classes = 10;
    // The training data gives the image size and the normalization (the checkpoint has neither).
    std::string dir = opt.dataDir;
    if (dir.empty()) dir = r->hasAttr("config", "data-dir") ? cfg("data-dir") : "";
    if (dir.empty()) dir = dataset == "cifar10" ? "data/cifar-10-batches-bin" : "data/" + dataset;
    const Index trainLimit =
        r->hasAttr("config", "train-limit") ? parseCount(cfg("train-limit"), "train-limit", where) : 0;
    if (data) {
        std::error_code ec;
        if (fs::is_directory(dir, ec)) {
            try {
                *data = io::loadDataset(dataset, dir, trainLimit, 0);
            } catch (const std::exception&) {
                *data = io::DataSplit{};
            }
        }
        if (data->train.count > 0) {
            if (input.empty())
                input = {data->train.channels, data->train.height, data->train.width};
            classes = data->train.numClasses;
        }
    }
    if (input.empty()) input = standardInput(dataset);
    if (input.size() != 3) fail("networkFromCheckpoint()", "input must be C, H, W");
    if (r->has("input/classes"))  // written by tern-train since image folders
        classes = static_cast<int>(r->read("input/classes", Shape{1})[0]);
    auto net = nn::makeModel(model, input, classes, mo);
    // The blocks the run quantized, where it recorded them (tern-train since per-layer sets:
    // `--projection conv1=ternary:exact,fc1=float` changes the model's defaults)
    if (r->hasAttr("layers", "constrained")) {
        const std::string list = r->attrString("layers", "constrained");
        std::vector<std::string> names;
        for (size_t start = 0; start <= list.size();) {
            const size_t end = std::min(list.find(',', start), list.size());
            if (end > start) names.push_back(list.substr(start, end - start));
            start = end + 1;
        }
        for (const std::string& n : names)
            if (!net->parameters().has(n))
                throw std::runtime_error(where + ": its quantized block '" + n + "' is not a block of " + model);
        for (ParameterBlock* b : net->parameters().all())
            b->constrained = std::find(names.begin(), names.end(), b->name) != names.end();
    }
    for (ParameterBlock* b : net->parameters().all()) {
        try {
            b->value = r->read("params/" + b->name, b->shape);
        } catch (const std::invalid_argument& e) {
            throw std::runtime_error(where + ": the model '" + model + "' rebuilt for input " +
                                     dimsString(input) + " does not match it (" + e.what() +
                                     "); give the image size (--input C,H,W) or the data dir");
        } catch (const std::out_of_range& e) {
            throw std::runtime_error(where + ": " + e.what());
        }
    }
    net->parameters().requireFinite(where);
    for (const auto& l : net->layers())
        if (dynamic_cast<const nn::BatchNorm*>(l.get()) || dynamic_cast<const nn::Gain*>(l.get()))
            try {
                l->loadState(*r, "net/");
            } catch (const std::invalid_argument& e) {
                throw std::runtime_error(where + ": " + e.what());
            }
    return net;
}

TernaryModel exportUnguarded(const std::string& path, const ExportOptions& opt) {
    io::DataSplit data;
    // The normalization comes from the checkpoint; older checkpoints need the training data.
    bool recorded = false;
    try {
        recorded = io::CheckpointReader(path).has("input/mean");
    } catch (const std::exception&) {
        // not a readable checkpoint: networkFromCheckpoint() says what is wrong
    }
    auto net = networkUnguarded(path, opt, recorded ? nullptr : &data);
    io::CheckpointReader r(path);
    TernaryModel m;
    try {
        m = TernaryModel::fromNetwork(*net, opt.tolerance);
    } catch (const std::runtime_error& e) {
        const std::string method =
            r.hasAttr("config", "method") ? r.attrString("config", "method") : "?";
        throw std::runtime_error(
            "TernaryModel::fromCheckpoint(): '" + path + "': " + e.what() + " (method '" + method +
            "'" + (method == "fp" ? ": a float baseline has no ternary weights" : "") + ")");
    }
    for (const auto& k : infoKeys())
        if (r.hasAttr("config", k)) m.addInfo(k, r.attrString("config", k));
    m.addInfo("checkpoint", path);
    if (recorded) {
        const auto channels = static_cast<Index>(m.input().at(0));
        const Vector mu = r.read("input/mean", Shape{channels}),
                     sd = r.read("input/std", Shape{channels});
        try {
            m.setNormalization(std::vector<float>(mu.data(), mu.data() + channels),
                               std::vector<float>(sd.data(), sd.data() + channels));
        } catch (const std::invalid_argument& e) {
            throw std::runtime_error("TernaryModel::fromCheckpoint(): '" + path + "': input/: " +
                                     e.what());
        }
    } else if (data.train.count > 0) {
        m.setNormalization(data.mean, data.stddev);
    }
    if (opt.propagateScales) m.propagateScales();
    return m;
}

}  // namespace

}  // namespace tern::deploy
