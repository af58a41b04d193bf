#define BOOST_TEST_MODULE export_resnet
// Export of residual networks: BN folded through the blocks (the shortcut's own conv + BN
// too), truly ternary codes, the graph in the model file (version 4), scale propagation that
// keeps both inputs of every add in the same units, and predictions equal to the trained
// network's on every test image.
#include <boost/test/data/monomorphic.hpp>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include "tern/deploy/model.hpp"
#include "tern/deploy/model_file.hpp"
#include "tern/io/checkpoint.hpp"
#include "tern/io/dataset.hpp"
#include "tern/nn/layers.hpp"
#include "tern/nn/models.hpp"
#include "tern/optim/methods.hpp"
#include "tern/run/train.hpp"
#include "testing/helpers.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <random>

using namespace tern;
using namespace tern::nn;
using namespace tern::run;
using namespace tern::deploy;
using tern::testing::messageContains;
namespace bdata = boost::unit_test::data;

namespace {

struct Case {
    std::string method, shortcut, granularity;
};

std::ostream& operator<<(std::ostream& o, const Case& c) {
    return o << c.method << " shortcut " << c.shortcut << " " << c.granularity;
}

const std::vector<Case>& cases() {
    static const std::vector<Case> c{{"twn", "a", "tensor"},  {"ttq", "a", "filter"},
                                     {"admm", "projection", "tensor"},
                                     {"twn", "projection", "filter"}};
    return c;
}

TrainConfig resnetConfig(const Case& k) {
    TrainConfig c;
    c.dataset = "mnist";
    c.dataDir = testing::bandsDataDir();  // 240 + 90 images, 1 x 12 x 12, 3 classes
    c.model = "resnet20";
    c.width = 0.25;
    c.shortcut = k.shortcut;
    c.epochs = 2;
    c.batchSize = 24;
    c.lr = 0.05;
    c.threads = 1;
    c.method = k.method;
    c.granularity = k.granularity;
    c.quantizeLast = k.method == "ttq";  // TTQ's convention: the classifier quantized too
    c.evalBatch = 64;
    return c;
}

/// Every weight of the quantized blocks set to a_g * {-1, 0, +1} (a ternary network without
/// training), BN statistics random.
void ternarize(Network& net, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> u(0.5f, 1.5f);
    for (ParameterBlock* b : net.parameters().all()) {
        if (!b->constrained) continue;
        const float a = u(rng);
        for (Index i = 0; i < b->value.size(); ++i)
            b->value[i] = b->value[i] > 0.3f ? a : (b->value[i] < -0.3f ? -a : 0.0f);
    }
    testing::randomizeBatchNorm(net, rng);
}

std::vector<float> randomImages(Index n, const std::vector<Index>& in, std::uint64_t seed) {
    const Vector v = testing::randomVector(n * in[0] * in[1] * in[2], seed);
    return std::vector<float>(v.data(), v.data() + v.size());
}

}  // namespace

BOOST_AUTO_TEST_SUITE(trained)

