#define BOOST_TEST_MODULE export
#include <boost/test/data/monomorphic.hpp>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include "tern/io/checkpoint.hpp"
#include "tern/deploy/codes.hpp"
#include "tern/deploy/model.hpp"
#include "tern/deploy/model_file.hpp"
#include "tern/nn/gain.hpp"
#include "tern/nn/layers.hpp"
#include "tern/nn/models.hpp"
#include "tern/proj/gtc.hpp"
#include "tern/run/train.hpp"
#include "testing/helpers.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <random>

using namespace tern;
using namespace tern::nn;
using namespace tern::run;
using namespace tern::deploy;
using tern::testing::messageContains;
namespace bdata = boost::unit_test::data;
namespace fs = std::filesystem;

namespace {

const std::string& dataDir() { return testing::bandsDataDir(); }

struct Case {
    std::string method;
    bool bn;
    std::string alpha;
    std::string granularity;
    bool quantizeFirst = false, quantizeLast = false;
};

std::ostream& operator<<(std::ostream& o, const Case& c) {
    return o << c.method << (c.bn ? " bn" : " no-bn") << " alpha=" << c.alpha << " "
             << c.granularity << (c.quantizeFirst ? " q-first" : "") << (c.quantizeLast ? " q-last" : "");
}

std::vector<Case> cases() {
    std::vector<Case> out;
    for (const std::string m : {"admm", "twn", "ttq"})
        for (const bool bn : {true, false})
            for (const std::string a : {"free", "one"})
                for (const std::string g : {"tensor", "filter"})
                    if (m != "ttq" || a == "free") out.push_back({m, bn, a, g});
    out.push_back({"admm", false, "one", "filter", true, true});
    out.push_back({"admm", true, "one", "tensor", true, true});
    // whole-network ternary without BN, alpha free per tensor: propagation makes it
    // multiplication-free (docs/export.md section 1)
    out.push_back({"admm", false, "free", "tensor", true, true});
    out.push_back({"twn", false, "free", "tensor", true, true});
    return out;
}

TrainConfig tinyConfig(const Case& k) {
    TrainConfig c;
    c.dataset = "mnist";
    c.dataDir = dataDir();
    c.model = "tiny";
    c.epochs = 3;
    c.batchSize = 20;
    c.lr = 0.05;
    c.threads = 1;
    c.method = k.method;
    c.batchNorm = k.bn;
    c.alpha = k.alpha;
    c.granularity = k.granularity;
    c.quantizeFirst = k.quantizeFirst;
    c.quantizeLast = k.quantizeLast;
    c.opt.admm.rho = 1e-3;
    c.opt.admm.rhoGrowth = 1.5;
    c.evalBatch = 64;
    return c;
}

/// Trains once per configuration; returns the run's result and its output directory.
std::pair<TrainResult, std::string> trained(const TrainConfig& c) {
    TrainConfig run = c;
    run.outDir = testing::tempDir("export-run-" + c.method);
    TrainResult r = train(run, nullptr);
    BOOST_TEST_REQUIRE(r.status == "completed");
    return {r, run.outDir};
}

bool close(double a, double b, double rel = 2e-5) {
    return std::abs(a - b) <= rel * std::max({std::abs(a), std::abs(b), 1e-6});
}

}  // namespace

BOOST_AUTO_TEST_SUITE(packing)

BOOST_AUTO_TEST_CASE(pack_unpack_round_trip_and_layout) {
    for (Index n : {0, 1, 3, 4, 5, 17, 1000}) {
        std::mt19937_64 rng(static_cast<std::uint64_t>(n));
        std::vector<std::int8_t> codes(static_cast<size_t>(n));
        for (auto& c : codes) c = static_cast<std::int8_t>(static_cast<int>(rng() % 3) - 1);
        const auto packed = packCodes(codes);
        BOOST_TEST(static_cast<Index>(packed.size()) == (n + 3) / 4);
        BOOST_TEST(unpackCodes(packed, n) == codes);
    }
    // First code in the low bits; 0 -> 00, +1 -> 01, -1 -> 10.
    const auto p = packCodes({1, -1, 0, 1, -1});
    BOOST_TEST(p.size() == 2u);
    BOOST_TEST(int(p[0]) == (0b01 | 0b10 << 2 | 0b00 << 4 | 0b01 << 6));
    BOOST_TEST(int(p[1]) == 0b10);
}

