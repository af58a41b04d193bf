// Per-layer sets in a training run (tern-train --projection conv1=ternary:exact,fc1=float): the
// blocks each entry constrains or leaves float, summary.json's set and bits per layer, the cost
// in bits, the checkpoint's sets, and an unknown layer refused before anything is written.
#define BOOST_TEST_MODULE layer_sets
#include <boost/test/unit_test.hpp>

#include "tern/deploy/model.hpp"
#include "tern/io/checkpoint.hpp"
#include "tern/io/dataset.hpp"
#include "tern/optim/block_sets.hpp"
#include "tern/run/train.hpp"
#include "testing/helpers.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <set>

using namespace tern;
using namespace tern::run;
using tern::testing::messageContains;
namespace fs = std::filesystem;

namespace {

TrainConfig tinyConfig(const std::string& method) {
    TrainConfig c;
    c.dataset = "mnist";
    c.dataDir = testing::bandsDataDir();
    c.model = "tiny";  // conv1 (float by default), fc1 (quantized), fc2 (float by default)
    c.epochs = 2;
    c.batchSize = 20;
    c.lr = 0.05;
    c.threads = 1;
    c.method = method;
    c.opt.admm.rho = 1e-3;
    c.opt.admm.rhoGrowth = 1.5;
    c.evalBatch = 64;
    return c;
}

nlohmann::json readJson(const std::string& path) {
    std::ifstream f(path);
    return nlohmann::json::parse(f);
}

/// summary.json's entry of `block` in "layers".
nlohmann::json layerOf(const nlohmann::json& summary, const std::string& block) {
    for (const auto& l : summary.at("layers"))
        if (l.at("block") == block) return l;
    BOOST_FAIL("summary.json has no layer " + block);
    return {};
}

std::set<float> distinct(const Vector& v) { return std::set<float>(v.data(), v.data() + v.size()); }

}  // namespace

/// conv1 (float by default) quantized, fc1 (quantized by default) left float: the deployed
/// conv1 is ternary, fc1 keeps its float values, and summary.json records both.
BOOST_AUTO_TEST_CASE(each_layer_gets_its_own_set_or_stays_float) {
    for (const std::string m : {"admm", "twn"}) {
        BOOST_TEST_CONTEXT("method " << m) {
            TrainConfig c = tinyConfig(m);
            c.projection = "conv1=ternary:exact,fc1=float";
            c.outDir = testing::tempDir("layer-sets-" + m);
            const TrainResult r = train(c, nullptr);
            BOOST_TEST(r.status == "completed");
            BOOST_REQUIRE_EQUAL(r.layers.size(), 1u);  // the one quantized layer
            BOOST_TEST(r.layers[0].block == "conv1.weights");
            BOOST_TEST(r.layers[0].maxDistinctPerGroup <= 3);
            BOOST_TEST(r.layers[0].bits == 2);

            io::CheckpointReader in(c.outDir + "/checkpoint.h5");  // params/: the deployed point
            const Vector conv1 = in.read("params/conv1.weights", in.shape("params/conv1.weights"));
            const Vector fc1 = in.read("params/fc1.weights", in.shape("params/fc1.weights"));
            std::set<float> codes = distinct(conv1);
            codes.erase(0.0f);
            BOOST_TEST(codes.size() <= 2u);  // {-a, 0, a}
            BOOST_TEST(distinct(fc1).size() > 10u);  // float
            if (m == "admm")  // the optimizer's record of each block's set
                BOOST_TEST(in.attrString("optim", "sets") == "conv1.weights=ternary:exact/tensor");

            const nlohmann::json s = readJson(c.outDir + "/summary.json");
            const nlohmann::json q = layerOf(s, "conv1.weights");
            BOOST_TEST(q.at("set").get<std::string>() == "ternary:exact/tensor");
            BOOST_TEST(q.at("bits").get<double>() == 2);
            for (const std::string f : {"fc1.weights", "fc2.weights"}) {
                BOOST_TEST(layerOf(s, f).at("set").get<std::string>() == "float");
                BOOST_TEST(layerOf(s, f).at("bits").get<double>() == 32);
            }
            BOOST_TEST(s.at("config").at("projection").get<std::string>() ==
                       (m == "admm" ? "ternary:exact,conv1=ternary:exact,fc1=float"
                                    : "ternary:twn,conv1=ternary:exact,fc1=float"));
            // storage: 2 bits per conv1 weight (+ its scale), 32 per float weight
            const double conv1Bits = 2.0 * conv1.size() + 32;
            BOOST_TEST(r.cost.storageBits >= conv1Bits + 32.0 * fc1.size());
        }
    }
}