BOOST_DATA_TEST_CASE(exported_resnet_predicts_like_the_trained_network, bdata::xrange(cases().size()), i) {
    const Case k = cases()[i];
    BOOST_TEST_MESSAGE("case " << k);
    TrainConfig c = resnetConfig(k);
    c.outDir = testing::tempDir("export-resnet-" + std::to_string(i));
    const TrainResult r = train(c, nullptr);
    BOOST_TEST_REQUIRE(r.status == "completed");
    const std::string ckpt = c.outDir + "/checkpoint.h5";

    io::DataSplit data;
    auto net = networkFromCheckpoint(ckpt, {}, &data);
    BOOST_TEST(!net->isChain());
    const std::vector<int> want = net->predict(data.test, 64);
    const std::vector<float> wantLogits = net->logits(data.test, 64);

    TernaryModel exported = TernaryModel::fromCheckpoint(ckpt);
    const std::string file = c.outDir + "/model.h5";
    exported.save(file);
    TernaryModel m = TernaryModel::load(file);
    BOOST_TEST(!m.isChain());
    BOOST_TEST(io::CheckpointReader(file, kModelFormat, kModelVersion).version() == 4);
    // the blocks: every add reads two layers, the option-A shortcut or the projection's conv
    Index adds = 0, shortcuts = 0, downs = 0, folded = 0, ternary = 0;
    for (const DeployedLayer& l : m.layers()) {
        adds += l.kind == DeployedKind::Add;
        shortcuts += l.kind == DeployedKind::Shortcut;
        downs += l.kind == DeployedKind::Conv && l.name.find(".down") != std::string::npos;
        folded += l.weighted() && l.foldedBatchNorm;
        ternary += l.ternary();
        if (l.kind == DeployedKind::Add) BOOST_TEST(l.inputs.size() == 2u);
    }
    BOOST_TEST(adds == 9);
    BOOST_TEST(shortcuts == (k.shortcut == "a" ? 2 : 0));
    BOOST_TEST(downs == (k.shortcut == "projection" ? 2 : 0));
    BOOST_TEST(folded == 19 + downs);  // every conv has its BN folded
    BOOST_TEST(ternary == 18 + downs + (k.method == "ttq"));  // first conv float, fc quantized for ttq
    // The trained network's predictions on every test image, and its logits: the per-layer
    // folding on normalized images, the propagated model (the default) on raw ones (one
    // channel: 1/std folds; the first conv pads, so the mean stays an input offset).
    ExportOptions perLayer;
    perLayer.propagateScales = false;
    TernaryModel plain = TernaryModel::fromCheckpoint(ckpt, perLayer);
    BOOST_TEST(!plain.folding().propagated);
    io::Dataset raw = io::readIdx(testing::bandsDataDir(), "test", "mnist/test");
    m.prepareInput(raw);
    BOOST_TEST(m.folding().rawInput);
    const std::vector<float> normOut = plain.logits(data.test, 7);
    const std::vector<float> rawOut = m.logits(raw, 64, true);
    const std::vector<int> gotPlain = plain.predict(data.test, 64), gotRaw = m.predict(raw, 64);
    Index ties = 0;
    for (Index j = 0; j < data.test.count; ++j) {
        // a different float rounding can flip the argmax only where the trained network's top
        // two logits are within rounding error of each other (expected: none)
        std::vector<float> row(wantLogits.begin() + j * 3, wantLogits.begin() + (j + 1) * 3);
        std::sort(row.rbegin(), row.rend());
        const bool tie = row[0] - row[1] <= 1e-3f * (1 + std::abs(row[0]));
        ties += tie;
        if (!tie) {
            BOOST_TEST(gotPlain[size_t(j)] == want[size_t(j)], "image " << j);
            BOOST_TEST(gotRaw[size_t(j)] == want[size_t(j)], "image " << j);
        }
        for (Index c = 0; c < 3; ++c) {
            const float w = wantLogits[size_t(j * 3 + c)];
            BOOST_TEST(std::abs(normOut[size_t(j * 3 + c)] - w) <= 1e-3f * (1 + std::abs(w)));
            BOOST_TEST(std::abs(rawOut[size_t(j * 3 + c)] - w) <= 1e-3f * (1 + std::abs(w)));
        }
    }
    BOOST_TEST(ties == 0);
    BOOST_TEST(m.accuracy(raw, 64) == r.finalTestAcc, boost::test_tools::tolerance(1e-9));
    BOOST_TEST(plain.accuracy(data.test, 64) == r.finalTestAcc, boost::test_tools::tolerance(1e-9));
    // the cost counts the adds
    const DeployedCost cost = m.cost();
    BOOST_TEST(cost.additions > 0);
    BOOST_TEST(cost.storageBits < cost.float32Bits);
}