BOOST_AUTO_TEST_CASE(rejects_bad_codes_and_bits) {
    BOOST_CHECK_EXCEPTION(packCodes({0, 2}), std::invalid_argument, messageContains("code 1 is 2"));
    BOOST_CHECK_EXCEPTION(unpackCodes({0b11}, 1), std::invalid_argument, messageContains("0b11"));
    BOOST_CHECK_EXCEPTION(unpackCodes({0, 0}, 3), std::invalid_argument,
                          messageContains("2 bytes cannot hold 3 codes"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(power_of_two_codes)

namespace {

/// A constrained block `name` of `shape` holding `values`.
ParameterBlock block(const std::string& name, Shape shape, const std::vector<float>& values) {
    ParameterBlock b;
    b.name = name;
    b.shape = std::move(shape);
    b.value = Vector::Map(values.data(), static_cast<Index>(values.size()));
    b.constrained = true;
    return b;
}

/// The value a power-of-two code stands for, computed here from the format's definition:
/// a_g * sign * 2^(m + |code| - 1), 0 for code 0.
double decoded(const PowerOfTwoCodes& p, Index i, Index n) {
    const int c = p.codes[static_cast<size_t>(i)];
    if (c == 0) return 0;
    const double a = p.groupScale[i / (n / p.groups)];
    return (c > 0 ? a : -a) * std::ldexp(1.0, p.exponentMin + std::abs(c) - 1);
}

/// Every value decodes to itself exactly.
void requireExact(const ParameterBlock& b, const PowerOfTwoCodes& p) {
    const Index n = b.value.size();
    BOOST_TEST_REQUIRE(static_cast<Index>(p.codes.size()) == n);
    for (Index i = 0; i < n; ++i)
        BOOST_TEST(decoded(p, i, n) == double(b.value[i]), b.name << "[" << i << "]");
}

/// The smallest b with 2^(b-1) >= R + 1: a sign bit and R + 1 magnitudes (zero included).
int expectedBits(int range) {
    int b = 1;
    while ((1 << (b - 1)) < range + 1) ++b;
    return b;
}

}  // namespace

BOOST_AUTO_TEST_CASE(encode_decode_round_trip) {
    // Per tensor, values that are powers of two themselves (GTC), with zeros: a = 1, the
    // exponents are the values'.
    const ParameterBlock gtc = block("gtc.weights", Shape{2, 4},
                                     {0.5f, -0.25f, 0, 0.03125f, -0.5f, 0, 0.125f, -0.03125f});
    const PowerOfTwoCodes g = encodePowerOfTwo(gtc, 1e-6);
    BOOST_TEST(g.groups == 1);
    BOOST_TEST(g.groupScale[0] == 1.0f);
    BOOST_TEST(g.exponentMin == -5);
    BOOST_TEST(g.exponentMax == -1);
    BOOST_TEST(g.bits == 4);  // 5 exponents and zero: 11 codes
    BOOST_TEST(g.codes == std::vector<std::int8_t>({5, -4, 0, 1, -5, 0, 3, -1}),
               boost::test_tools::per_element());
    requireExact(gtc, g);

    // Per tensor, a free scale a * {0, +-1, +-2, +-4} (pow2, bits 3): a_g = the smallest
    // magnitude, exponents 0..2.
    const float a = 0.3f;
    const ParameterBlock free = block("pow2.weights", Shape{2, 3}, {a, -2 * a, 0, 4 * a, -a, 2 * a});
    const PowerOfTwoCodes f = encodePowerOfTwo(free, 1e-6);
    BOOST_TEST(f.groups == 1);
    BOOST_TEST(f.groupScale[0] == a);
    BOOST_TEST(f.exponentMin == 0);
    BOOST_TEST(f.exponentMax == 2);
    BOOST_TEST(f.bits == 3);
    requireExact(free, f);

    // Per filter: each filter its own scale (0.3, 0.7: no common a), one filter all zero
    // (a_g = 1), one of powers of two (a_g = 1); exponents from all groups share one offset.
    const float b = 0.7f;
    const ParameterBlock filters =
        block("conv.weights", Shape{4, 1, 1, 3},
              {a, 2 * a, -8 * a, -b, 0, 4 * b, 0, 0, 0, 0.25f, -0.5f, 0});
    const PowerOfTwoCodes pf = encodePowerOfTwo(filters, 1e-6);
    BOOST_TEST(pf.groups == 4);
    BOOST_TEST(pf.groupScale[0] == a);
    BOOST_TEST(pf.groupScale[1] == b);
    BOOST_TEST(pf.groupScale[2] == 1.0f);
    BOOST_TEST(pf.groupScale[3] == 1.0f);
    BOOST_TEST(pf.exponentMin == -2);  // 0.25 = 2^-2
    BOOST_TEST(pf.exponentMax == 3);   // 8a
    requireExact(filters, pf);

    // A single exponent: power-of-two codes exist (2 bits), but the block is ternary, and a
    // ternary block stays ternary.
    const ParameterBlock one = block("one.weights", Shape{1, 3}, {0.25f, 0, -0.25f});
    const PowerOfTwoCodes o = encodePowerOfTwo(one, 1e-6);
    BOOST_TEST(o.exponentMin == o.exponentMax);
    BOOST_TEST(o.bits == 2);
    requireExact(one, o);
    BOOST_TEST((encodeQuantized(one, 1e-6).coding == WeightCoding::Ternary));
    BOOST_TEST((encodeQuantized(gtc, 1e-6).coding == WeightCoding::PowerOfTwo));
    BOOST_TEST((encodeQuantized(free, 1e-6).coding == WeightCoding::PowerOfTwo));

    // Wide ranges: 121 exponents (2^-60 .. 2^60) take 8 bits; 128 do not fit an 8-bit code.
    std::vector<float> wide;
    for (int e = -60; e <= 60; ++e) wide.push_back(std::ldexp(e % 2 ? -1.0f : 1.0f, e));
    const ParameterBlock w = block("wide.weights", Shape{1, static_cast<Index>(wide.size())}, wide);
    const PowerOfTwoCodes pw = encodePowerOfTwo(w, 1e-6);
    BOOST_TEST(pw.exponentMin == -60);
    BOOST_TEST(pw.exponentMax == 60);
    BOOST_TEST(pw.bits == 8);
    requireExact(w, pw);
    std::vector<float> tooWide;
    for (int e = -64; e <= 63; ++e) tooWide.push_back(std::ldexp(1.0f, e));
    BOOST_CHECK_EXCEPTION(
        encodePowerOfTwo(block("huge.weights", Shape{1, 128}, tooWide), 1e-6), std::runtime_error,
        messageContains("block 'huge.weights' is not power-of-two: it uses the exponents -64..63: "
                        "128 of them, more than the 127"));

    // A value that is not a power of two (times its filter's smallest magnitude): named with its
    // block, filter, index and the scale it was measured against.
    const ParameterBlock bad = block("fc1.weights", Shape{2, 3}, {0.25f, 0.5f, -1, 0.1f, 0.2f, 0.3f});
    BOOST_CHECK_EXCEPTION(encodePowerOfTwo(bad, 1e-6), std::runtime_error,
                          messageContains("block 'fc1.weights' is not power-of-two: filter 1 holds "
                                          "0.300000012 (value 5), which is not 0.100000001 times "
                                          "a power of two"));
    BOOST_CHECK_EXCEPTION(encodeQuantized(bad, 1e-6), std::runtime_error,
                          messageContains("is not ternary: filter 0 holds"));
    BOOST_CHECK_EXCEPTION(encodeQuantized(bad, 1e-6), std::runtime_error,
                          messageContains("and not power-of-two: filter 1 holds 0.300000012"));
    const ParameterBlock nan = block("nan.weights", Shape{1, 2}, {0.5f, std::nanf("")});
    BOOST_CHECK_EXCEPTION(encodePowerOfTwo(nan, 1e-6), std::runtime_error,
                          messageContains("filter 0 holds nan (value 1)"));
}

BOOST_AUTO_TEST_CASE(bit_widths_against_the_formula) {
    // R exponents m..m+R-1 (both signs, and zeros): the stored width has room for R + 1
    // magnitudes and a sign; GTC's count (no zero) is GtcQuantizer's own.
    for (int range = 1; range <= 17; ++range)
        for (int m : {-9, 0, 4}) {
            std::vector<float> v{0.0f};
            for (int e = m; e < m + range; ++e) {
                v.push_back(std::ldexp(1.0f, e));
                v.push_back(-std::ldexp(1.0f, e));
            }
            const auto n = static_cast<Index>(v.size());
            const ParameterBlock b = block("b.weights", Shape{1, n}, v);
            const PowerOfTwoCodes p = encodePowerOfTwo(b, 1e-6);
            BOOST_TEST(p.exponentMin == m);
            BOOST_TEST(p.exponentMax == m + range - 1);
            BOOST_TEST(p.bits == expectedBits(range), "R " << range);
            BOOST_TEST(powerOfTwoCodeBits(m, m + range - 1) == p.bits);
            requireExact(b, p);
            // GTC at theta = (0, 1), eps = 0 maps exact powers of two to themselves and counts
            // 1 + ceil(log2 R).
            proj::GtcSettings s;
            s.eps = 0;
            proj::GtcQuantizer q(s);
            Vector out(n);
            q.forward(b.value, out, b.shape);
            BOOST_TEST((out.array() == b.value.array()).all());
            BOOST_TEST(gtcBits(m, m + range - 1) == q.bits().bits, "R " << range);
            // one more bit than GTC's exactly when R is a power of two (zero needs the room)
            const bool powerOfTwoRange = (range & (range - 1)) == 0;
            BOOST_TEST(p.bits == q.bits().bits + (powerOfTwoRange ? 1 : 0), "R " << range);
        }
    BOOST_CHECK_EXCEPTION(powerOfTwoCodeBits(0, 127), std::invalid_argument,
                          messageContains("are 128, expected 1 to 127"));
    BOOST_CHECK_EXCEPTION(powerOfTwoCodeBits(1, 0), std::invalid_argument,
                          messageContains("are 0"));
}

BOOST_AUTO_TEST_CASE(pack_unpack_round_trip_and_layout) {
    for (int bits = 2; bits <= 8; ++bits)
        for (Index n : {0, 1, 7, 8, 9, 333}) {
            const int maxMag = (1 << (bits - 1)) - 1;
            std::mt19937_64 rng(static_cast<std::uint64_t>(n * 10 + bits));
            std::vector<std::int8_t> codes(static_cast<size_t>(n));
            for (auto& c : codes)
                c = static_cast<std::int8_t>(static_cast<int>(rng() % (2 * maxMag + 1)) - maxMag);
            const auto packed = packPowerOfTwoCodes(codes, bits);
            BOOST_TEST(static_cast<Index>(packed.size()) == (n * bits + 7) / 8);
            BOOST_TEST(unpackPowerOfTwoCodes(packed, n, bits, maxMag) == codes);
        }
    // 3 bits, first code in the low bits, top bit the sign: 1 -> 001, -2 -> 110, 0 -> 000,
    // 3 -> 011; the stream 001 110 000 011 (code 0 first, each code low bit first).
    const auto p = packPowerOfTwoCodes({1, -2, 0, 3}, 3);
    BOOST_TEST_REQUIRE(p.size() == 2u);
    BOOST_TEST(int(p[0]) == (0b001 | 0b110 << 3 | 0b000 << 6));
    BOOST_TEST(int(p[1]) == (0b011 << 1));
    BOOST_CHECK_EXCEPTION(packPowerOfTwoCodes({0, 4}, 3), std::invalid_argument,
                          messageContains("code 1 is 4"));
    BOOST_CHECK_EXCEPTION(unpackPowerOfTwoCodes({0b100}, 1, 3, 3), std::invalid_argument,
                          messageContains("code 0 is a negative zero"));
    BOOST_CHECK_EXCEPTION(unpackPowerOfTwoCodes({0b011}, 1, 3, 2), std::invalid_argument,
                          messageContains("exponent index 3, above the 2 exponents"));
    BOOST_CHECK_EXCEPTION(unpackPowerOfTwoCodes({0, 0}, 6, 3, 3), std::invalid_argument,
                          messageContains("2 bytes cannot hold 6 codes of 3 bits"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(export_checkpoint)

BOOST_DATA_TEST_CASE(folds_and_predicts_like_the_trained_network, bdata::xrange(cases().size()), i) {
    const Case k = cases()[i];
    BOOST_TEST_MESSAGE("case " << k);
    const TrainConfig c = tinyConfig(k);
    const auto [result, dir] = trained(c);
    const std::string ckpt = dir + "/checkpoint.h5";

    // The reference: the trained network at its deployed point, BN in inference mode.
    io::DataSplit data;
    auto net = networkFromCheckpoint(ckpt, {}, &data);
    BOOST_TEST_REQUIRE(data.test.count == 90);
    const std::vector<int> want = net->predict(data.test, 64);
    const std::vector<float> wantLogits = net->logits(data.test, 64);

    // The per-layer folding (no propagation, as model version 1) is checked against the
    // formulas; the propagated model (the default) against the trained network's predictions.
    ExportOptions perLayer;
    perLayer.propagateScales = false;
    const TernaryModel exported = TernaryModel::fromCheckpoint(ckpt, perLayer);
    const std::string file = dir + "/model.h5";
    exported.save(file, true);
    TernaryModel m = TernaryModel::load(file);  // also checks packed == int8 codes
    BOOST_TEST(!m.folding().propagated);
    BOOST_TEST(!m.folding().rawInput);
    BOOST_TEST(m.infoValue("method") == k.method);
    BOOST_TEST(!m.mean().empty());
    // the input shape and normalization are recorded in the checkpoint: no data needed
    BOOST_TEST((m.mean() == data.mean));
    BOOST_TEST((m.stddev() == data.stddev));
    BOOST_TEST((m.input() == std::vector<Index>{data.train.channels, data.train.height, data.train.width}));
    if (i == 0) {
        ExportOptions noData;
        noData.dataDir = dir + "/no-such-data";
        const TernaryModel alone = TernaryModel::fromCheckpoint(ckpt, noData);
        BOOST_TEST((alone.mean() == data.mean));
        BOOST_TEST((alone.input() == m.input()));
    }

    // Codes, groups and the folded scale/shift against a direct computation.
    std::map<std::string, const Layer*> byName;
    for (const auto& l : net->layers()) byName[l->name()] = l.get();
    const bool one = k.alpha == "one" && k.method != "ttq";
    Index ternaryLayers = 0;
    for (size_t li = 0; li < m.layers().size(); ++li) {
        const DeployedLayer& d = m.layers()[li];
        if (d.kind != DeployedKind::Conv && d.kind != DeployedKind::Fc) continue;
        const ParameterBlock& w = net->parameters().at(d.name + ".weights");
        BOOST_TEST(d.ternary() == w.constrained, d.name);
        // models.cpp names the BN after conv<n> "bn<n>", after fc<n> "bn_fc<n>".
        const std::string bnName =
            d.kind == DeployedKind::Conv ? "bn" + d.name.substr(4) : "bn_" + d.name;
        const BatchNorm* bn =
            byName.count(bnName) ? dynamic_cast<const BatchNorm*>(byName[bnName]) : nullptr;
        BOOST_TEST(d.foldedBatchNorm == (bn != nullptr), d.name);
        const ParameterBlock* bias =
            net->parameters().has(d.name + ".bias") ? &net->parameters().at(d.name + ".bias") : nullptr;
        // a fixed power-of-two gain after the layer (alpha one without BN) folds into it:
        // models.cpp names it "gain<n>" after conv<n>, "gain_fc<n>" after fc<n>
        const std::string gainName =
            d.kind == DeployedKind::Conv ? "gain" + d.name.substr(4) : "gain_" + d.name;
        const Gain* gain = byName.count(gainName) ? dynamic_cast<const Gain*>(byName[gainName]) : nullptr;
        const double g = gain ? gain->gain() : 1.0;
        BOOST_TEST((gain != nullptr) == (one && !k.bn && d.ternary()), d.name);
        const Index per = w.value.size() / d.out;
        for (Index ch = 0; ch < d.out; ++ch) {
            double a = 1;
            if (d.ternary()) {
                // a_c: the largest |value| of the channel's group (TTQ: the positive level).
                const Index lo = k.granularity == "tensor" ? 0 : ch * per;
                const Index hi = k.granularity == "tensor" ? w.value.size() : (ch + 1) * per;
                double pos = 0, neg = 0;
                for (Index j = lo; j < hi; ++j) {
                    pos = std::max(pos, double(w.value[j]));
                    neg = std::max(neg, -double(w.value[j]));
                }
                a = pos > 0 ? pos : (neg > 0 ? neg : 1);
                if (one && pos > 0) BOOST_TEST(pos == 1.0);
                if (k.method == "ttq") a = d.groupScale[d.groups == 1 ? 0 : ch];  // Wp (any sign)
                // Codes in {-1, 0, 1} that reproduce the weights: value = a * code (* ratio).
                const Index g = d.groups == 1 ? 0 : ch;
                for (Index j = ch * per; j < (ch + 1) * per; ++j) {
                    const int q = d.codes[static_cast<size_t>(j)];
                    BOOST_TEST_REQUIRE((q == -1 || q == 0 || q == 1));
                    const double level = q > 0 ? d.groupScale[g] : (q < 0 ? -d.groupScale[g] * d.negRatio[g] : 0.0);
                    BOOST_TEST(close(level, w.value[j], 1e-6), d.name << "[" << j << "]");
                }
                if (k.method != "ttq") BOOST_TEST(d.negRatio[g] == 1.0f);
            }
            const double b0 = bias ? bias->value[ch] : 0.0;
            double s = a * g, b = b0 * g;
            if (bn) {
                const double sd = std::sqrt(double(bn->runningVar()[ch]) + bn->epsilon());
                s = bn->gamma()->value[ch] * a / sd;
                b = bn->beta()->value[ch] - bn->gamma()->value[ch] * bn->runningMean()[ch] / sd +
                    bn->gamma()->value[ch] * b0 / sd;
            }
            BOOST_TEST(close(d.scale[ch], s), d.name << " s_" << ch << " " << d.scale[ch] << " vs " << s);
            BOOST_TEST(close(d.bias[ch], b, 1e-4), d.name << " b_" << ch << " " << d.bias[ch] << " vs " << b);
        }
        if (d.ternary()) {
            ++ternaryLayers;
            BOOST_TEST(d.groups == (k.granularity == "tensor" ? 1 : d.groups));
            // Multiplication-free exactly for a = 1 without BN and without a gain; a layer with
            // a gain (a power of two) is multiplication-free once propagated (below).
            BOOST_TEST(d.multiplicationFree == (one && !d.foldedBatchNorm && !gain), d.name);
        } else {
            BOOST_TEST(!d.multiplicationFree);
        }
    }
    BOOST_TEST(ternaryLayers == 1 + k.quantizeFirst + k.quantizeLast);
    // alpha one without BN trains with gains (tern-train), which sit in the unpropagated scales
    const bool gains = one && !k.bn;
    BOOST_TEST(m.multiplicationFree() == (one && !k.bn && !gains));
    BOOST_TEST(m.fullyMultiplicationFree() ==
               (one && !k.bn && !gains && k.quantizeFirst && k.quantizeLast));
    if (m.multiplicationFree()) {
        for (const auto& d : m.layers())
            if (d.ternary()) BOOST_TEST((d.scale.array() == 1.0f).all());
    }

    // Predictions equal the trained network's on every test image; accuracy equals tern-train's.
    const std::vector<int> got = m.predict(data.test, 64);
    BOOST_TEST(got == want, boost::test_tools::per_element());
    const std::vector<float> gotLogits = m.logits(data.test, 7);  // another batch size
    for (size_t j = 0; j < gotLogits.size(); ++j)
        BOOST_TEST(std::abs(gotLogits[j] - wantLogits[j]) <= 1e-4f * (1 + std::abs(wantLogits[j])));
    BOOST_TEST(m.accuracy(data.test, 64) == result.finalTestAcc);
    BOOST_TEST_MESSAGE("test accuracy " << result.finalTestAcc);  // learning is test_train's job

    // Propagated (the default): the model takes raw images (MNIST: one channel, so 1/std
    // folds); the tiny model's first conv pads, so the mean stays an input offset.
    const std::string propFile = dir + "/model-propagated.h5";
    TernaryModel::fromCheckpoint(ckpt).save(propFile);
    TernaryModel p = TernaryModel::load(propFile);
    BOOST_TEST(p.folding().propagated);
    BOOST_TEST(p.folding().rawInput);
    BOOST_TEST((p.folding().inputOffset == data.mean));
    BOOST_TEST(p.folding().logitScale > 0);
    io::Dataset raw = io::readIdx(dataDir(), "test", "mnist/test");
    BOOST_TEST_REQUIRE(raw.count == data.test.count);
    p.prepareInput(raw);  // raw stays raw
    const std::vector<float> outs = p.logits(raw, 7), rescaled = p.logits(raw, 64, true);
    const std::vector<int> gotP = p.predict(raw, 64);
    Index ties = 0;
    for (Index j = 0; j < raw.count; ++j) {
        // A different float rounding can only flip the argmax where the trained network's top
        // two logits are within the logits' rounding error; count such images (expected: none).
        std::vector<float> row(wantLogits.begin() + j * 10, wantLogits.begin() + (j + 1) * 10);
        std::sort(row.rbegin(), row.rend());
        const bool tie = row[0] - row[1] <= 1e-4f * (1 + std::abs(row[0]));
        ties += tie;
        if (!tie) BOOST_TEST(gotP[j] == want[j], "image " << j);
        for (Index c = 0; c < 10; ++c) {
            const float w = wantLogits[j * 10 + c];
            const double fromOut = double(outs[j * 10 + c]) * p.folding().logitScale;
            BOOST_TEST(std::abs(fromOut - w) <= 1e-4 * (1 + std::abs(w)), "image " << j << " class " << c);
            BOOST_TEST(std::abs(rescaled[j * 10 + c] - w) <= 1e-4f * (1 + std::abs(w)));
        }
    }
    BOOST_TEST(ties == 0);
    BOOST_TEST(p.accuracy(raw, 64) == result.finalTestAcc);
    if (gains) BOOST_TEST(p.multiplicationFree());  // the gains folded into the logit factor
    // Per-tensor scales without BN all move to the logits: s_c == 1 exactly, multiplication-free.
    for (const auto& d : p.layers()) {
        if (!d.weighted()) continue;
        const bool perTensor = !d.foldedBatchNorm && (!d.ternary() || d.groups == 1 || one);
        if (perTensor && k.method != "ttq") BOOST_TEST((d.scale.array() == 1.0f).all(), d.name);
        if (d.ternary() && perTensor && k.method != "ttq") BOOST_TEST(d.multiplicationFree, d.name);
    }
    const bool wholeTernaryNoBn = !k.bn && k.quantizeFirst && k.quantizeLast && k.method != "ttq" &&
                                  (one || k.granularity == "tensor");
    BOOST_TEST(p.fullyMultiplicationFree() == wholeTernaryNoBn);
    if (wholeTernaryNoBn) {
        BOOST_TEST(p.multiplicationFree());
        BOOST_TEST(p.cost().multiplications == 0);
        for (const auto& d : p.layers())
            if (d.weighted()) {
                BOOST_TEST((d.scale.array() == 1.0f).all(), d.name);
                for (const auto q : d.codes) BOOST_TEST_REQUIRE((q == -1 || q == 0 || q == 1));
            }
    }

    // Storage: the ternary payload is 2 bits per weight plus 64 bits per channel.
    const DeployedCost cost = m.cost();
    BOOST_TEST(cost.ternaryBits < cost.ternaryFloat32Bits / 4);
    BOOST_TEST(cost.storageBits < cost.float32Bits);
}

BOOST_AUTO_TEST_CASE(lenet5_ternary_layers_take_15x_less_storage) {
    // Storage does not depend on training: a LeNet-5 projected onto ternary levels.
    auto net = makeModel("lenet5", {1, 28, 28}, 10, {});
    net->initialize(3);
    for (ParameterBlock* b : net->parameters().constrained()) {
        const float delta = 0.7f * b->value.cwiseAbs().mean();
        for (auto& v : b->value) v = std::abs(v) > delta ? (v > 0 ? 0.25f : -0.25f) : 0.0f;
    }
    const TernaryModel m = TernaryModel::fromNetwork(*net);
    const DeployedCost c = m.cost();
    BOOST_TEST_MESSAGE("lenet5 ternary layers: " << c.ternaryFloat32Bits / c.ternaryBits << "x less");
    BOOST_TEST(c.ternaryFloat32Bits / c.ternaryBits >= 15.0);
    const std::string file = testing::tempDir("export-lenet") + "/m.h5";
    m.save(file);
    BOOST_TEST(TernaryModel::load(file).layers().size() == m.layers().size());
}

namespace {

/// A whole-network-ternary model without BN at random per-tensor levels and biases, as a
/// trained one would be: every weight block in {-a, 0, +a} (a per block), biases nonzero.
/// "<model>+gains": with the fixed power-of-two gains (ModelOptions::gains).
std::unique_ptr<Network> randomTernaryNoBn(const std::string& model, std::vector<Index> input,
                                           std::uint64_t seed) {
    ModelOptions o;
    o.batchNorm = false;
    o.quantizeFirst = o.quantizeLast = true;
    const auto plus = model.find("+gains");
    o.gains = plus != std::string::npos;
    auto net = makeModel(model.substr(0, plus), std::move(input), 10, o);
    net->initialize(seed);
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> u(0.05f, 0.6f);
    for (ParameterBlock* b : net->parameters().all()) {
        if (b->constrained) {
            const float a = u(rng), delta = 0.7f * b->value.cwiseAbs().mean();
            for (auto& v : b->value) v = std::abs(v) > delta ? (v > 0 ? a : -a) : 0.0f;
        } else {
            for (auto& v : b->value) v = u(rng) - 0.3f;  // biases
        }
    }
    return net;
}

/// `count` random raw images in [0, 1] and the same normalized with (mean, std).
std::pair<io::Dataset, io::Dataset> rawAndNormalized(std::vector<Index> input, Index count,
                                                     float mean, float std) {
    io::Dataset raw;
    raw.name = "random";
    raw.count = count;
    raw.channels = input[0];
    raw.height = input[1];
    raw.width = input[2];
    raw.images.resize(static_cast<size_t>(count * raw.imageSize()));
    raw.labels.assign(static_cast<size_t>(count), 0);
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    for (auto& v : raw.images) v = u(rng) < 0.6f ? 0.0f : u(rng);  // MNIST-like: many zeros
    io::Dataset norm = raw;
    io::normalize(norm, std::vector<float>(static_cast<size_t>(input[0]), mean),
                  std::vector<float>(static_cast<size_t>(input[0]), std));
    return {raw, norm};
}

}  // namespace

BOOST_DATA_TEST_CASE(propagation_is_exact_up_to_the_logit_factor,
                     bdata::make({"lenet5", "tiny", "lenet5+gains", "tiny+gains"}), model) {
    // lenet5: no padding, so the mean folds into conv1's bias; tiny: conv1 pads, so the mean
    // stays an input offset. All: every scale exactly 1, 0 multiplications; the fixed gains
    // fold into the layers and propagate like the levels.
    const std::vector<Index> input{1, 28, 28};
    auto net = randomTernaryNoBn(model, input, 11);
    const float mean = 0.1307f, std = 0.3081f;
    const auto [raw, norm] = rawAndNormalized(input, 50, mean, std);
    const std::vector<float> want = net->logits(norm, 50);
    const std::vector<int> wantClass = net->predict(norm, 50);

    TernaryModel m = TernaryModel::fromNetwork(*net);
    m.setNormalization({mean}, {std});
    BOOST_TEST(!m.fullyMultiplicationFree());  // per-layer folding: s = a != 1
    BOOST_TEST(m.cost().multiplications > 0);
    m.propagateScales();
    m.propagateScales();  // idempotent
    const ScaleFolding& f = m.folding();
    BOOST_TEST(f.propagated);
    BOOST_TEST(f.rawInput);
    BOOST_TEST(f.inputOffset.empty() == (std::string(model).rfind("lenet5", 0) == 0));
    // the factor at the logits: P = (1/std) * a_1 * g_1 * ... * a_L * g_L
    double P = 1.0 / double(std);
    for (ParameterBlock* b : net->parameters().constrained()) P *= double(b->value.cwiseAbs().maxCoeff());
    Index gains = 0;
    for (const auto& l : net->layers())
        if (auto* g = dynamic_cast<const Gain*>(l.get())) {
            P *= g->gain();
            ++gains;
        }
    BOOST_TEST(gains == (std::string(model).find("+gains") != std::string::npos ? (model[0] == 'l' ? 4 : 3) : 0));
    for (const auto& d : m.layers()) BOOST_TEST(d.name.rfind("gain", 0) != 0);  // folded away
    BOOST_TEST(f.logitScale == P, boost::test_tools::tolerance(1e-6));
    BOOST_TEST(m.fullyMultiplicationFree());
    BOOST_TEST(m.multiplicationFree());
    BOOST_TEST(m.cost().multiplications == 0);
    for (const auto& d : m.layers())
        if (d.weighted()) BOOST_TEST((d.scale.array() == 1.0f).all(), d.name);

    const std::string file = testing::tempDir("export-propagated") + "/" + model + ".h5";
    m.save(file);
    TernaryModel r = TernaryModel::load(file);
    BOOST_TEST(r.folding().logitScale == f.logitScale);
    BOOST_TEST((r.folding().inputOffset == f.inputOffset));
    BOOST_TEST(r.folding().rawInput);
    BOOST_TEST(r.fullyMultiplicationFree());
    BOOST_TEST(r.cost().additions == m.cost().additions);
    io::Dataset rawCopy = raw;
    r.prepareInput(rawCopy);  // raw input: unchanged
    BOOST_TEST(rawCopy.images == raw.images);
    const std::vector<float> out = r.logits(raw, 16), back = r.logits(raw, 50, true);
    BOOST_TEST((r.predict(raw, 50) == wantClass));
    float maxAbs = 0;
    for (float v : want) maxAbs = std::max(maxAbs, std::abs(v));
    for (size_t j = 0; j < want.size(); ++j) {
        BOOST_TEST(std::abs(double(out[j]) * f.logitScale - want[j]) <= 1e-5 * (1 + maxAbs));
        BOOST_TEST(std::abs(back[j] - want[j]) <= 1e-5f * (1 + maxAbs));
    }
    // Without propagation the model takes normalized images and multiplies.
    TernaryModel u = TernaryModel::fromNetwork(*net);
    u.setNormalization({mean}, {std});
    io::Dataset rawForU = raw;
    u.prepareInput(rawForU);
    BOOST_TEST((u.predict(rawForU, 50) == wantClass));
}

BOOST_AUTO_TEST_CASE(checkpoint_with_gains_rebuilds_and_exports_multiplication_free) {
    // What tern-train writes for a model with gains (the config keys networkFromCheckpoint
    // reads, params/, net/ state with the gains, the input shape and normalization): the
    // rebuilt network has the gains (found under net/*.gain) and the export matches it.
    auto net = randomTernaryNoBn("tiny+gains", {1, 28, 28}, 21);
    const std::string ckpt = testing::tempDir("export-gains") + "/checkpoint.h5";
    {
        io::CheckpointWriter w(ckpt);
        const std::vector<std::pair<std::string, std::string>> config{
            {"model", "tiny"}, {"bn", "false"}, {"width", "1"}, {"dropout", "0"},
            {"quantize-first", "true"}, {"quantize-last", "true"}, {"loss", "softmax"},
            {"dataset", "mnist"}, {"method", "admm"}, {"alpha", "one"}};
        for (const auto& [k, v] : config) w.attr("config", k, v);
        for (const ParameterBlock* b : net->parameters().all()) w.write("params/" + b->name, b->value, b->shape);
        net->saveState(w, "net/");
        w.write("input/shape", Vector::Map(std::vector<float>{1, 28, 28}.data(), 3), Shape{3});
        w.write("input/mean", Vector::Constant(1, 0.1307f), Shape{1});
        w.write("input/std", Vector::Constant(1, 0.3081f), Shape{1});
        w.close();
    }
    auto rebuilt = networkFromCheckpoint(ckpt);
    Index gains = 0;
    for (const auto& l : rebuilt->layers()) gains += dynamic_cast<const Gain*>(l.get()) != nullptr;
    BOOST_TEST(gains == 3);
    TernaryModel m = TernaryModel::fromCheckpoint(ckpt);
    BOOST_TEST(m.fullyMultiplicationFree());
    BOOST_TEST(m.cost().multiplications == 0);
    const auto [raw, norm] = rawAndNormalized({1, 28, 28}, 40, 0.1307f, 0.3081f);
    BOOST_TEST((m.predict(raw, 40) == net->predict(norm, 40)));
}

BOOST_AUTO_TEST_CASE(per_channel_std_and_bn_keep_their_scales) {
    // Three channels with different std: 1/std_c would multiply conv1's codes per input
    // channel, so the input stays normalized; the per-tensor layers still propagate.
    const std::vector<Index> input{3, 12, 12};
    auto net = randomTernaryNoBn("tiny", input, 5);
    const std::vector<float> mean{0.5f, 0.4f, 0.3f}, std{0.25f, 0.2f, 0.3f};
    TernaryModel m = TernaryModel::fromNetwork(*net);
    m.setNormalization(mean, std);
    m.propagateScales();
    BOOST_TEST(!m.folding().rawInput);
    BOOST_TEST(m.folding().inputOffset.empty());
    BOOST_TEST(m.fullyMultiplicationFree());
    io::Dataset raw = rawAndNormalized(input, 20, 0.0f, 1.0f).first;
    io::Dataset norm = raw;
    io::normalize(norm, mean, std);
    io::Dataset prepared = raw;
    m.prepareInput(prepared);
    BOOST_TEST(prepared.images == norm.images);
    BOOST_TEST((m.predict(prepared, 20) == net->predict(norm, 20)));

    // A model with BN: conv1 and fc1 keep per-channel s_c (absorbing the factor); the float
    // last layer (s = 1) carries the factor 1: nothing changes at the logits.
    ModelOptions o;
    auto bnNet = makeModel("tiny", {1, 8, 8}, 10, o);
    bnNet->initialize(3);
    for (ParameterBlock* b : bnNet->parameters().constrained())
        for (auto& v : b->value) v = v > 0.01f ? 0.2f : (v < -0.01f ? -0.2f : 0.0f);
    for (const auto& l : bnNet->layers())  // distinct gammas: per-channel s_c
        if (auto* bn = dynamic_cast<BatchNorm*>(l.get()))
            bn->gamma()->value = Vector::LinSpaced(bn->channels(), 0.5f, 1.5f);
    TernaryModel bm = TernaryModel::fromNetwork(*bnNet);
    bm.setNormalization({0.2f}, {0.5f});
    const Vector s0 = bm.layers()[0].scale;
    bm.propagateScales();
    BOOST_TEST(bm.folding().rawInput);
    BOOST_TEST(bm.folding().logitScale == 1.0);
    for (Index c = 0; c < s0.size(); ++c)  // 1/std absorbed by conv1's per-channel scales
        BOOST_TEST(bm.layers()[0].scale[c] == s0[c] / 0.5f, boost::test_tools::tolerance(1e-6f));
}

BOOST_AUTO_TEST_CASE(version_1_model_files_still_load) {
    // A version-1 file as tern-export wrote it before scale propagation (no input_form,
    // logit_scale, scales_propagated): it loads as an unpropagated model on normalized input.
    const std::string file = testing::tempDir("export-v1") + "/v1.h5";
    {
        io::CheckpointWriter w(file, "tern-model", 1);
        w.attr("", "layers", std::string("fc1"));
        w.attr("", "classes", std::int64_t{2});
        w.attr("", "input_channels", std::int64_t{1});
        w.attr("", "input_height", std::int64_t{1});
        w.attr("", "input_width", std::int64_t{3});
        w.attr("", "multiplication_free", std::int64_t{0});
        w.attr("", "float32_bits", 256.0);
        w.write("normalization/mean", Vector::Constant(1, 0.5f), Shape{1});
        w.write("normalization/std", Vector::Constant(1, 2.0f), Shape{1});
        w.write("layers/fc1/scale", Vector::Constant(2, 0.5f), Shape{2});
        w.write("layers/fc1/bias", Vector::LinSpaced(2, -1.0f, 1.0f), Shape{2});
        w.writeInts("layers/fc1/weight_shape", {2, 3});
        w.write("layers/fc1/group_scale", Vector::Constant(1, 0.5f), Shape{1});
        w.write("layers/fc1/neg_ratio", Vector::Ones(1), Shape{1});
        w.writeBytes("layers/fc1/codes_packed", packCodes({1, 0, -1, -1, 1, 1}), Shape{2});
        w.attr("layers/fc1", "in", std::int64_t{3});
        w.attr("layers/fc1", "out", std::int64_t{2});
        w.attr("layers/fc1", "ternary", std::int64_t{1});
        w.attr("layers/fc1", "groups", std::int64_t{1});
        w.attr("layers/fc1", "folded_batch_norm", std::int64_t{0});
        w.attr("layers/fc1", "multiplication_free", std::int64_t{0});
        w.attr("layers/fc1", "source_block", std::string("fc1.weights"));
        w.attr("layers/fc1", "type", std::string("fc"));
        w.attr("layers/fc1", "index", std::int64_t{0});
        w.close();
    }
    TernaryModel m = TernaryModel::load(file);
    BOOST_TEST(io::CheckpointReader(file, "tern-model", 2).version() == 1);
    BOOST_TEST(!m.folding().propagated);
    BOOST_TEST(!m.folding().rawInput);
    BOOST_TEST(m.folding().logitScale == 1.0);
    BOOST_TEST(m.layers()[0].scale[0] == 0.5f);
    const std::vector<float> x{0.2f, -0.4f, 1.0f};
    std::vector<float> y(2);
    m.logits(x.data(), 1, y.data());
    BOOST_TEST(y[0] == 0.5f * (0.2f - 1.0f) - 1.0f, boost::test_tools::tolerance(1e-6f));
    BOOST_TEST(y[1] == 0.5f * (-0.2f - 0.4f + 1.0f) + 1.0f, boost::test_tools::tolerance(1e-6f));
    // Propagating it now and saving writes version 2 with the same predictions.
    m.propagateScales();
    const std::string v2 = file + ".v2.h5";
    m.save(v2);
    BOOST_TEST(io::CheckpointReader(v2, "tern-model", 2).version() == 2);
    TernaryModel r = TernaryModel::load(v2);
    BOOST_TEST(r.folding().rawInput);
    BOOST_TEST(r.folding().logitScale == 0.5 / 2.0, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(r.multiplicationFree());
    // raw x = normalized * std + mean; outputs * logitScale = the version-1 logits
    const std::vector<float> rawX{0.2f * 2 + 0.5f, -0.4f * 2 + 0.5f, 1.0f * 2 + 0.5f};
    std::vector<float> z(2);
    r.logits(rawX.data(), 1, z.data());
    for (int c = 0; c < 2; ++c)
        BOOST_TEST(double(z[c]) * r.folding().logitScale == double(y[c]), boost::test_tools::tolerance(1e-5));
}

BOOST_AUTO_TEST_CASE(model_from_parts_round_trips_through_the_file) {
    // fc 4 -> 3 (ternary, per filter, TTQ-like ratio in filter 2), relu, fc 3 -> 2 (float)
    DeployedLayer fc1;
    fc1.name = "fc1";
    fc1.kind = DeployedKind::Fc;
    fc1.in = 4;
    fc1.out = 3;
    fc1.weightShape = Shape{3, 4};
    fc1.coding = WeightCoding::Ternary;
    fc1.codes = {1, 0, -1, 1, 0, 0, 0, 0, -1, -1, 1, 0};
    fc1.groups = 3;
    fc1.groupScale = Vector::Constant(3, 0.5f);
    fc1.negRatio = Vector::Ones(3);
    fc1.negRatio[2] = 0.75f;
    fc1.scale = Vector::LinSpaced(3, 0.5f, 1.5f);
    fc1.bias = Vector::LinSpaced(3, -1.0f, 1.0f);
    fc1.sourceBlock = "fc1.weights";
    DeployedLayer relu;
    relu.name = "relu1";
    relu.kind = DeployedKind::Relu;
    DeployedLayer fc2;
    fc2.name = "fc2";
    fc2.kind = DeployedKind::Fc;
    fc2.in = 3;
    fc2.out = 2;
    fc2.weightShape = Shape{2, 3};
    fc2.weights = Vector::LinSpaced(6, -1.0f, 1.5f);
    fc2.scale = Vector::Ones(2);
    fc2.bias = Vector::Zero(2);
    TernaryModel m({fc1, relu, fc2}, {1, 2, 2}, 2, 1234.0);
    m.setNormalization({0.5f}, {2.0f});
    m.addInfo("method", "ttq");
    const std::string file = testing::tempDir("export-parts") + "/m.h5";
    m.save(file, true);
    BOOST_TEST(!fs::exists(file + ".tmp"));
    const TernaryModel r = TernaryModel::load(file);
    BOOST_TEST_REQUIRE(r.layers().size() == 3u);
    BOOST_TEST(r.layers()[0].codes == fc1.codes, boost::test_tools::per_element());
    BOOST_TEST(r.layers()[0].groups == 3);
    BOOST_TEST(r.layers()[0].negRatio[2] == 0.75f);
    BOOST_TEST((r.layers()[0].scale.array() == fc1.scale.array()).all());
    BOOST_TEST((r.layers()[2].weights.array() == fc2.weights.array()).all());
    BOOST_TEST(kindName(r.layers()[1].kind) == "relu");
    BOOST_TEST(r.float32Bits() == 1234.0);
    BOOST_TEST((r.mean() == std::vector<float>{0.5f}));
    BOOST_TEST(r.infoValue("method") == "ttq");
    BOOST_TEST((r.input() == std::vector<Index>{1, 2, 2}));
    // the same logits from the model and its reload
    const std::vector<float> img{0.1f, -0.2f, 0.3f, 0.4f};
    std::vector<float> a(2), b(2);
    m.logits(img.data(), 1, a.data());
    TernaryModel::load(file).logits(img.data(), 1, b.data());
    BOOST_TEST(a == b, boost::test_tools::per_element());
    // by hand: h = relu(s_c * (Q x)_c + b_c), Q rows {1, 0, -1, 1}, 0, {-0.75, -0.75, 1, 0}
    const float h0 = std::max(0.5f * (0.1f - 0.3f + 0.4f) - 1.0f, 0.0f);  // 0
    const float h1 = 0.0f;                                                  // relu(1 * 0 + 0)
    const float h2 = std::max(1.5f * (-0.75f * 0.1f + 0.75f * 0.2f + 0.3f) + 1.0f, 0.0f);
    BOOST_TEST(a[0] == -1.0f * h0 - 0.5f * h1 + 0.0f * h2, boost::test_tools::tolerance(1e-5f));
    BOOST_TEST(a[1] == 0.5f * h0 + 1.0f * h1 + 1.5f * h2, boost::test_tools::tolerance(1e-5f));
    BOOST_TEST(a[1] == 2.34375f, boost::test_tools::tolerance(1e-5f));

    // inconsistent parts are rejected with the layer named
    DeployedLayer bad = fc1;
    bad.codes.pop_back();
    BOOST_CHECK_EXCEPTION(TernaryModel({bad, relu, fc2}, {1, 2, 2}, 2), std::runtime_error,
                          messageContains("layer 'fc1' has inconsistent codes or groups"));
    BOOST_CHECK_EXCEPTION(TernaryModel({fc1, relu, fc2}, {1, 2, 2}, 3), std::runtime_error,
                          messageContains("expected 3 logits"));
    BOOST_CHECK_EXCEPTION(m.setNormalization({0.5f, 0.5f}, {1.0f, 1.0f}), std::invalid_argument,
                          messageContains("expected 1 means"));
    BOOST_CHECK_EXCEPTION(TernaryModel().save(file), std::runtime_error,
                          messageContains("input must be C, H, W"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(export_power_of_two)

namespace {

/// Power-of-two runs: GTC (values +-2^k, a_g = 1) and the pow2 sets a * {0, +-1, +-2, +-4}.
std::vector<Case> powerOfTwoCases() {
    return {{"gtc", true, "free", "tensor"},
            {"gtc", false, "free", "tensor", true, true},   // every layer GTC, no BN
            {"admm", true, "free", "filter"},               // pow2, bits 3, a per filter
            {"admm", false, "free", "tensor", true, true},  // every layer pow2, no BN
            {"pgd", false, "one", "tensor", true, true}};   // a = 1 (with gains), no BN
}

}  // namespace

BOOST_DATA_TEST_CASE(exports_and_predicts_like_the_trained_network,
                     bdata::xrange(powerOfTwoCases().size()), i) {
    const Case k = powerOfTwoCases()[i];
    BOOST_TEST_MESSAGE("case " << k << (k.method == "gtc" ? "" : " levels pow2"));
    TrainConfig c = tinyConfig(k);
    if (k.method != "gtc") {
        c.levels = "pow2";
        c.bits = 3;
    }
    const auto [result, dir] = trained(c);
    const std::string ckpt = dir + "/checkpoint.h5";
    io::DataSplit data;
    auto net = networkFromCheckpoint(ckpt, {}, &data);
    BOOST_TEST_REQUIRE(data.test.count == 90);
    const std::vector<int> want = net->predict(data.test, 64);
    const std::vector<float> wantLogits = net->logits(data.test, 64);

    // Per-layer folding: every quantized layer holds power-of-two codes that decode to the
    // checkpoint's values exactly, at the width the formula gives for its exponents.
    ExportOptions perLayer;
    perLayer.propagateScales = false;
    const std::string file = dir + "/model.h5";
    TernaryModel::fromCheckpoint(ckpt, perLayer).save(file, true);
    BOOST_TEST(io::CheckpointReader(file, "tern-model", kModelVersion).version() == 3);
    TernaryModel m = TernaryModel::load(file);  // also checks packed == int8 codes
    Index quantized = 0;
    for (const DeployedLayer& d : m.layers()) {
        if (!d.weighted()) continue;
        const ParameterBlock& w = net->parameters().at(d.name + ".weights");
        BOOST_TEST(d.quantized() == w.constrained, d.name);
        if (!d.quantized()) continue;
        ++quantized;
        BOOST_TEST_REQUIRE(d.powerOfTwo(), d.name << " is " << codingName(d.coding));
        BOOST_TEST(d.groups == (k.granularity == "filter" ? d.out : 1), d.name);
        const Vector e = d.effectiveWeights();
        const Index per = w.value.size() / d.groups;
        int lo = 1000, hi = -1000;
        for (Index j = 0; j < w.value.size(); ++j) {
            const float a = d.groupScale[j / per];
            BOOST_TEST(a * e[j] == w.value[j], d.name << "[" << j << "]");  // exact
            if (w.value[j] == 0) continue;
            const double x = std::log2(std::abs(double(w.value[j])) / double(a));
            BOOST_TEST(x == std::round(x));  // +-a_g 2^e
            lo = std::min(lo, int(x));
            hi = std::max(hi, int(x));
        }
        BOOST_TEST(d.exponentMin == lo);
        BOOST_TEST(d.exponentMax == hi);
        BOOST_TEST(d.codeBits() == powerOfTwoCodeBits(lo, hi));
        BOOST_TEST_MESSAGE(d.name << ": exponents " << lo << ".." << hi << ", " << d.codeBits()
                                  << " bits (GTC " << gtcBits(lo, hi) << ")");
        if (k.method == "gtc") {
            BOOST_TEST((d.groupScale.array() == 1.0f).all());  // the values are 2^k themselves
            // s_c = 1 without BN: shifts and additions already before propagation
            BOOST_TEST(d.multiplicationFree == !k.bn, d.name);
        }
        if (k.alpha == "free" && k.method != "gtc")  // a free scale: a_g, no 2^e, the smallest
            BOOST_TEST(lo == 0);
    }
    BOOST_TEST(quantized == 1 + k.quantizeFirst + k.quantizeLast);
    BOOST_TEST(m.predict(data.test, 64) == want, boost::test_tools::per_element());
    const std::vector<float> gotLogits = m.logits(data.test, 7);
    for (size_t j = 0; j < gotLogits.size(); ++j)
        BOOST_TEST(std::abs(gotLogits[j] - wantLogits[j]) <= 1e-4f * (1 + std::abs(wantLogits[j])));
    BOOST_TEST(m.accuracy(data.test, 64) == result.finalTestAcc);  // what tern-eval reports

    // Propagated (the default), read back from its file: the same argmax, the logits up to
    // logit_scale, tern-train's accuracy.
    const std::string propFile = dir + "/model-propagated.h5";
    TernaryModel::fromCheckpoint(ckpt).save(propFile);
    TernaryModel p = TernaryModel::load(propFile);
    BOOST_TEST(p.folding().propagated);
    io::Dataset raw = io::readIdx(dataDir(), "test", "mnist/test");
    p.prepareInput(raw);
    const std::vector<float> outs = p.logits(raw, 7);
    const std::vector<int> gotP = p.predict(raw, 64);
    Index ties = 0;
    for (Index j = 0; j < raw.count; ++j) {
        std::vector<float> row(wantLogits.begin() + j * 10, wantLogits.begin() + (j + 1) * 10);
        std::sort(row.rbegin(), row.rend());
        const bool tie = row[0] - row[1] <= 1e-4f * (1 + std::abs(row[0]));
        ties += tie;
        if (!tie) BOOST_TEST(gotP[j] == want[j], "image " << j);
        for (Index cl = 0; cl < 10; ++cl) {
            const float w = wantLogits[j * 10 + cl];
            BOOST_TEST(std::abs(double(outs[j * 10 + cl]) * p.folding().logitScale - w) <=
                           1e-4 * (1 + std::abs(w)),
                       "image " << j << " class " << cl);
        }
    }
    BOOST_TEST(ties == 0);
    BOOST_TEST(p.accuracy(raw, 64) == result.finalTestAcc);

    // multiplication_free: without BN and per tensor every quantized layer ends with s_c = 1
    // and weights 0 or +-2^k; the whole-network cases need no multiplication at all.
    const bool perTensorNoBn = !k.bn && k.granularity == "tensor";
    BOOST_TEST(p.multiplicationFree() == perTensorNoBn);
    const bool whole = perTensorNoBn && k.quantizeFirst && k.quantizeLast;
    BOOST_TEST(p.fullyMultiplicationFree() == whole);
    const DeployedCost cost = p.cost();
    BOOST_TEST(cost.shifts > 0);  // exponents != 0 occur in every case
    if (whole) {
        BOOST_TEST(cost.multiplications == 0);
        for (const auto& d : p.layers())
            if (d.weighted()) {
                BOOST_TEST((d.scale.array() == 1.0f).all(), d.name);
                for (float x : d.effectiveWeights()) {
                    int e = 0;
                    BOOST_TEST_REQUIRE((x == 0 || std::frexp(std::abs(x), &e) == 0.5f));
                }
            }
    } else {
        BOOST_TEST(cost.multiplications > 0);
    }
    // Shifts counted by hand: one per nonzero weight use whose weight is not +-1.
    Index shifts = 0;
    std::vector<Index> dims = p.input();
    for (const auto& d : p.layers()) {
        const std::vector<Index> o = d.outputDims(dims, "test");
        dims = o;
        if (!d.quantized()) continue;
        const Index positions = d.kind == DeployedKind::Conv ? o[1] * o[2] : 1;
        for (float x : d.effectiveWeights()) shifts += (x != 0 && std::abs(x) != 1.0f) * positions;
    }
    BOOST_TEST(cost.shifts == shifts);
    // Storage: the codes' bits per weight, never more than ternary's 2 + 6.
    BOOST_TEST(cost.ternaryBits < cost.ternaryFloat32Bits / 4);
}

BOOST_AUTO_TEST_CASE(model_from_parts_round_trips_through_the_file) {
    // fc 3 -> 2 with power-of-two codes, a = 1, exponents -1..1 (m = -1):
    // row 0: {0.5, -2, 0}, row 1: {1, 0, -0.5}; s = (1, 1), b = (0.25, -1)
    DeployedLayer fc;
    fc.name = "fc1";
    fc.kind = DeployedKind::Fc;
    fc.in = 3;
    fc.out = 2;
    fc.weightShape = Shape{2, 3};
    fc.coding = WeightCoding::PowerOfTwo;
    fc.codes = {1, -3, 0, 2, 0, -1};
    fc.exponentMin = -1;
    fc.exponentMax = 1;
    fc.groupScale = Vector::Ones(1);
    fc.scale = Vector::Ones(2);
    fc.bias = Vector::LinSpaced(2, 0.25f, -1.0f);
    fc.updateMultiplicationFree();
    BOOST_TEST(fc.multiplicationFree);
    BOOST_TEST(fc.codeBits() == 3);
    TernaryModel m({fc}, {1, 1, 3}, 2);
    BOOST_TEST(m.fullyMultiplicationFree());
    const DeployedCost c = m.cost();
    BOOST_TEST(c.multiplications == 0);
    BOOST_TEST(c.shifts == 3);  // 0.5, -2, -0.5
    BOOST_TEST(c.additions == 4 + 2);
    BOOST_TEST(c.storageBits == 3 * 6 + 64 * 2 + 32 + 32);  // codes, s and b, a_g, offset
    const std::string file = testing::tempDir("export-pow2-parts") + "/m.h5";
    m.save(file);
    BOOST_TEST(io::CheckpointReader(file, "tern-model", kModelVersion).version() == 3);
    // a build that reads version 2 refuses it instead of misreading the codes
    BOOST_CHECK_EXCEPTION(io::CheckpointReader(file, "tern-model", 2), std::runtime_error,
                          messageContains("version 3 is newer than supported (<= 2)"));
    TernaryModel r = TernaryModel::load(file);
    BOOST_TEST_REQUIRE(r.layers().size() == 1u);
    BOOST_TEST(r.layers()[0].powerOfTwo());
    BOOST_TEST(r.layers()[0].codes == fc.codes, boost::test_tools::per_element());
    BOOST_TEST(r.layers()[0].exponentMin == -1);
    BOOST_TEST(r.multiplicationFree());
    const std::vector<float> x{0.5f, 0.25f, -2.0f};
    std::vector<float> y(2);
    r.logits(x.data(), 1, y.data());
    BOOST_TEST(y[0] == 0.5f * 0.5f - 2.0f * 0.25f + 0.25f);
    BOOST_TEST(y[1] == 1.0f * 0.5f + 0.5f * 2.0f - 1.0f);
    // a code outside the layer's exponents, and exponents that leave float's range, are refused
    DeployedLayer bad = fc;
    bad.codes[0] = 4;
    BOOST_CHECK_EXCEPTION(TernaryModel({bad}, {1, 1, 3}, 2), std::runtime_error,
                          messageContains("layer 'fc1' has the code 4, above its 3 exponents"));
    bad = fc;
    bad.exponentMax = 128;
    BOOST_CHECK_EXCEPTION(TernaryModel({bad}, {1, 1, 3}, 2), std::runtime_error,
                          messageContains("layer 'fc1' has the exponents -1..128"));
    // a ternary model is still written as version 2, readable by older builds
    DeployedLayer t = fc;
    t.coding = WeightCoding::Ternary;
    t.codes = {1, -1, 0, 1, 0, -1};
    t.negRatio = Vector::Ones(1);
    const std::string tfile = file + ".ternary.h5";
    TernaryModel({t}, {1, 1, 3}, 2).save(tfile);
    BOOST_TEST(io::CheckpointReader(tfile, "tern-model", 2).version() == 2);
    BOOST_TEST(TernaryModel::load(tfile).layers()[0].ternary());
}

BOOST_AUTO_TEST_CASE(version_2_model_files_still_load) {
    // A version-2 file as tern-export wrote it before power-of-two layers: no `coding` or
    // `bits` attributes; the `ternary` attribute says codes or floats.
    const std::string file = testing::tempDir("export-v2") + "/v2.h5";
    {
        io::CheckpointWriter w(file, "tern-model", 2);
        w.attr("", "layers", std::string("fc1,relu1,fc2"));
        w.attr("", "classes", std::int64_t{2});
        w.attr("", "input_channels", std::int64_t{1});
        w.attr("", "input_height", std::int64_t{1});
        w.attr("", "input_width", std::int64_t{3});
        w.attr("", "multiplication_free", std::int64_t{1});
        w.attr("", "float32_bits", 512.0);
        w.attr("", "scales_propagated", std::int64_t{1});
        w.attr("", "input_form", std::string("normalized"));
        w.attr("", "logit_scale", 0.5);
        w.write("layers/fc1/scale", Vector::Ones(2), Shape{2});
        w.write("layers/fc1/bias", Vector::LinSpaced(2, -1.0f, 1.0f), Shape{2});
        w.writeInts("layers/fc1/weight_shape", {2, 3});
        w.write("layers/fc1/group_scale", Vector::Constant(1, 0.5f), Shape{1});
        w.write("layers/fc1/neg_ratio", Vector::Ones(1), Shape{1});
        w.writeBytes("layers/fc1/codes_packed", packCodes({1, 0, -1, -1, 1, 1}), Shape{2});
        w.attr("layers/fc1", "in", std::int64_t{3});
        w.attr("layers/fc1", "out", std::int64_t{2});
        w.attr("layers/fc1", "ternary", std::int64_t{1});
        w.attr("layers/fc1", "groups", std::int64_t{1});
        w.attr("layers/fc1", "folded_batch_norm", std::int64_t{0});
        w.attr("layers/fc1", "multiplication_free", std::int64_t{1});
        w.attr("layers/fc1", "source_block", std::string("fc1.weights"));
        w.attr("layers/fc1", "type", std::string("fc"));
        w.attr("layers/fc1", "index", std::int64_t{0});
        w.attr("layers/relu1", "type", std::string("relu"));
        w.attr("layers/relu1", "index", std::int64_t{1});
        w.write("layers/fc2/scale", Vector::Constant(2, 2.0f), Shape{2});
        w.write("layers/fc2/bias", Vector::Zero(2), Shape{2});
        w.writeInts("layers/fc2/weight_shape", {2, 2});
        w.write("layers/fc2/weights", Vector::LinSpaced(4, -1.0f, 0.5f), Shape{2, 2});
        w.attr("layers/fc2", "in", std::int64_t{2});
        w.attr("layers/fc2", "out", std::int64_t{2});
        w.attr("layers/fc2", "ternary", std::int64_t{0});
        w.attr("layers/fc2", "groups", std::int64_t{1});
        w.attr("layers/fc2", "folded_batch_norm", std::int64_t{0});
        w.attr("layers/fc2", "multiplication_free", std::int64_t{0});
        w.attr("layers/fc2", "source_block", std::string("fc2.weights"));
        w.attr("layers/fc2", "type", std::string("fc"));
        w.attr("layers/fc2", "index", std::int64_t{2});
        w.close();
    }
    TernaryModel m = TernaryModel::load(file);
    BOOST_TEST_REQUIRE(m.layers().size() == 3u);
    BOOST_TEST(m.layers()[0].ternary());
    BOOST_TEST(m.layers()[0].codeBits() == 2);
    BOOST_TEST((m.layers()[2].coding == WeightCoding::Float));
    BOOST_TEST(m.multiplicationFree());
    BOOST_TEST(!m.fullyMultiplicationFree());
    BOOST_TEST(m.folding().logitScale == 0.5);
    // by hand: h = relu(Q x + b), Q rows {1, 0, -1}, {-1, 1, 1}; y = 2 * (W2 h)
    const std::vector<float> x{0.2f, -0.4f, 1.0f};
    std::vector<float> y(2);
    m.logits(x.data(), 1, y.data());
    const float h0 = std::max(0.2f - 1.0f - 1.0f, 0.0f), h1 = std::max(-0.2f - 0.4f + 1.0f + 1.0f, 0.0f);
    const Vector w2 = Vector::LinSpaced(4, -1.0f, 0.5f);
    BOOST_TEST(y[0] == 2 * (w2[0] * h0 + w2[1] * h1), boost::test_tools::tolerance(1e-6f));
    BOOST_TEST(y[1] == 2 * (w2[2] * h0 + w2[3] * h1), boost::test_tools::tolerance(1e-6f));
    // saved again: still version 2 (no power-of-two layer), now with coding and bits
    const std::string again = file + ".again.h5";
    m.save(again);
    io::CheckpointReader r(again, "tern-model", 2);
    BOOST_TEST(r.version() == 2);
    BOOST_TEST(r.attrString("layers/fc1", "coding") == "ternary");
    BOOST_TEST(r.attrInt("layers/fc1", "bits") == 2);
    BOOST_TEST(r.attrString("layers/fc2", "coding") == "float");
    BOOST_TEST(r.attrInt("layers/fc2", "bits") == 32);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(errors)

BOOST_AUTO_TEST_CASE(float_checkpoint_is_not_ternary) {
    Case k{"fp", true, "free", "tensor"};
    const auto [result, dir] = trained(tinyConfig(k));
    BOOST_CHECK_EXCEPTION(TernaryModel::fromCheckpoint(dir + "/checkpoint.h5"), std::runtime_error,
                          messageContains("block 'fc1.weights' is not ternary"));
    BOOST_CHECK_EXCEPTION(TernaryModel::fromCheckpoint(dir + "/checkpoint.h5"), std::runtime_error,
                          messageContains("method 'fp'"));
    // neither set fits float weights: both checks say where they failed
    BOOST_CHECK_EXCEPTION(TernaryModel::fromCheckpoint(dir + "/checkpoint.h5"), std::runtime_error,
                          messageContains("and not power-of-two: filter 0 holds"));
}

BOOST_AUTO_TEST_CASE(wrong_missing_and_truncated_files) {
    Case k{"admm", true, "free", "filter"};
    const auto [result, dir] = trained(tinyConfig(k));
    const std::string ckpt = dir + "/checkpoint.h5", file = dir + "/model.h5";
    TernaryModel::fromCheckpoint(ckpt).save(file);
    BOOST_CHECK_EXCEPTION(TernaryModel::load(ckpt), std::runtime_error,
                          messageContains("is a tern checkpoint, not a model file"));
    BOOST_CHECK_EXCEPTION(TernaryModel::fromCheckpoint(file), std::runtime_error,
                          messageContains("is a tern model file, not a checkpoint"));
    BOOST_CHECK_EXCEPTION(TernaryModel::load(dir + "/nope.h5"), std::runtime_error,
                          messageContains("no such file"));
    BOOST_TEST(!fs::exists(file + ".tmp"));  // written atomically through <file>.tmp
    // Truncated copies fail with a runtime_error naming the file, whatever the cut.
    const auto size = fs::file_size(file);
    for (const double frac : {0.1, 0.5, 0.9, 0.99}) {
        const std::string cut = dir + "/cut.h5";
        fs::copy_file(file, cut, fs::copy_options::overwrite_existing);
        fs::resize_file(cut, static_cast<std::uintmax_t>(static_cast<double>(size) * frac));
        BOOST_CHECK_EXCEPTION(TernaryModel::load(cut), std::runtime_error, messageContains(cut));
    }
    // The image size cannot be guessed without the data: a clear message.
    ExportOptions o;
    o.input = {1, 28, 28};
    BOOST_CHECK_EXCEPTION(TernaryModel::fromCheckpoint(ckpt, o), std::runtime_error,
                          messageContains("--input C,H,W"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(cli_fixture)

BOOST_AUTO_TEST_CASE(write_runs) {
    // What tests/export.cmake's command-line checks read, under $TERN_EXPORT_CLI_DIR (a temp
    // dir when unset): data/ (the bands data, as bandsDataDir()), fp/ (a float run of a model
    // whose fc1 is a quantized layer: tern-export must refuse it), gtc/ (a GTC run, with
    // gtc/accuracy.txt, its final test accuracy as tern-eval prints it).
    const char* env = std::getenv("TERN_EXPORT_CLI_DIR");
    const std::string dir = env ? std::string(env) : testing::tempDir("export-cli");
    fs::remove_all(dir);
    fs::create_directories(dir + "/data");
    testing::writeBandsIdx(dir + "/data", "train", 240, 12, 1);
    testing::writeBandsIdx(dir + "/data", "t10k", 90, 12, 2);
    for (const std::string method : {"fp", "gtc"}) {
        TrainConfig c = tinyConfig({method, method == "gtc", "free", "tensor"});
        c.dataDir = dir + "/data";
        c.outDir = dir + "/" + method;
        c.epochs = method == "fp" ? 1 : 3;
        const TrainResult r = train(c, nullptr);
        BOOST_TEST_REQUIRE(r.status == "completed");
        if (method == "fp") {
            BOOST_CHECK_EXCEPTION(TernaryModel::fromCheckpoint(c.outDir + "/checkpoint.h5"),
                                  std::runtime_error, messageContains("not power-of-two"));
        } else {
            std::ofstream(c.outDir + "/accuracy.txt")
                << std::fixed << std::setprecision(2) << 100 * r.finalTestAcc << '\n';
            const TernaryModel m = TernaryModel::fromCheckpoint(c.outDir + "/checkpoint.h5");
            BOOST_TEST(m.layers().size() > 0u);
        }
    }
}

BOOST_AUTO_TEST_SUITE_END()