/// A power-of-two layer beside a ternary one: its bits are the code width (pow2 with 3
/// exponents: 1 + ceil(log2 4) = 3) in summary.json and in the storage cost.
BOOST_AUTO_TEST_CASE(a_pow2_layer_counts_its_bits) {
    TrainConfig c = tinyConfig("admm");
    c.projection = "fc1=pow2:bits=3";
    c.outDir = testing::tempDir("layer-sets-pow2");
    const TrainResult r = train(c, nullptr);
    BOOST_REQUIRE_EQUAL(r.layers.size(), 1u);
    BOOST_TEST(r.layers[0].bits == 3);
    BOOST_TEST(r.layers[0].maxDistinctPerGroup <= 7);
    const nlohmann::json s = readJson(c.outDir + "/summary.json");
    BOOST_TEST(layerOf(s, "fc1.weights").at("set").get<std::string>() ==
               proj::makeProjection("pow2,bits=3")->name() + "/tensor");
    // the same run all ternary stores 1 bit less per fc1 weight
    TrainConfig t = tinyConfig("admm");
    t.outDir = testing::tempDir("layer-sets-ternary");
    const TrainResult rt = train(t, nullptr);
    BOOST_TEST(r.cost.storageBits - rt.cost.storageBits == static_cast<double>(r.layers[0].total));
}

/// An unknown layer: std::invalid_argument listing the model's layers, and the run directory's
/// checkpoint untouched.
BOOST_AUTO_TEST_CASE(an_unknown_layer_is_refused_before_anything_is_written) {
    TrainConfig c = tinyConfig("admm");
    c.outDir = testing::tempDir("layer-sets-unknown");
    train(c, nullptr);
    const auto before = fs::last_write_time(c.outDir + "/checkpoint.h5");
    const auto size = fs::file_size(c.outDir + "/metrics.csv");
    c.projection = "conv9=ternary:exact";
    c.epochs = 3;
    c.resume = true;
    BOOST_CHECK_EXCEPTION(train(c, nullptr), std::invalid_argument,
                          messageContains("model tiny has no layer 'conv9'; its layers: conv1, fc1, fc2"));
    BOOST_TEST((fs::last_write_time(c.outDir + "/checkpoint.h5") == before));
    BOOST_TEST(fs::file_size(c.outDir + "/metrics.csv") == size);
}

/// A resume with other per-layer sets is refused (the config's projection and the optimizer's
/// sets both differ).
BOOST_AUTO_TEST_CASE(a_resume_with_other_layer_sets_is_refused) {
    TrainConfig c = tinyConfig("admm");
    c.projection = "conv1=ternary:exact";
    c.outDir = testing::tempDir("layer-sets-resume");
    train(c, nullptr);
    c.epochs = 3;
    c.resume = true;
    c.projection = "conv1=pow2:bits=3";
    BOOST_CHECK_EXCEPTION(train(c, nullptr), std::runtime_error, messageContains("projection"));
}

/// tern-export of a per-layer run: the checkpoint records which blocks the run quantized
/// (/layers:constrained), so the deployed model has conv1 quantized and fc1 float, not the
/// model's defaults, and predicts as the trained network did.
BOOST_AUTO_TEST_CASE(a_per_layer_run_exports_with_its_own_layers) {
    TrainConfig c = tinyConfig("twn");
    c.projection = "conv1=ternary:exact,fc1=float";
    c.outDir = testing::tempDir("layer-sets-export");
    const TrainResult r = train(c, nullptr);
    io::CheckpointReader ck(c.outDir + "/checkpoint.h5");
    BOOST_TEST(ck.attrString("layers", "constrained") == "conv1.weights");
    deploy::TernaryModel m = deploy::TernaryModel::fromCheckpoint(c.outDir + "/checkpoint.h5");
    std::set<std::string> quantized, floats;
    for (const auto& l : m.layers())
        if (l.weighted()) (l.quantized() ? quantized : floats).insert(l.name);
    BOOST_TEST((quantized == std::set<std::string>{"conv1"}));
    BOOST_TEST(floats.count("fc1") == 1u);
    const io::DataSplit data = io::loadDataset("mnist", testing::bandsDataDir(), 0, 0);
    BOOST_TEST(m.accuracy(data.test) == r.finalTestAcc);
}