BOOST_DATA_TEST_CASE(every_method_trains_a_resnet, bdata::xrange(optim::methodNames().size()), i) {
    // one epoch of each method on a quarter-width ResNet-20 (per-filter scales where the
    // method takes them): it completes, its loss is finite, and the quantized methods leave
    // quantized blocks (their checkpoint exports unless the method is float)
    const std::string method = optim::methodNames()[i];
    TrainConfig c = resnetConfig({method, "a", method == "gtc" ? "tensor" : "filter"});
    c.epochs = 1;
    c.outDir = testing::tempDir("resnet-method-" + method);
    const TrainResult r = train(c, nullptr);
    BOOST_TEST_REQUIRE(r.status == "completed", method);
    BOOST_TEST(std::isfinite(r.history.back().trainLoss), method);
    if (method != "fp") {
        BOOST_TEST(r.quantizedParameters > 0, method);
        const TernaryModel m = TernaryModel::fromCheckpoint(c.outDir + "/checkpoint.h5");
        Index quantized = 0;
        for (const auto& l : m.layers()) quantized += l.quantized();
        BOOST_TEST(quantized >= 18, method);
    }
}

BOOST_AUTO_TEST_CASE(resume_and_init_work_on_a_resnet) {
    // --resume continues row for row; --init starts from a float ResNet's checkpoint
    TrainConfig c = resnetConfig({"twn", "a", "tensor"});
    c.epochs = 2;
    c.outDir = testing::tempDir("resnet-full");
    const TrainResult full = train(c, nullptr);
    TrainConfig a = c;
    a.outDir = testing::tempDir("resnet-resumed");
    a.epochs = 1;
    BOOST_TEST_REQUIRE(train(a, nullptr).status == "completed");
    a.epochs = 2;
    a.resume = true;
    const TrainResult resumed = train(a, nullptr);
    BOOST_TEST(resumed.finalTestAcc == full.finalTestAcc);
    BOOST_TEST(resumed.history.back().trainLoss == full.history.back().trainLoss);
    BOOST_TEST(resumed.history.back().nonzeros == full.history.back().nonzeros);
    TrainConfig f = resnetConfig({"fp", "a", "tensor"});
    f.outDir = testing::tempDir("resnet-fp");
    f.epochs = 1;
    BOOST_TEST_REQUIRE(train(f, nullptr).status == "completed");
    TrainConfig t = resnetConfig({"ttq", "a", "tensor"});
    t.init = f.outDir;
    t.epochs = 1;
    t.outDir = testing::tempDir("resnet-ttq-init");
    BOOST_TEST(train(t, nullptr).status == "completed");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(from_network)

BOOST_AUTO_TEST_CASE(resnet18_and_propagation_through_adds) {
    // ResNet-18 (projection shortcuts, padded max pool) at 1/16 width on 3x32x32, and
    // ResNet-20 without BN with fixed power-of-two gains (uniform scales that propagation
    // would move forward, unevenly along the two branches of an add: the model falls back to
    // absorbing them), both ternarized by hand.
    struct Net {
        std::unique_ptr<Network> net;
        bool bn;
    };
    ModelOptions r18;
    r18.width = 1.0 / 16;
    ModelOptions noBn;
    noBn.width = 0.25;
    noBn.batchNorm = false;
    noBn.gains = true;
    noBn.quantizeFirst = noBn.quantizeLast = true;
    std::vector<Net> nets;
    nets.push_back({resnet18({3, 32, 32}, 10, r18), true});
    nets.push_back({cifarResnet(20, {3, 16, 16}, 10, noBn), false});
    for (auto& [net, bn] : nets) {
        net->initialize(3);
        ternarize(*net, 4);
        const auto x = randomImages(4, net->inputShape(), 5);
        const auto want = net->logits(x.data(), 4);
        for (bool propagate : {false, true}) {
            TernaryModel m = TernaryModel::fromNetwork(*net);
            m.setNormalization(std::vector<float>(3, 0.1f), std::vector<float>(3, 0.5f));
            if (propagate) m.propagateScales();
            // through the file as well
            const std::string file = testing::tempDir("resnet-from-net") + "/m.h5";
            m.save(file);
            TernaryModel back = TernaryModel::load(file);
            std::vector<float> in = x;
            if (back.folding().rawInput)  // the model takes raw images: undo the normalization
                for (float& v : in) v = v * 0.5f + 0.1f;
            std::vector<float> got(want.size());
            back.logits(in.data(), 4, got.data());
            for (size_t j = 0; j < got.size(); ++j) {
                const double g = double(got[j]) * back.folding().logitScale;
                BOOST_TEST(std::abs(g - want[j]) <= 1e-3 * std::max(1.0, std::abs(double(want[j]))),
                           net->name() << (propagate ? " propagated" : "") << " logit " << j
                                       << ": " << g << " vs " << want[j]);
            }
            if (!bn) BOOST_TEST(back.multiplicationFree() == false);  // not every s_c is 1
        }
    }
}

BOOST_AUTO_TEST_CASE(a_global_pool_may_give_the_logits) {
    // conv (3 filters) -> gap: the logits are the channel means; the same with an identity fc
    // after the pool (the usual path) gives the same numbers
    DeployedLayer conv;
    conv.name = "conv";
    conv.kind = DeployedKind::Conv;
    conv.in = 1;
    conv.out = 3;
    conv.kernel = 3;
    conv.padding = 1;
    conv.weightShape = Shape{3, 1, 3, 3};
    conv.weights = testing::randomVector(27, 1);
    conv.scale = Vector::Ones(3);
    conv.bias = testing::randomVector(3, 2);
    DeployedLayer gap;
    gap.name = "gap";
    gap.kind = DeployedKind::GlobalPool;
    DeployedLayer fc;
    fc.name = "fc";
    fc.kind = DeployedKind::Fc;
    fc.in = fc.out = 3;
    fc.weightShape = Shape{3, 3};
    fc.weights = Vector::Zero(9);
    fc.weights[0] = fc.weights[4] = fc.weights[8] = 1;
    fc.scale = Vector::Ones(3);
    fc.bias = Vector::Zero(3);
    TernaryModel last({conv, gap}, {1, 8, 8}, 3), withFc({conv, gap, fc}, {1, 8, 8}, 3);
    const auto x = randomImages(5, {1, 8, 8}, 3);
    std::vector<float> a(15), b(15);
    last.logits(x.data(), 5, a.data());
    withFc.logits(x.data(), 5, b.data());
    for (size_t j = 0; j < a.size(); ++j) BOOST_TEST(a[j] == b[j], boost::test_tools::tolerance(1e-5f));
}

BOOST_AUTO_TEST_CASE(graph_model_files_refuse_damage) {
    ModelOptions o;
    o.width = 0.25;
    auto net = cifarResnet(20, {1, 12, 12}, 3, o);
    net->initialize(1);
    ternarize(*net, 2);
    const TernaryModel m = TernaryModel::fromNetwork(*net);
    // an add that reads a later layer, a layer read by nobody
    std::vector<DeployedLayer> layers = m.layers();
    for (auto& l : layers)
        if (l.kind == DeployedKind::Add) {
            l.inputs[1] = static_cast<int>(layers.size()) - 1;
            break;
        }
    BOOST_CHECK_EXCEPTION(TernaryModel(layers, m.input(), 3), std::runtime_error,
                          messageContains("not an earlier one"));
    layers = m.layers();
    for (auto& l : layers)  // the add of the first option-A block: its shortcut is then unread
        if (l.kind == DeployedKind::Add &&
            layers[static_cast<size_t>(l.inputs[1])].kind == DeployedKind::Shortcut) {
            l.kind = DeployedKind::Relu;
            l.inputs.resize(1);
            break;
        }
    BOOST_CHECK_EXCEPTION(TernaryModel(layers, m.input(), 3), std::runtime_error,
                          messageContains("is read by no later layer"));
}

BOOST_AUTO_TEST_SUITE_END()
