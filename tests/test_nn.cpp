#define BOOST_TEST_MODULE nn
#include <boost/test/unit_test.hpp>

#include "tern/core/error.hpp"
#include "tern/nn/layers.hpp"
#include "tern/nn/models.hpp"
#include "tern/nn/network.hpp"
#include "testing/helpers.hpp"

#include <cmath>
#include <random>

using namespace tern;
using namespace tern::nn;
using dnnl::memory;
using tern::testing::gradCheck;
using tern::testing::messageContains;
using tag = memory::format_tag;

namespace {

/// Runs one layer forward on a plain NCHW / NC input and returns the output in plain layout.
std::vector<float> runLayer(Layer& layer, const memory::dims& dims, std::vector<float> x,
                            Mode mode, optim::Pass pass = optim::Pass::Commit) {
    Context ctx;
    const tag t = dims.size() == 4 ? tag::nchw : tag::nc;
    memory::desc md(dims, memory::data_type::f32, t);
    memory src(md, ctx.engine, x.data());
    auto exec = layer.compile(ctx, md, mode);
    const memory& dst = exec->forward(src, pass);
    const auto od = layer.outputDims(dims);
    memory::desc plain(od, memory::data_type::f32, od.size() == 4 ? tag::nchw : tag::nc);
    memory out(plain, ctx.engine);
    dnnl::reorder(const_cast<memory&>(dst), out).execute(ctx.stream, const_cast<memory&>(dst), out);
    ctx.stream.wait();
    const float* p = static_cast<const float*>(out.get_data_handle());
    return std::vector<float>(p, p + plain.get_size() / sizeof(float));
}

/// Direct convolution of plain NCHW `x` with the layer's weights and bias, in double: the
/// reference output, plain NCHW.
std::vector<double> naiveConv(const Conv2d& conv, const std::vector<float>& x, Index n, Index h,
                              Index w) {
    const Index c = conv.inChannels(), o = conv.outChannels(), k = conv.kernel();
    const Index stride = conv.stride(), pad = conv.padding();
    const auto od = conv.outputDims({n, c, h, w});
    const Index oh = od[2], ow = od[3];
    std::vector<double> y(static_cast<size_t>(n * o * oh * ow));
    for (Index b = 0; b < n; ++b)
        for (Index f = 0; f < o; ++f)
            for (Index i = 0; i < oh; ++i)
                for (Index j = 0; j < ow; ++j) {
                    double acc = conv.bias() ? conv.bias()->value[f] : 0.0;
                    for (Index ci = 0; ci < c; ++ci)
                        for (Index ki = 0; ki < k; ++ki)
                            for (Index kj = 0; kj < k; ++kj) {
                                const Index yi = i * stride - pad + ki, xj = j * stride - pad + kj;
                                if (yi < 0 || yi >= h || xj < 0 || xj >= w) continue;
                                acc += conv.weights()->value[((f * c + ci) * k + ki) * k + kj] *
                                       x[((b * c + ci) * h + yi) * w + xj];
                            }
                    y[((b * o + f) * oh + i) * ow + j] = acc;
                }
    return y;
}

std::vector<float> randomData(size_t n, std::uint64_t seed) {
    const Vector v = testing::randomVector(static_cast<Index>(n), seed);
    return std::vector<float>(v.data(), v.data() + n);
}

/// A synthetic 3-class dataset: class c has a bright c-th horizontal band plus noise.
io::Dataset bands(Index count, Index size, std::uint64_t seed, float noise = 0.3f) {
    io::Dataset d;
    d.name = "bands";
    d.count = count;
    d.channels = 1;
    d.height = d.width = size;
    d.numClasses = 3;
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> n(0, noise);
    for (Index i = 0; i < count; ++i) {
        const int c = static_cast<int>(i % 3);
        d.labels.push_back(c);
        for (Index y = 0; y < size; ++y)
            for (Index x = 0; x < size; ++x) {
                const bool on = (y * 3 / size) == c;
                d.images.push_back((on ? 1.0f : -0.5f) + n(rng));
            }
    }
    return d;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(forward_matches_naive)

BOOST_AUTO_TEST_CASE(conv2d_with_stride_padding_bias) {
    for (auto [stride, pad] : {std::pair<Index, Index>{1, 0}, {1, 1}, {2, 1}})
    for (auto layout : {Conv2d::Layout::Auto, Conv2d::Layout::ChannelsLast}) {
        const Index n = 2, c = 3, h = 7, w = 6, o = 5, k = 3;
        Conv2d conv("c", c, o, k, stride, pad, true);
        conv.setLayout(layout);
        ParameterSet ps;
        conv.declare(ps);
        conv.weights()->value = testing::randomVector(o * c * k * k, 1);
        conv.bias()->value = testing::randomVector(o, 2);
        const auto x = randomData(n * c * h * w, 3);
        const auto ref = naiveConv(conv, x, n, h, w);
        for (Mode mode : {Mode::Train, Mode::Infer}) {
            const auto y = runLayer(conv, {n, c, h, w}, x, mode);
            BOOST_TEST_REQUIRE(y.size() == ref.size());
            for (size_t i = 0; i < y.size(); ++i)
                BOOST_TEST(y[i] == ref[i], boost::test_tools::tolerance(1e-4));
        }
    }
}

BOOST_AUTO_TEST_CASE(winograd_conv_matches_naive_forward) {
    // 3x3 (padding 1) and 5x5 (padding 0 and 2), stride 1, 16 inputs: Winograd, oneDNN's
    // where it has one (else direct) and tern's; errors relative to the largest output
    for (auto [k, pad] : {std::pair<Index, Index>{3, 1}, {5, 0}, {5, 2}})
    for (auto impl : {Conv2d::WinogradImpl::OneDnn, Conv2d::WinogradImpl::Tern}) {
        const Index n = 2, c = 16, h = 7, w = 6, o = 16;
        Conv2d conv("c", c, o, k, 1, pad, true);
        conv.setWinogradImpl(impl);
        ParameterSet ps;
        conv.declare(ps);
        conv.weights()->value = testing::randomVector(o * c * k * k, 41, 0.2f);
        conv.bias()->value = testing::randomVector(o, 42);
        const auto x = randomData(n * c * h * w, 43);
        const auto ref = naiveConv(conv, x, n, h, w);
        for (Mode mode : {Mode::Train, Mode::Infer}) {
            const auto y = runLayer(conv, {n, c, h, w}, x, mode);
            BOOST_TEST_REQUIRE(y.size() == ref.size());
            double err = 0.0, scale = 0.0;
            for (size_t i = 0; i < y.size(); ++i) {
                err = std::max(err, std::fabs(y[i] - ref[i]));
                scale = std::max(scale, std::fabs(ref[i]));
            }
            BOOST_TEST(err <= 1e-5 * scale, "k " << k << " pad " << pad << ": max error " << err
                                                 << " of " << scale);
        }
    }
}

BOOST_AUTO_TEST_CASE(linear_on_4d_input_uses_chw_order) {
    const Index n = 3, c = 4, h = 2, w = 3, o = 6;
    for (auto layout : {Linear::WeightLayout::Plain, Linear::WeightLayout::Preferred})
    for (Mode mode : {Mode::Train, Mode::Infer}) {
    Linear fc("fc", c * h * w, o, true);
    fc.setWeightLayout(layout);
    ParameterSet ps;
    fc.declare(ps);
    fc.weights()->value = testing::randomVector(o * c * h * w, 4);
    fc.bias()->value = testing::randomVector(o, 5);
    const auto x = randomData(n * c * h * w, 6);
    const auto y = runLayer(fc, {n, c, h, w}, x, mode);
    for (Index b = 0; b < n; ++b)
        for (Index f = 0; f < o; ++f) {
            double acc = fc.bias()->value[f];
            for (Index i = 0; i < c * h * w; ++i)
                acc += fc.weights()->value[f * c * h * w + i] * x[b * c * h * w + i];
            BOOST_TEST(y[b * o + f] == acc, boost::test_tools::tolerance(1e-4));
        }
    }
}

BOOST_AUTO_TEST_CASE(batchnorm_batch_stats_running_stats_and_commit_only_updates) {
    const Index n = 4, c = 3, h = 2, w = 2;
    BatchNorm bn("bn", c, 1e-5f, 0.1f);
    ParameterSet ps;
    bn.declare(ps);
    std::mt19937_64 rng(1);
    bn.initialize(rng);
    bn.gamma()->value << 1.5f, 0.5f, 2.0f;
    bn.beta()->value << 0.1f, -0.2f, 0.3f;
    const auto x = randomData(n * c * h * w, 9);
    // Probe: normalised with batch statistics, running statistics untouched.
    auto y = runLayer(bn, {n, c, h, w}, x, Mode::Train, optim::Pass::Probe);
    BOOST_TEST(bn.runningMean().isZero());
    BOOST_TEST(bn.runningVar().isOnes());
    Vector mean(c), var(c);
    for (Index ch = 0; ch < c; ++ch) {
        double s = 0, s2 = 0;
        for (Index b = 0; b < n; ++b)
            for (Index i = 0; i < h * w; ++i) s += x[(b * c + ch) * h * w + i];
        const double m = s / (n * h * w);
        for (Index b = 0; b < n; ++b)
            for (Index i = 0; i < h * w; ++i) s2 += std::pow(x[(b * c + ch) * h * w + i] - m, 2);
        mean[ch] = float(m);
        var[ch] = float(s2 / (n * h * w));
        for (Index b = 0; b < n; ++b)
            for (Index i = 0; i < h * w; ++i) {
                const Index at = (b * c + ch) * h * w + i;
                const double ref = bn.gamma()->value[ch] * (x[at] - m) / std::sqrt(var[ch] + 1e-5) +
                                   bn.beta()->value[ch];
                BOOST_TEST(y[at] == ref, boost::test_tools::tolerance(1e-3));
            }
    }
    // Commit: running = 0.9 * running + 0.1 * batch (variance unbiased).
    runLayer(bn, {n, c, h, w}, x, Mode::Train, optim::Pass::Commit);
    const float unbias = float(n * h * w) / float(n * h * w - 1);
    for (Index ch = 0; ch < c; ++ch) {
        BOOST_TEST(bn.runningMean()[ch] == 0.1f * mean[ch], boost::test_tools::tolerance(1e-4f));
        BOOST_TEST(bn.runningVar()[ch] == 0.9f + 0.1f * unbias * var[ch],
                   boost::test_tools::tolerance(1e-4f));
    }
    // Inference uses the running statistics.
    y = runLayer(bn, {n, c, h, w}, x, Mode::Infer);
    for (Index ch = 0; ch < c; ++ch)
        for (Index i = 0; i < h * w; ++i) {
            const Index at = ch * h * w + i;
            const double ref = bn.gamma()->value[ch] * (x[at] - bn.runningMean()[ch]) /
                                   std::sqrt(bn.runningVar()[ch] + 1e-5) +
                               bn.beta()->value[ch];
            BOOST_TEST(y[at] == ref, boost::test_tools::tolerance(1e-3));
        }
}

BOOST_AUTO_TEST_CASE(batchnorm_fused_relu_equals_relu_of_batchnorm) {
    const Index n = 3, c = 5, h = 3, w = 2;
    const auto x = randomData(n * c * h * w, 31);
    BatchNorm plain("bn", c), fused("bnr", c, 1e-5f, 0.1f, true);
    ParameterSet ps;
    plain.declare(ps);
    fused.declare(ps);
    std::mt19937_64 rng(2);
    plain.initialize(rng);
    fused.initialize(rng);
    plain.gamma()->value = testing::randomVector(c, 32);
    plain.beta()->value = testing::randomVector(c, 33);
    fused.gamma()->value = plain.gamma()->value;
    fused.beta()->value = plain.beta()->value;
    for (Mode mode : {Mode::Train, Mode::Infer}) {
        const auto a = runLayer(plain, {n, c, h, w}, x, mode);
        const auto b = runLayer(fused, {n, c, h, w}, x, mode);
        for (size_t i = 0; i < a.size(); ++i)
            BOOST_TEST(b[i] == std::max(0.0f, a[i]), boost::test_tools::tolerance(1e-5f));
    }
    BOOST_TEST((plain.runningMean() - fused.runningMean()).norm() < 1e-6f);
}

BOOST_AUTO_TEST_CASE(maxpool_and_relu) {
    const Index n = 2, c = 3, h = 6, w = 4;
    const auto x = randomData(n * c * h * w, 11);
    MaxPool pool("p", 2, 2);
    BOOST_TEST(pool.kernel() == 2);
    BOOST_TEST(pool.stride() == 2);
    BOOST_TEST((MaxPool("q", 3, 1).outputDims({1, 1, 7, 5}) == dnnl::memory::dims{1, 1, 5, 3}));
    const auto y = runLayer(pool, {n, c, h, w}, x, Mode::Train);
    for (Index p = 0; p < n * c; ++p)
        for (Index i = 0; i < h / 2; ++i)
            for (Index j = 0; j < w / 2; ++j) {
                float m = -1e30f;
                for (Index a = 0; a < 2; ++a)
                    for (Index b = 0; b < 2; ++b) m = std::max(m, x[(p * h + 2 * i + a) * w + 2 * j + b]);
                BOOST_TEST(y[(p * (h / 2) + i) * (w / 2) + j] == m);
            }
    Relu relu("r");
    const auto r = runLayer(relu, {n, c, h, w}, x, Mode::Infer);
    for (size_t i = 0; i < x.size(); ++i) BOOST_TEST(r[i] == std::max(0.0f, x[i]));
}

BOOST_AUTO_TEST_CASE(direct_maxpool_equals_onednn_pooling_in_every_layout) {
    // tern's pooling loop against oneDNN's primitive: values, and gradients routed to the
    // same inputs, on each layout the loop takes (20 channels: nChw16c has padding and nhwc
    // runs the run-time-length loop; 24 and 32: nhwc in blocks of 8 and 16), for overlapping
    // and non-overlapping windows, with ties (values on a coarse grid).
    for (Index c : {20, 24, 32})
    for (auto [k, stride] : {std::pair<Index, Index>{2, 2}, {3, 1}, {3, 2}})
        for (tag t : {tag::nchw, tag::nhwc, tag::nChw8c, tag::nChw16c}) {
            std::vector<float> out[2], grad[2];
            const Index n = 3, h = 7, w = 9;
            std::vector<float> x = randomData(n * c * h * w, 21);
            for (float& v : x) v = std::round(v * 3.0f) / 3.0f;
            for (int direct = 0; direct < 2; ++direct) {
                Context ctx;
                MaxPool pool("p", k, stride);
                pool.setDirect(direct == 1);
                const memory::dims dims{n, c, h, w};
                const memory::desc plainIn(dims, memory::data_type::f32, tag::nchw);
                const memory::desc md(dims, memory::data_type::f32, t);
                memory user(plainIn, ctx.engine, x.data()), src(md, ctx.engine);
                dnnl::reorder(user, src).execute(ctx.stream, user, src);
                auto exec = pool.compile(ctx, md, Mode::Train);
                const memory& dst = exec->forward(src, optim::Pass::Commit);
                const auto od = pool.outputDims(dims);
                const memory::desc plainOut(od, memory::data_type::f32, tag::nchw);
                memory y(plainOut, ctx.engine);
                dnnl::reorder(const_cast<memory&>(dst), y)
                    .execute(ctx.stream, const_cast<memory&>(dst), y);
                std::vector<float> g = randomData(plainOut.get_size() / sizeof(float), 22);
                memory gUser(plainOut, ctx.engine, g.data()), gDst(exec->dstDesc(), ctx.engine);
                dnnl::reorder(gUser, gDst).execute(ctx.stream, gUser, gDst);
                const memory& dsrc = exec->backward(gDst, true);
                memory dx(plainIn, ctx.engine);
                dnnl::reorder(const_cast<memory&>(dsrc), dx)
                    .execute(ctx.stream, const_cast<memory&>(dsrc), dx);
                ctx.stream.wait();
                const auto* py = static_cast<const float*>(y.get_data_handle());
                const auto* pd = static_cast<const float*>(dx.get_data_handle());
                out[direct].assign(py, py + plainOut.get_size() / sizeof(float));
                grad[direct].assign(pd, pd + x.size());
            }
            BOOST_TEST(out[0] == out[1], boost::test_tools::per_element());
            for (size_t i = 0; i < x.size(); ++i)
                BOOST_TEST(grad[0][i] == grad[1][i], boost::test_tools::tolerance(1e-5f));  // sums in another order
        }
}

BOOST_AUTO_TEST_CASE(dropout_scales_kept_units_and_is_identity_at_inference) {
    Dropout d("d", 0.5f);
    const auto x = randomData(4 * 50, 12);
    const auto y = runLayer(d, {4, 50}, x, Mode::Train);
    int kept = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        BOOST_TEST((y[i] == 0.0f || std::abs(y[i] - 2 * x[i]) < 1e-6f));
        kept += y[i] != 0.0f;
    }
    BOOST_TEST(kept > 60);
    BOOST_TEST(kept < 140);
    BOOST_TEST((runLayer(d, {4, 50}, x, Mode::Infer) == x));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(gradients)

BOOST_AUTO_TEST_CASE(loss_gradients_match_finite_differences) {
    const Index n = 3, k = 4;
    std::vector<std::int32_t> labels{0, 3, 1};
    for (Loss loss : {Loss::SoftmaxCrossEntropy, Loss::Hinge, Loss::SquaredHinge}) {
        auto s = randomData(n * k, 21);
        std::vector<float> g(n * k);
        lossAndGradient(loss, s.data(), labels.data(), n, k, g.data(), nullptr);
        for (Index i = 0; i < n * k; ++i) {
            const float s0 = s[i];
            s[i] = s0 + 1e-3f;
            const double lp = lossAndGradient(loss, s.data(), labels.data(), n, k, nullptr, nullptr);
            s[i] = s0 - 1e-3f;
            const double lm = lossAndGradient(loss, s.data(), labels.data(), n, k, nullptr, nullptr);
            s[i] = s0;
            BOOST_TEST(g[i] == (lp - lm) / 2e-3, boost::test_tools::tolerance(2e-2));
        }
    }
}

BOOST_AUTO_TEST_CASE(tiny_cnn_with_and_without_bn) {
    for (bool bn : {true, false}) {
        io::Dataset d = bands(12, 8, 3, 1.0f);
        ModelOptions opt;
        opt.batchNorm = bn;
        auto net = tinyCnn({1, 8, 8}, 3, opt);
        net->initialize(5);
        net->setTrainData(d, 6, 1);
        gradCheck(*net, 6, 3e-2);
    }
}

BOOST_AUTO_TEST_CASE(distillation_from_a_frozen_teacher_matches_finite_differences) {
    // loss + w T^2 CE(softmax(t/T), softmax(s/T)) with the teacher's logits fixed: the student's
    // gradient by finite differences, with and without BN, the teacher twice as wide
    for (bool bn : {true, false}) {
        io::Dataset d = bands(12, 8, 3, 1.0f);
        ModelOptions opt;
        opt.batchNorm = bn;
        auto net = tinyCnn({1, 8, 8}, 3, opt);
        net->initialize(5);
        net->setTrainData(d, 6, 1);
        ModelOptions wide;
        wide.width = 2;
        std::shared_ptr<Network> teacher = tinyCnn({1, 8, 8}, 3, wide);
        teacher->initialize(9);
        for (ParameterBlock* b : teacher->parameters().all()) b->value *= 3.0f;  // confident
        const double plain = net->evaluate(0);
        net->setTeacher(teacher, 0.5, 2.0);
        BOOST_TEST(net->evaluate(0) > plain);  // D >= 0, and > 0 where they disagree
        gradCheck(*net, 6, 3e-2);
        net->setTeacher(teacher, 0.0, 2.0);  // weight 0: the plain loss
        BOOST_TEST(net->evaluate(0) == plain);
    }
}

BOOST_AUTO_TEST_CASE(logit_entry_points_equal_the_whole_step) {
    // forwardLogits + logitLoss + backwardFromLogits in either slot give evaluateWithGradient's
    // loss and gradients; the slots keep their own activations (slot 0's backward after a
    // forward of slot 1 at other weights is still slot 0's)
    io::Dataset d = bands(12, 8, 3, 1.0f);
    ModelOptions opt;
    opt.batchNorm = false;
    auto net = tinyCnn({1, 8, 8}, 3, opt);
    net->initialize(5);
    net->setTrainData(d, 6, 1);
    std::vector<Vector> whole;
    const double loss = net->evaluateWithGradient(1, optim::Pass::Probe);
    for (ParameterBlock* b : net->parameters().all()) whole.push_back(b->grad);
    std::vector<float> dz(6 * 3, 0.0f);
    net->forwardLogits(1, optim::Pass::Probe, 0);
    BOOST_TEST(net->logitLoss(0, dz.data()) == loss);
    // slot 1 at other weights in between
    std::vector<Vector> saved;
    for (ParameterBlock* b : net->parameters().all()) saved.push_back(b->value), b->value *= -1.0f;
    net->forwardLogits(1, optim::Pass::Probe, 1);
    size_t i = 0;
    for (ParameterBlock* b : net->parameters().all()) b->value = saved[i++];
    net->backwardFromLogits(0, dz.data());
    i = 0;
    for (ParameterBlock* b : net->parameters().all())
        BOOST_TEST((b->grad - whole[i++]).cwiseAbs().maxCoeff() <= 1e-6f, b->name);
    BOOST_CHECK_EXCEPTION(net->forwardLogits(1, optim::Pass::Probe, 2), std::invalid_argument,
                          messageContains("slot must be 0 or 1 (got 2)"));
}

BOOST_AUTO_TEST_CASE(teacher_of_other_images_or_classes_is_refused) {
    auto net = tinyCnn({1, 8, 8}, 3, ModelOptions{});
    BOOST_CHECK_EXCEPTION(net->setTeacher(tinyCnn({1, 8, 8}, 4, ModelOptions{}), 1, 1),
                          std::invalid_argument,
                          messageContains("gives 4 classes; the student tiny takes 1x8x8 and gives 3"));
    BOOST_CHECK_EXCEPTION(net->setTeacher(tinyCnn({3, 8, 8}, 3, ModelOptions{}), 1, 1),
                          std::invalid_argument, messageContains("takes 3x8x8 images"));
    BOOST_CHECK_EXCEPTION(net->setTeacher(tinyCnn({1, 8, 8}, 3, ModelOptions{}), 1, 0),
                          std::invalid_argument, messageContains("temperature must be > 0"));
}

BOOST_AUTO_TEST_CASE(winograd_gradients_equal_direct_gradients) {
    // conv2 3x3 or 5x5, by oneDNN's Winograd (where it has one), tern's, or direct: the loss
    // and every gradient of the network agree, and tern's layer sits between blocked (conv1,
    // BN) and plain (FC) neighbours, so its reorders are exercised too
    for (Index k : {3, 5}) {
        io::Dataset d = bands(6, 8, 3, 1.0f);
        std::vector<Vector> grads[3];
        double loss[3];
        for (int variant = 0; variant < 3; ++variant) {
            std::vector<std::unique_ptr<Layer>> L;
            auto conv1 = std::make_unique<Conv2d>("conv1", 1, 16, 3, 1, 1, true);
            conv1->setLayout(Conv2d::Layout::Blocked);
            L.push_back(std::move(conv1));
            L.push_back(std::make_unique<Relu>("relu1"));
            auto conv2 = std::make_unique<Conv2d>("conv2", 16, 16, k, 1, k / 2, true);
            conv2->setWinograd(variant != 2);
            conv2->setWinogradImpl(variant == 0 ? Conv2d::WinogradImpl::Tern
                                                : Conv2d::WinogradImpl::OneDnn);
            L.push_back(std::move(conv2));
            L.push_back(std::make_unique<BatchNorm>("bn2", 16, 1e-5f, 0.1f, true));
            L.push_back(std::make_unique<Linear>("fc", 16 * 8 * 8, 3, true));
            Network net("w", std::move(L), {1, 8, 8}, 3);
            net.initialize(9);
            net.setTrainData(d, 6, 1);
            loss[variant] = net.evaluateWithGradient(0, optim::Pass::Probe);
            for (ParameterBlock* b : net.parameters().all()) grads[variant].push_back(b->grad);
        }
        for (int variant = 0; variant < 2; ++variant) {
            BOOST_TEST(loss[variant] == loss[2], boost::test_tools::tolerance(1e-4));
            for (size_t i = 0; i < grads[2].size(); ++i)
                BOOST_TEST((grads[variant][i] - grads[2][i]).norm() <=
                               2e-3 * std::max(1.0f, grads[2][i].norm()),
                           "k " << k << " variant " << variant << " block " << i);
        }
    }
}

BOOST_AUTO_TEST_CASE(channels_last_gradients_equal_blocked_gradients) {
    // conv2 (16 -> 32, 5x5) in nhwc or blocked, between a blocked conv1 and a pooling + FC
    // tail, the FC's forward on oneDNN's preferred weight layout or on the plain block: the
    // reorders at the edges and every gradient must agree.
    io::Dataset d = bands(6, 12, 3, 1.0f);
    std::vector<Vector> grads[2];
    double loss[2];
    for (int variant = 0; variant < 2; ++variant) {
        std::vector<std::unique_ptr<Layer>> L;
        auto conv1 = std::make_unique<Conv2d>("conv1", 1, 16, 3, 1, 1, true);
        conv1->setLayout(Conv2d::Layout::Blocked);
        L.push_back(std::move(conv1));
        L.push_back(std::make_unique<BatchNorm>("bn1", 16, 1e-5f, 0.1f, true));
        L.push_back(std::make_unique<MaxPool>("pool1", 2, 2));
        auto conv2 = std::make_unique<Conv2d>("conv2", 16, 32, 5, 1, 2, true);
        conv2->setLayout(variant == 0 ? Conv2d::Layout::ChannelsLast : Conv2d::Layout::Blocked);
        L.push_back(std::move(conv2));
        L.push_back(std::make_unique<BatchNorm>("bn2", 32, 1e-5f, 0.1f, true));
        L.push_back(std::make_unique<MaxPool>("pool2", 2, 2));
        auto fc = std::make_unique<Linear>("fc", 32 * 3 * 3, 3, true);
        fc->setWeightLayout(variant == 0 ? Linear::WeightLayout::Preferred
                                         : Linear::WeightLayout::Plain);
        L.push_back(std::move(fc));
        Network net("l", std::move(L), {1, 12, 12}, 3);
        net.initialize(9);
        net.setTrainData(d, 6, 1);
        loss[variant] = net.evaluateWithGradient(0, optim::Pass::Probe);
        for (ParameterBlock* b : net.parameters().all()) grads[variant].push_back(b->grad);
    }
    BOOST_TEST(loss[0] == loss[1], boost::test_tools::tolerance(1e-5));
    for (size_t i = 0; i < grads[0].size(); ++i)
        BOOST_TEST((grads[0][i] - grads[1][i]).norm() <= 1e-4 * std::max(1.0f, grads[1][i].norm()),
                   "block " << i);
}

BOOST_AUTO_TEST_CASE(lenet5_small_width_with_dropout_and_hinge) {
    io::Dataset d = bands(8, 28, 4, 1.0f);
    ModelOptions opt;
    opt.width = 0.125;
    opt.dropout = 0.3f;
    opt.loss = Loss::SquaredHinge;
    auto net = lenet5({1, 28, 28}, 3, opt);
    net->initialize(6);
    net->setTrainData(d, 4, 2);
    gradCheck(*net, 6, 5e-2, 0.9);
}

BOOST_AUTO_TEST_CASE(vgg7_tiny_width) {
    io::Dataset d = bands(6, 16, 5, 1.0f);
    d.channels = 1;
    ModelOptions opt;
    opt.width = 1.0 / 32;
    auto net = vgg7({1, 16, 16}, 3, opt);
    net->initialize(7);
    net->setTrainData(d, 6, 3);
    // Seven ReLU/pool stages cross more kinks per perturbation: the cosine carries this check.
    gradCheck(*net, 6, 5e-2, 0.8);
}

BOOST_AUTO_TEST_CASE(vgg16_and_gtc_lenet_shapes) {
    // VGG-16 (D) on 32x32: 13 convolutions, 5 pools down to 1x1, 512-FC, classes; its
    // gradients at a tiny width. gtc-lenet: 16-C5, 36-C5, 128-FC as the paper's.
    ModelOptions opt;
    opt.width = 1.0 / 32;
    auto net = vgg16({3, 32, 32}, 10, opt);
    Index convs = 0;
    for (const auto& l : net->layers()) convs += dynamic_cast<const Conv2d*>(l.get()) != nullptr;
    BOOST_TEST(convs == 13);
    BOOST_TEST(net->parameters().at("conv13.weights").shape.dims[0] == 16);  // 512 / 32
    BOOST_TEST(net->parameters().at("fc1.weights").shape.dims[1] == 16);     // 16 x 1 x 1
    io::Dataset d = bands(4, 32, 9, 1.0f);
    d.numClasses = 10;
    auto small = vgg16({1, 32, 32}, 10, opt);
    small->initialize(3);
    small->setTrainData(d, 4, 1);
    gradCheck(*small, 4, 5e-2, 0.75);
    auto g = gtcLenet({1, 28, 28}, 10, ModelOptions{});
    BOOST_TEST(g->parameters().at("conv1.weights").shape.dims[0] == 16);
    BOOST_TEST(g->parameters().at("conv2.weights").shape.dims[0] == 36);
    BOOST_TEST(g->parameters().at("fc1.weights").shape.dims[0] == 128);
    BOOST_TEST(g->parameters().at("fc1.weights").shape.dims[1] == 36 * 4 * 4);
}

BOOST_AUTO_TEST_CASE(gain_layer_forward_backward_and_state) {
    // y = g x; dx = g dy: checked on a blocked-free NCHW input and by central differences of
    // L = sum(w .* y) (linear, so the differences are exact up to rounding).
    Gain gain("gain1", 0.125f);
    BOOST_TEST(gain.describe() == "gain1: x0.125 (fixed)");
    const memory::dims dims{2, 3, 4, 4};
    std::mt19937_64 rng(3);
    std::normal_distribution<float> n(0.0f, 1.0f);
    std::vector<float> x(96), w(96);
    for (auto& v : x) v = n(rng);
    for (auto& v : w) v = n(rng);
    const std::vector<float> y = runLayer(gain, dims, x, Mode::Infer);
    for (size_t i = 0; i < x.size(); ++i) BOOST_TEST(y[i] == 0.125f * x[i]);
    Context ctx;
    memory::desc md(dims, memory::data_type::f32, tag::nchw);
    memory src(md, ctx.engine, x.data());
    auto exec = gain.compile(ctx, md, Mode::Train);
    exec->forward(src, optim::Pass::Commit);
    memory dy(exec->dstDesc(), ctx.engine, w.data());  // dL/dy = w
    const memory& dx = exec->backward(dy, true);
    ctx.stream.wait();
    const float* g = static_cast<const float*>(dx.get_data_handle());
    auto loss = [&](const std::vector<float>& in) {
        const std::vector<float> out = runLayer(gain, dims, in, Mode::Infer);
        double l = 0;
        for (size_t i = 0; i < in.size(); ++i) l += double(w[i]) * out[i];
        return l;
    };
    for (size_t i : {size_t{0}, size_t{17}, size_t{95}}) {
        std::vector<float> xp = x, xm = x;
        xp[i] += 1e-2f;
        xm[i] -= 1e-2f;
        const double fd = (loss(xp) - loss(xm)) / 2e-2;
        BOOST_TEST(g[i] == fd, boost::test_tools::tolerance(1e-3));
        BOOST_TEST(g[i] == 0.125f * w[i]);
    }
    // state: saved, loaded back, absent keys leave the gain unchanged, bad values rejected
    MemoryState st;
    gain.saveState(st, "net/");
    Gain other("gain1", 1.0f);
    other.loadState(st, "net/");
    BOOST_TEST(other.gain() == 0.125f);
    Gain absent("gain9", 0.5f);
    absent.loadState(st, "net/");
    BOOST_TEST(absent.gain() == 0.5f);
    BOOST_CHECK_EXCEPTION(Gain("g", 0.0f), std::invalid_argument, messageContains("positive"));
}

BOOST_AUTO_TEST_CASE(gains_are_powers_of_two_from_fan_in) {
    // 2^-round(log2(sqrt(n / 2))): the power of two nearest sqrt(2 / n)
    BOOST_TEST(gainForFanIn(1) == 1.0f);    // sqrt(0.5): log2 = -0.5, rounds to -0 -> 1
    BOOST_TEST(gainForFanIn(2) == 1.0f);
    BOOST_TEST(gainForFanIn(25) == 0.25f);  // LeNet conv1: sqrt(12.5) = 3.5
    BOOST_TEST(gainForFanIn(800) == 0.0625f);  // conv2: sqrt(400) = 20
    BOOST_TEST(gainForFanIn(512) == 0.0625f);  // fc2: 16
    BOOST_TEST(gainForFanIn(1024) == 0.03125f);  // fc1: 22.6 = 2^4.5, rounds up
    for (Index fan : {3, 72, 1000, 4608}) {
        const float g = gainForFanIn(fan);
        int e = 0;
        BOOST_TEST(std::frexp(g, &e) == 0.5f);  // exactly a power of two
        BOOST_TEST(std::abs(std::log2(g) + std::log2(std::sqrt(fan / 2.0))) <= 0.5 + 1e-9);
    }
    // where the model puts them: after the quantized conv/FC layers, only without BN
    ModelOptions o;
    o.batchNorm = false;
    o.gains = true;
    auto names = [](const Network& net) {
        std::string s;
        for (const auto& l : net.layers())
            if (dynamic_cast<const Gain*>(l.get())) s += l->describe() + ";";
        return s;
    };
    BOOST_TEST(names(*lenet5({1, 28, 28}, 10, o)) == "gain2: x0.0625 (fixed);gain_fc1: x0.03125 (fixed);");
    o.quantizeFirst = o.quantizeLast = true;
    BOOST_TEST(names(*lenet5({1, 28, 28}, 10, o)) ==
               "gain1: x0.25 (fixed);gain2: x0.0625 (fixed);gain_fc1: x0.03125 (fixed);gain_fc2: x0.0625 (fixed);");
    o.batchNorm = true;
    BOOST_TEST(names(*lenet5({1, 28, 28}, 10, o)).empty());
    o.batchNorm = false;
    o.gains = false;
    BOOST_TEST(names(*lenet5({1, 28, 28}, 10, o)).empty());
}

BOOST_AUTO_TEST_CASE(tiny_without_bn_with_gains) {
    // The gains sit between the layers and the ReLUs (and after the last FC): the parameter
    // gradients through them match finite differences.
    io::Dataset d = bands(8, 12, 5, 1.0f);
    ModelOptions opt;
    opt.batchNorm = false;
    opt.gains = true;
    opt.quantizeFirst = opt.quantizeLast = true;
    auto net = tinyCnn({1, 12, 12}, 3, opt);
    net->initialize(4);
    net->setTrainData(d, 8, 1);
    gradCheck(*net, 6, 3e-2, 0.9);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(network)

BOOST_AUTO_TEST_CASE(sgd_learns_bands_and_inference_agrees) {
    io::Dataset train = bands(300, 12, 8), test = bands(90, 12, 9);
    auto net = tinyCnn({1, 12, 12}, 3, {});
    net->initialize(1);
    net->setTrainData(train, 30, 1);
    const double before = net->evaluateDataset(test).accuracy;
    std::mt19937_64 rng(1);
    for (int epoch = 0; epoch < 5; ++epoch) {
        net->shuffle(rng);
        for (Index b = 0; b < net->numBatches(); ++b) {
            net->evaluateWithGradient(b);
            for (ParameterBlock* p : net->parameters().all()) p->value -= 0.1f * p->grad;
        }
    }
    const auto eval = net->evaluateDataset(test, 64);  // 90 images: one padded batch
    BOOST_TEST_MESSAGE("accuracy before " << before << ", after " << eval.accuracy);
    BOOST_TEST(eval.accuracy >= 0.95);
    BOOST_TEST(net->trainMetrics().accuracy > 0.8);
    const auto pred = net->predict(test, 7);
    Index agree = 0;
    for (Index i = 0; i < test.count; ++i) agree += pred[i] == test.labels[i];
    BOOST_TEST(double(agree) / test.count == eval.accuracy, boost::test_tools::tolerance(1e-9));
}

BOOST_AUTO_TEST_CASE(weight_initialisations) {
    // LeNet-5 without BN (biased layers): fc1 has 1024 inputs, 524,288 weights
    ModelOptions opt;
    opt.batchNorm = false;
    auto stats = [](const Vector& v) {
        const double mean = v.cast<double>().mean();
        const double sd = std::sqrt((v.cast<double>().array() - mean).square().mean());
        return std::make_pair(sd, static_cast<double>(v.cwiseAbs().maxCoeff()));
    };
    auto fc1 = [](Network& n, const std::string& what) -> ParameterBlock& {
        for (ParameterBlock* p : n.parameters().all())
            if (p->name == "fc1." + what) return *p;
        throw std::runtime_error("no fc1." + what);
    };
    auto he = lenet5({1, 28, 28}, 10, opt);
    he->initialize(1);
    const auto [heSd, heMax] = stats(fc1(*he, "weights").value);
    BOOST_TEST(heSd == std::sqrt(2.0 / 1024), boost::test_tools::tolerance(0.01));
    BOOST_TEST(heMax > 4 * std::sqrt(2.0 / 1024));  // normal tails
    BOOST_TEST(fc1(*he, "bias").value.cwiseAbs().maxCoeff() == 0.0f);

    opt.weightInit = parseWeightInit("torch");
    auto torch = lenet5({1, 28, 28}, 10, opt);
    torch->initialize(1);
    const auto [tSd, tMax] = stats(fc1(*torch, "weights").value);
    BOOST_TEST(tSd == 1.0 / std::sqrt(3.0 * 1024), boost::test_tools::tolerance(0.01));
    BOOST_TEST(tMax <= 1.0 / 32);
    BOOST_TEST(tMax > 0.99 / 32);
    const Vector& bias = fc1(*torch, "bias").value;
    BOOST_TEST(bias.cwiseAbs().maxCoeff() <= 1.0f / 32);
    BOOST_TEST(bias.cwiseAbs().minCoeff() < bias.cwiseAbs().maxCoeff());
    BOOST_TEST(weightInitName(opt.weightInit) == "torch");
    BOOST_CHECK_EXCEPTION(parseWeightInit("xavier"), std::invalid_argument,
                          messageContains("known: he, torch"));
}

BOOST_AUTO_TEST_CASE(same_seed_same_losses) {
    io::Dataset train = bands(60, 8, 2);
    std::vector<double> losses[2];
    for (auto& out : losses) {
        ModelOptions opt;
        opt.dropout = 0.2f;
        auto net = tinyCnn({1, 8, 8}, 3, opt);
        net->initialize(3);
        net->setTrainData(train, 10, 4);
        std::mt19937_64 rng(9);
        net->shuffle(rng);
        for (Index b = 0; b < net->numBatches(); ++b) {
            out.push_back(net->evaluateWithGradient(b));
            for (ParameterBlock* p : net->parameters().all()) p->value -= 0.05f * p->grad;
        }
    }
    BOOST_TEST(losses[0] == losses[1], boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(recalibrate_batch_norm_averages_the_batch_statistics) {
    // BN first: its input is the image itself, so the batch statistics are known exactly.
    io::Dataset d = bands(40, 6, 11, 1.0f);
    std::vector<std::unique_ptr<Layer>> L;
    L.push_back(std::make_unique<BatchNorm>("bn", 1, 1e-5f, 0.1f, false));
    L.push_back(std::make_unique<Linear>("fc", 36, 3, true));
    Network net("bn-first", std::move(L), {1, 6, 6}, 3);
    net.initialize(1);
    net.setTrainData(d, 10, 1);  // 4 batches, images in dataset order (no shuffle yet)
    auto* bn = dynamic_cast<BatchNorm*>(net.layers()[0].get());
    bn->runningMean().setConstant(7);  // garbage that must not survive
    bn->runningVar().setConstant(9);
    net.recalibrateBatchNorm(3);
    double mean = 0, var = 0;
    for (Index b = 0; b < 3; ++b) {
        const Eigen::Map<const Eigen::VectorXf> x(d.image(b * 10), 10 * 36);
        const double m = x.cast<double>().mean();
        mean += m / 3;
        var += (x.cast<double>().array() - m).square().sum() / (10 * 36 - 1) / 3;  // unbiased
    }
    BOOST_TEST(bn->runningMean()[0] == mean, boost::test_tools::tolerance(1e-4));
    BOOST_TEST(bn->runningVar()[0] == var, boost::test_tools::tolerance(1e-4));
    BOOST_TEST(bn->momentum() == 0.1f);                 // restored
    BOOST_TEST(net.trainMetrics().count == 0);          // no training step was counted
    net.recalibrateBatchNorm(0);                         // nothing to do
    BOOST_TEST(bn->runningMean()[0] == mean, boost::test_tools::tolerance(1e-4));
}

BOOST_AUTO_TEST_CASE(errors_name_the_problem) {
    BOOST_CHECK_EXCEPTION(makeModel("resnet", {1, 28, 28}, 10), std::invalid_argument,
                          messageContains("known: lenet5, gtc-lenet, vgg7, vgg16, tiny"));
    BOOST_CHECK_EXCEPTION(lenet5({1, 8, 8}, 10), std::invalid_argument,
                          messageContains("too small"));
    auto net = tinyCnn({1, 8, 8}, 3);
    io::Dataset wrong = bands(10, 12, 1);
    BOOST_CHECK_EXCEPTION(net->setTrainData(wrong, 5, 1), std::invalid_argument,
                          messageContains("the network expects 1x8x8"));
    io::Dataset small = bands(3, 8, 1);
    BOOST_CHECK_EXCEPTION(net->setTrainData(small, 5, 1), std::invalid_argument,
                          messageContains("fewer than one batch"));
    ModelOptions bad;
    bad.width = -1;
    BOOST_CHECK_EXCEPTION(vgg7({3, 32, 32}, 10, bad), std::invalid_argument,
                          messageContains("width must be > 0"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_CASE(thread_count_is_capped_at_the_available_cores) {
    // --threads 1000 on 2 cores used to run a 0.6 s job for minutes (OpenMP barriers spinning
    // against descheduled threads): setNumThreads caps at the affinity mask's cores
    const int cores = nn::availableCores();
    BOOST_TEST(cores >= 1);
    BOOST_TEST(nn::setNumThreads(1000 * cores) == cores);
    BOOST_TEST(nn::numThreads() == cores);
    BOOST_TEST(nn::setNumThreads(1) == 1);
    BOOST_TEST(nn::setNumThreads(0) == 1);  // 0 leaves the count as it is
    nn::setNumThreads(cores);                // as the other tests found it
}
