#define BOOST_TEST_MODULE residual
// Residual networks: the graph, Add / GlobalAvgPool / SubsamplePad against naive loops, finite
// difference gradients through every path (fan-out sums, stride 2, option A, projection,
// global pooling), the whole forward against a naive interpreter, the ResNet models' sizes,
// and a residual network that learns.
#include <boost/test/unit_test.hpp>

#include "tern/core/error.hpp"
#include "tern/nn/layers.hpp"
#include "tern/nn/models.hpp"
#include "tern/nn/network.hpp"
#include "testing/helpers.hpp"

#include "layer_util.hpp"  // src/nn: detail::sameBytes

#include <algorithm>
#include <cmath>
#include <random>

using namespace tern;
using namespace tern::nn;
using dnnl::memory;
using tern::testing::gradCheck;
using tern::testing::messageContains;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

std::vector<float> randomData(size_t n, std::uint64_t seed) {
    const Vector v = testing::randomVector(static_cast<Index>(n), seed);
    return std::vector<float>(v.data(), v.data() + n);
}

/// Plain copy of a memory in `t` (reordered from whatever layout it has).
std::vector<float> plainCopy(Context& ctx, const memory& m, tag t) {
    memory::desc plain(m.get_desc().dims(), dt::f32, t);
    memory out(plain, ctx.engine);
    dnnl::reorder(const_cast<memory&>(m), out).execute(ctx.stream, const_cast<memory&>(m), out);
    ctx.stream.wait();
    const float* p = static_cast<const float*>(out.get_data_handle());
    return std::vector<float>(p, p + plain.get_size() / sizeof(float));
}

/// A memory in layout `t` holding plain NCHW values `x`.
memory inLayout(Context& ctx, const memory::dims& d, const std::vector<float>& x, tag t) {
    memory::desc plain(d, dt::f32, tag::nchw);
    memory src(plain, ctx.engine, const_cast<float*>(x.data()));
    memory dst(memory::desc(d, dt::f32, t), ctx.engine);
    dnnl::reorder(src, dst).execute(ctx.stream, src, dst);
    ctx.stream.wait();
    return dst;
}

/// 3 classes: class c has a bright c-th horizontal band (channel c % C) plus noise.
io::Dataset bands(Index count, Index channels, Index size, std::uint64_t seed, float noise = 0.3f) {
    io::Dataset d;
    d.name = "bands";
    d.count = count;
    d.channels = channels;
    d.height = d.width = size;
    d.numClasses = 3;
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> n(0, noise);
    for (Index i = 0; i < count; ++i) {
        const int c = static_cast<int>(i % 3);
        d.labels.push_back(c);
        for (Index ch = 0; ch < channels; ++ch)
            for (Index y = 0; y < size; ++y)
                for (Index x = 0; x < size; ++x) {
                    const bool on = (y * 3 / size) == c && ch == c % channels;
                    d.images.push_back((on ? 1.0f : -0.5f) + n(rng));
                }
    }
    return d;
}

/// A small residual network that has every path: stem conv (+BN), an identity block, a
/// stride-2 option-A block, a stride-2 projection block, global pooling and the classifier.
std::unique_ptr<Network> smallResnet(bool bn, Index size = 8) {
    ModelOptions opt;
    opt.batchNorm = bn;
    Graph g({2, size, size});
    auto convBn = [&](int from, const std::string& n, Index in, Index out, Index k, Index stride,
                      bool relu) {
        int y = g.add(std::make_unique<Conv2d>(n, in, out, k, stride, k / 2, !bn), {from});
        if (bn) return g.add(std::make_unique<BatchNorm>(n + ".bn", out, 1e-5f, 0.1f, relu), {y});
        return relu ? g.add(std::make_unique<Relu>(n + ".relu"), {y}) : y;
    };
    int x = convBn(Graph::kInput, "stem", 2, 4, 3, 1, true);
    // identity block
    int y = convBn(x, "b1.conv1", 4, 4, 3, 1, true);
    y = convBn(y, "b1.conv2", 4, 4, 3, 1, false);
    x = g.add(std::make_unique<Add>("b1.add", true), {y, x});
    // option A, stride 2, 4 -> 8 channels
    y = convBn(x, "b2.conv1", 4, 8, 3, 2, true);
    y = convBn(y, "b2.conv2", 8, 8, 3, 1, false);
    int s = g.add(std::make_unique<SubsamplePad>("b2.shortcut", 4, 8, 2), {x});
    x = g.add(std::make_unique<Add>("b2.add", true), {y, s});
    // projection, stride 2, 8 -> 6 channels (odd sizes: 2x2 from 4x4, then 1x1 from... )
    y = convBn(x, "b3.conv1", 8, 6, 3, 2, true);
    y = convBn(y, "b3.conv2", 6, 6, 3, 1, false);
    s = convBn(x, "b3.down", 8, 6, 1, 2, false);
    x = g.add(std::make_unique<Add>("b3.add", false), {s, y});  // no ReLU, inputs swapped
    x = g.add(std::make_unique<Relu>("b3.relu"), {x});
    x = g.add(std::make_unique<GlobalAvgPool>("avgpool"), {x});
    g.add(std::make_unique<Linear>("fc", 6, 3, true, false), {x});
    (void)opt;
    return std::make_unique<Network>("small-resnet", std::move(g), 3);
}

// --- A naive interpreter of a network's graph (inference mode), in double -------------------

struct T4 {
    Index n = 0, c = 0, h = 1, w = 1;
    std::vector<double> v;
    double& at(Index a, Index b, Index y, Index x) { return v[((a * c + b) * h + y) * w + x]; }
    double at(Index a, Index b, Index y, Index x) const { return v[((a * c + b) * h + y) * w + x]; }
};

T4 naiveLayer(const Layer& l, const std::vector<const T4*>& in) {
    const T4& x = *in[0];
    T4 y;
    y.n = x.n;
    if (auto* conv = dynamic_cast<const Conv2d*>(&l)) {
        const Index k = conv->kernel(), s = conv->stride(), p = conv->padding();
        y.c = conv->outChannels();
        y.h = (x.h + 2 * p - k) / s + 1;
        y.w = (x.w + 2 * p - k) / s + 1;
        y.v.assign(size_t(y.n * y.c * y.h * y.w), 0.0);
        for (Index a = 0; a < y.n; ++a)
            for (Index f = 0; f < y.c; ++f)
                for (Index i = 0; i < y.h; ++i)
                    for (Index j = 0; j < y.w; ++j) {
                        double acc = conv->bias() ? conv->bias()->value[f] : 0.0;
                        for (Index ci = 0; ci < x.c; ++ci)
                            for (Index ki = 0; ki < k; ++ki)
                                for (Index kj = 0; kj < k; ++kj) {
                                    const Index yi = i * s - p + ki, xj = j * s - p + kj;
                                    if (yi < 0 || yi >= x.h || xj < 0 || xj >= x.w) continue;
                                    acc += conv->weights()->value[((f * x.c + ci) * k + ki) * k + kj] *
                                           x.at(a, ci, yi, xj);
                                }
                        y.at(a, f, i, j) = acc;
                    }
    } else if (auto* bn = dynamic_cast<const BatchNorm*>(&l)) {
        y = x;
        for (Index a = 0; a < y.n; ++a)
            for (Index c = 0; c < y.c; ++c)
                for (Index i = 0; i < y.h * y.w; ++i) {
                    double& v = y.v[size_t((a * y.c + c) * y.h * y.w + i)];
                    v = bn->gamma()->value[c] * (v - bn->runningMean()[c]) /
                            std::sqrt(double(bn->runningVar()[c]) + bn->epsilon()) +
                        bn->beta()->value[c];
                    if (bn->fusedRelu()) v = std::max(v, 0.0);
                }
    } else if (dynamic_cast<const Relu*>(&l)) {
        y = x;
        for (double& v : y.v) v = std::max(v, 0.0);
    } else if (auto* add = dynamic_cast<const Add*>(&l)) {
        y = x;
        for (size_t i = 0; i < y.v.size(); ++i) {
            y.v[i] += in[1]->v[i];
            if (add->relu()) y.v[i] = std::max(y.v[i], 0.0);
        }
    } else if (auto* sp = dynamic_cast<const SubsamplePad*>(&l)) {
        y.c = sp->outChannels();
        y.h = (x.h - 1) / sp->stride() + 1;
        y.w = (x.w - 1) / sp->stride() + 1;
        y.v.assign(size_t(y.n * y.c * y.h * y.w), 0.0);
        for (Index a = 0; a < y.n; ++a)
            for (Index c = 0; c < x.c; ++c)
                for (Index i = 0; i < y.h; ++i)
                    for (Index j = 0; j < y.w; ++j)
                        y.at(a, c + sp->padBefore(), i, j) = x.at(a, c, i * sp->stride(), j * sp->stride());
    } else if (dynamic_cast<const GlobalAvgPool*>(&l)) {
        y.c = x.c;
        y.v.assign(size_t(y.n * y.c), 0.0);
        for (Index a = 0; a < y.n; ++a)
            for (Index c = 0; c < x.c; ++c) {
                double s = 0;
                for (Index i = 0; i < x.h; ++i)
                    for (Index j = 0; j < x.w; ++j) s += x.at(a, c, i, j);
                y.v[size_t(a * y.c + c)] = s / double(x.h * x.w);
            }
    } else if (auto* pool = dynamic_cast<const MaxPool*>(&l)) {
        const Index k = pool->kernel(), s = pool->stride(), p = pool->padding();
        y.c = x.c;
        y.h = (x.h + 2 * p - k) / s + 1;
        y.w = (x.w + 2 * p - k) / s + 1;
        y.v.assign(size_t(y.n * y.c * y.h * y.w), 0.0);
        for (Index a = 0; a < y.n; ++a)
            for (Index c = 0; c < y.c; ++c)
                for (Index i = 0; i < y.h; ++i)
                    for (Index j = 0; j < y.w; ++j) {
                        double m = -1e300;
                        for (Index ki = 0; ki < k; ++ki)
                            for (Index kj = 0; kj < k; ++kj) {
                                const Index yi = i * s - p + ki, xj = j * s - p + kj;
                                if (yi >= 0 && yi < x.h && xj >= 0 && xj < x.w) m = std::max(m, x.at(a, c, yi, xj));
                            }
                        y.at(a, c, i, j) = m;
                    }
    } else if (auto* fc = dynamic_cast<const Linear*>(&l)) {
        const Index in = x.c * x.h * x.w;
        y.c = fc->outFeatures();
        y.v.assign(size_t(y.n * y.c), 0.0);
        for (Index a = 0; a < y.n; ++a)
            for (Index o = 0; o < y.c; ++o) {
                double acc = fc->bias() ? fc->bias()->value[o] : 0.0;
                for (Index i = 0; i < in; ++i)
                    acc += fc->weights()->value[o * in + i] * x.v[size_t(a * in + i)];
                y.v[size_t(a * y.c + o)] = acc;
            }
    } else {
        BOOST_FAIL("naive interpreter: unknown layer " << l.name());
    }
    return y;
}

std::vector<double> naiveForward(const Network& net, const std::vector<float>& images, Index n) {
    T4 input;
    input.n = n;
    input.c = net.inputShape()[0];
    input.h = net.inputShape()[1];
    input.w = net.inputShape()[2];
    input.v.assign(images.begin(), images.end());
    std::vector<T4> out(net.layers().size());
    for (size_t i = 0; i < net.layers().size(); ++i) {
        std::vector<const T4*> in;
        for (int j : net.inputsOf(i)) in.push_back(j < 0 ? &input : &out[size_t(j)]);
        out[i] = naiveLayer(*net.layers()[i], in);
    }
    return out.back().v;
}

/// Random BN statistics and affine parameters, so that inference-mode BN is not the identity.
void randomizeBatchNorm(Network& net, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    testing::randomizeBatchNorm(net, rng);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(layers)

BOOST_AUTO_TEST_CASE(add_sums_inputs_of_any_layout_and_routes_the_gradient) {
  // 16 channels: nhwc and nChw16c are the same bytes (no reorder, a view of the gradient)
  for (const Index C : {20, 16}) {
    const memory::dims d{2, C, 3, 5};
    const size_t n = size_t(2 * C * 3 * 5);
    const auto a = randomData(n, 1), b = randomData(n, 2), dy = randomData(n, 3);
    const auto dy2 = randomData(n, 4);
    for (bool relu : {false, true})
        for (tag ta : {tag::nchw, tag::nhwc, tag::nChw16c})
            for (tag tb : {tag::nchw, tag::nhwc, tag::nChw8c, tag::nChw16c}) {
                Context ctx;
                Add add("add", relu);
                memory ma = inLayout(ctx, d, a, ta), mb = inLayout(ctx, d, b, tb);
                auto exec = add.compileAll(ctx, {ma.get_desc(), mb.get_desc()}, Mode::Train);
                BOOST_TEST((exec->dstDesc() == ma.get_desc()));
                const auto y = plainCopy(ctx, exec->forwardAll({&ma, &mb}, optim::Pass::Commit), tag::nchw);
                memory mdy = inLayout(ctx, d, dy, ta);
                exec->backward(mdy, true);
                BOOST_TEST((exec->diffSrc(1).get_desc() == mb.get_desc()));
                const auto da = plainCopy(ctx, exec->diffSrc(0), tag::nchw);
                const auto db = plainCopy(ctx, exec->diffSrc(1), tag::nchw);
                for (size_t i = 0; i < n; ++i) {
                    const float s = a[i] + b[i];
                    const float want = relu ? std::max(s, 0.0f) : s;
                    BOOST_TEST(y[i] == want, boost::test_tools::tolerance(1e-6f));
                    const float g = (!relu || s > 0) ? dy[i] : 0.0f;
                    BOOST_TEST(da[i] == g);
                    BOOST_TEST(db[i] == g);
                }
                // two gradients of the output (a node read twice): the fused sum equals the
                // backward of the summed gradient, bit for bit
                memory mdy2 = inLayout(ctx, d, dy2, ta);
                memory scratch(exec->dstDesc(), ctx.engine);
                exec->backwardSum({&mdy, &mdy2}, scratch, true);
                const auto fa = plainCopy(ctx, exec->diffSrc(0), tag::nchw);
                const auto fb = plainCopy(ctx, exec->diffSrc(1), tag::nchw);
                for (size_t i = 0; i < n; ++i) {
                    const float s = a[i] + b[i];
                    const float g = (!relu || s > 0) ? dy[i] + dy2[i] : 0.0f;
                    BOOST_TEST(fa[i] == g);
                    BOOST_TEST(fb[i] == g);
                }
            }
  }
}

BOOST_AUTO_TEST_CASE(same_bytes_tells_layouts_that_need_no_reorder) {
    using detail::sameBytes;
    const auto md = [](memory::dims d, tag t) { return memory::desc(d, dt::f32, t); };
    BOOST_TEST(sameBytes(md({8, 16, 5, 7}, tag::nhwc), md({8, 16, 5, 7}, tag::nChw16c)));
    BOOST_TEST(sameBytes(md({8, 8, 5, 7}, tag::nhwc), md({8, 8, 5, 7}, tag::nChw8c)));
    BOOST_TEST(sameBytes(md({8, 16, 1, 1}, tag::nchw), md({8, 16, 1, 1}, tag::nhwc)));  // 1x1
    BOOST_TEST(sameBytes(md({1, 16, 5, 7}, tag::nchw), md({1, 16, 5, 7}, tag::chwn)));  // N = 1
    BOOST_TEST(sameBytes(md({2, 16, 5, 7}, tag::nchw), md({2, 16, 5, 7}, tag::chwn)) == false);
    BOOST_TEST(sameBytes(md({8, 32, 5, 7}, tag::nhwc), md({8, 32, 5, 7}, tag::nChw16c)) == false);
    BOOST_TEST(sameBytes(md({8, 12, 5, 7}, tag::nhwc), md({8, 12, 5, 7}, tag::nChw16c)) == false);  // padded
    BOOST_TEST(sameBytes(md({8, 16, 5, 7}, tag::nhwc), md({8, 16, 7, 5}, tag::nhwc)) == false);
    BOOST_TEST(sameBytes(md({8, 16, 5, 7}, tag::nchw), md({8, 16, 5, 7}, tag::nhwc)) == false);
    BOOST_TEST(sameBytes(md({8, 16, 5, 7}, tag::nhwc),
                         memory::desc({8, 16, 5, 7}, dt::s8, tag::nChw16c)) == false);
    // exhaustively: every element at the same offset exactly when sameBytes says so
    Context ctx;
    const memory::dims d{2, 16, 3, 2};
    std::vector<float> x(2 * 16 * 3 * 2);
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(i);
    for (tag t : {tag::nchw, tag::nhwc, tag::nChw8c, tag::nChw16c})
        for (tag u : {tag::nchw, tag::nhwc, tag::nChw8c, tag::nChw16c}) {
            memory mt = inLayout(ctx, d, x, t), mu = inLayout(ctx, d, x, u);
            const float* p = static_cast<const float*>(mt.get_data_handle());
            const float* q = static_cast<const float*>(mu.get_data_handle());
            BOOST_TEST(sameBytes(md(d, t), md(d, u)) == std::equal(p, p + x.size(), q));
        }
}

BOOST_AUTO_TEST_CASE(batch_norm_of_16_channels_in_nhwc_equals_the_plain_one) {
    // 16 channels in nhwc run as nChw16c inside BatchNorm; seen from outside, nothing changes
    const Index N = 3, C = 16, H = 4, W = 5;
    const memory::dims d{N, C, H, W};
    const size_t n = size_t(N * C * H * W);
    const auto x = randomData(n, 7), dy = randomData(n, 8);
    std::vector<std::vector<float>> ys, dxs, dgs;
    for (tag t : {tag::nchw, tag::nhwc}) {
        Context ctx;
        BatchNorm bn("bn", C, 1e-5f, 0.1f, true);
        ParameterSet ps;
        bn.declare(ps);
        bn.gamma()->value = testing::randomVector(C, 9);
        bn.beta()->value = testing::randomVector(C, 10);
        bn.gamma()->grad.setZero();
        bn.beta()->grad.setZero();
        memory mx = inLayout(ctx, d, x, t);
        auto e = bn.compile(ctx, mx.get_desc(), Mode::Train);
        BOOST_TEST((e->dstDesc() == mx.get_desc()));
        ys.push_back(plainCopy(ctx, e->forward(mx, optim::Pass::Commit), tag::nchw));
        memory mdy = inLayout(ctx, d, dy, t);
        const memory& dx = e->backward(mdy, true);
        BOOST_TEST((dx.get_desc() == mx.get_desc()));
        dxs.push_back(plainCopy(ctx, dx, tag::nchw));
        dgs.push_back(std::vector<float>(bn.gamma()->grad.data(), bn.gamma()->grad.data() + C));
    }
    for (size_t i = 0; i < n; ++i) {
        BOOST_TEST(std::abs(ys[1][i] - ys[0][i]) < 1e-5f);
        BOOST_TEST(std::abs(dxs[1][i] - dxs[0][i]) < 1e-5f);
    }
    for (Index c = 0; c < C; ++c)
        BOOST_TEST(std::abs(dgs[1][size_t(c)] - dgs[0][size_t(c)]) < 1e-4f);
}

BOOST_AUTO_TEST_CASE(global_pool_and_option_a_shortcut_in_every_layout) {
  // 16 channels: SubsamplePad reads nhwc as nChw16c (the same bytes)
  for (const auto& [C, CO] : {std::pair<Index, Index>{12, 20}, {16, 32}}) {
    const Index N = 2, H = 5, W = 4, P = (CO - C) / 2;
    const memory::dims d{N, C, H, W};
    const auto x = randomData(size_t(N * C * H * W), 4);
    for (tag t : {tag::nchw, tag::nhwc, tag::nChw8c, tag::nChw16c, tag::acbd}) {
        Context ctx;
        memory mx = inLayout(ctx, d, x, t);
        // global average pooling
        GlobalAvgPool gap("gap");
        BOOST_TEST((gap.outputDims(d) == memory::dims{N, C}));
        auto e = gap.compile(ctx, mx.get_desc(), Mode::Train);
        const auto y = plainCopy(ctx, e->forward(mx, optim::Pass::Commit), tag::nc);
        const auto dy = randomData(size_t(N * C), 5);
        memory mdy(memory::desc({N, C}, dt::f32, tag::nc), ctx.engine, const_cast<float*>(dy.data()));
        const auto dx = plainCopy(ctx, e->backward(mdy, true), tag::nchw);
        for (Index a = 0; a < N; ++a)
            for (Index c = 0; c < C; ++c) {
                double s = 0;
                for (Index i = 0; i < H * W; ++i) s += x[size_t((a * C + c) * H * W + i)];
                BOOST_TEST(y[size_t(a * C + c)] == s / (H * W), boost::test_tools::tolerance(1e-5));
                for (Index i = 0; i < H * W; ++i)
                    BOOST_TEST(dx[size_t((a * C + c) * H * W + i)] == dy[size_t(a * C + c)] / (H * W),
                               boost::test_tools::tolerance(1e-6f));
            }
        // option A: stride 2, 12 -> 20 channels (4 zero channels before, 4 after)
        SubsamplePad sp("sp", C, CO, 2);
        BOOST_TEST(sp.padBefore() == P);
        const auto od = sp.outputDims(d);
        BOOST_TEST((od == memory::dims{N, CO, 3, 2}));
        auto f = sp.compile(ctx, mx.get_desc(), Mode::Train);
        const auto z = plainCopy(ctx, f->forward(mx, optim::Pass::Commit), tag::nchw);
        const auto dz = randomData(size_t(N * CO * 3 * 2), 6);
        memory mdz = inLayout(ctx, od, dz, tag::nchw);  // then into the exec's dst layout
        memory mdzl(f->dstDesc(), ctx.engine);
        dnnl::reorder(mdz, mdzl).execute(ctx.stream, mdz, mdzl);
        ctx.stream.wait();
        const auto dxs = plainCopy(ctx, f->backward(mdzl, true), tag::nchw);
        for (Index a = 0; a < N; ++a)
            for (Index c = 0; c < CO; ++c)
                for (Index i = 0; i < 3; ++i)
                    for (Index j = 0; j < 2; ++j) {
                        const Index ci = c - P;
                        const float want = ci >= 0 && ci < C ? x[size_t(((a * C + ci) * H + 2 * i) * W + 2 * j)] : 0.0f;
                        BOOST_TEST(z[size_t(((a * CO + c) * 3 + i) * 2 + j)] == want);
                    }
        for (Index a = 0; a < N; ++a)
            for (Index c = 0; c < C; ++c)
                for (Index i = 0; i < H; ++i)
                    for (Index j = 0; j < W; ++j) {
                        const bool kept = i % 2 == 0 && j % 2 == 0;
                        const float want = kept ? dz[size_t(((a * CO + c + P) * 3 + i / 2) * 2 + j / 2)] : 0.0f;
                        BOOST_TEST(dxs[size_t(((a * C + c) * H + i) * W + j)] == want);
                    }
    }
  }
}

BOOST_AUTO_TEST_CASE(padded_max_pool_matches_naive) {
    const Index N = 2, C = 3, H = 7, W = 6;
    const auto x = randomData(size_t(N * C * H * W), 8);
    MaxPool pool("p", 3, 2, 1);
    const auto od = pool.outputDims({N, C, H, W});
    BOOST_TEST((od == memory::dims{N, C, 4, 3}));
    Context ctx;
    memory mx = inLayout(ctx, {N, C, H, W}, x, tag::nchw);
    auto e = pool.compile(ctx, mx.get_desc(), Mode::Infer);
    const auto y = plainCopy(ctx, e->forward(mx, optim::Pass::Commit), tag::nchw);
    T4 in{N, C, H, W, std::vector<double>(x.begin(), x.end())};
    const T4 ref = naiveLayer(pool, {&in});
    for (size_t i = 0; i < y.size(); ++i) BOOST_TEST(y[i] == ref.v[i], boost::test_tools::tolerance(1e-6));
    BOOST_CHECK_EXCEPTION(MaxPool("q", 3, 2, 3), std::invalid_argument, messageContains("padding 3"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(graph)

BOOST_AUTO_TEST_CASE(forward_equals_a_naive_interpreter) {
    for (bool bn : {true, false}) {
        auto net = smallResnet(bn, 9);
        BOOST_TEST(!net->isChain());
        net->initialize(3);
        if (bn) randomizeBatchNorm(*net, 4);
        const Index n = 3;
        const auto x = randomData(size_t(n * 2 * 9 * 9), 9);
        const auto y = net->logits(x.data(), n);
        const auto ref = naiveForward(*net, x, n);
        BOOST_TEST_REQUIRE(y.size() == ref.size());
        for (size_t i = 0; i < y.size(); ++i)
            BOOST_TEST(y[i] == ref[i], boost::test_tools::tolerance(2e-4));
    }
    // a real model: ResNet-20 at quarter width on 3x16x16, and ResNet-18 at 1/16 width on 32x32
    ModelOptions opt;
    opt.width = 0.25;
    for (auto [name, size] : {std::pair<const char*, Index>{"resnet20", 16}, {"resnet18", 32}}) {
        opt.width = std::string(name) == "resnet18" ? 1.0 / 16 : 0.25;
        auto net = makeModel(name, {3, size, size}, 10, opt);
        net->initialize(5);
        randomizeBatchNorm(*net, 6);
        const auto x = randomData(size_t(2 * 3 * size * size), 10);
        const auto y = net->logits(x.data(), 2);
        const auto ref = naiveForward(*net, x, 2);
        for (size_t i = 0; i < y.size(); ++i)
            BOOST_TEST(y[i] == ref[i], boost::test_tools::tolerance(1e-3));
    }
}

BOOST_AUTO_TEST_CASE(gradients_match_finite_differences_through_every_path) {
    for (bool bn : {true, false}) {
        io::Dataset d = bands(12, 2, 8, 3, 1.0f);
        auto net = smallResnet(bn);
        net->initialize(5);
        net->setTrainData(d, 6, 1);
        gradCheck(*net, 6, 3e-2, 0.9);
    }
}

BOOST_AUTO_TEST_CASE(resnet20_gradients_match_finite_differences) {
    io::Dataset d = bands(8, 3, 12, 4, 1.0f);
    ModelOptions opt;
    opt.width = 0.25;
    for (Shortcut s : {Shortcut::OptionA, Shortcut::Projection}) {
        opt.shortcut = s;
        auto net = cifarResnet(20, {3, 12, 12}, 3, opt);
        net->initialize(7);
        net->setTrainData(d, 8, 2);
        // 19 BN + ReLU stages on 8 images: a perturbation of 1e-3 crosses some kink in about
        // one coordinate of six (the misses are 5-20% off, none of another sign pattern); the
        // cosine over all sampled coordinates carries this check, smallResnet's the tight one.
        gradCheck(*net, 3, 5e-2, 0.75);
    }
}

BOOST_AUTO_TEST_CASE(full_width_resnet20_gradients_match_finite_differences) {
    // 16 channels in the first stage: the nhwc convolutions, blocked batch norms and option-A
    // shortcuts that share bytes instead of copying (detail::sameBytes), and pooled gradients
    io::Dataset d = bands(8, 3, 12, 4, 1.0f);
    auto net = cifarResnet(20, {3, 12, 12}, 3, {});
    net->initialize(9);
    net->setTrainData(d, 8, 2);
    gradCheck(*net, 2, 5e-2, 0.75);
}

BOOST_AUTO_TEST_CASE(gradient_pool_shares_bytes_and_changes_no_gradient) {
    io::Dataset d = bands(16, 3, 16, 5, 1.0f);
    for (Shortcut s : {Shortcut::OptionA, Shortcut::Projection}) {
        std::vector<std::vector<float>> grads;
        std::vector<Network::PlanInfo> mem;
        for (bool pool : {false, true}) {
            ModelOptions opt;
            opt.shortcut = s;
            auto net = cifarResnet(20, {3, 16, 16}, 3, opt);
            net->initialize(11);
            net->setGradientPooling(pool);
            net->setTrainData(d, 8, 3);
            std::vector<float> g;
            for (Index b = 0; b < 2; ++b) {
                net->evaluateWithGradient(b, optim::Pass::Probe);
                for (ParameterBlock* blk : net->parameters().all())
                    g.insert(g.end(), blk->grad.data(), blk->grad.data() + blk->grad.size());
            }
            grads.push_back(std::move(g));
            mem.push_back(net->planInfo());
        }
        BOOST_TEST_REQUIRE(grads[0].size() == grads[1].size());
        size_t differ = 0;
        for (size_t i = 0; i < grads[0].size(); ++i) differ += grads[0][i] != grads[1][i];
        BOOST_TEST(differ == 0u, differ << " of " << grads[0].size() << " gradients differ");
        BOOST_TEST(mem[0].gradientPooled == mem[0].gradientOwn);  // pooling off
        BOOST_TEST(mem[1].gradientOwn == mem[0].gradientOwn);
        // 19 layers' input gradients of the first stage alone are alive one or two at a time
        BOOST_TEST(mem[1].gradientPooled * 4 < mem[1].gradientOwn,
                   mem[1].gradientPooled << " of " << mem[1].gradientOwn);
    }
    // a chain too (LeNet-5 on 28x28)
    io::Dataset m = bands(16, 1, 28, 6, 1.0f);
    std::vector<std::vector<float>> grads;
    for (bool pool : {false, true}) {
        auto net = makeModel("lenet5", {1, 28, 28}, 3, {});
        net->initialize(12);
        net->setGradientPooling(pool);
        net->setTrainData(m, 8, 4);
        net->evaluateWithGradient(1, optim::Pass::Probe);
        std::vector<float> g;
        for (ParameterBlock* blk : net->parameters().all())
            g.insert(g.end(), blk->grad.data(), blk->grad.data() + blk->grad.size());
        grads.push_back(std::move(g));
        if (pool) BOOST_TEST(net->planInfo().gradientPooled < net->planInfo().gradientOwn);
    }
    BOOST_TEST((grads[0] == grads[1]));
}

BOOST_AUTO_TEST_CASE(batch_norm_applied_inside_the_add_changes_nothing) {
    // bn2 -> add fused (Network::fuseLayers): the same loss, gradients, running statistics and
    // inference logits as unfused, up to the batch moments' rounding (computed in double here,
    // in float by oneDNN)
    io::Dataset d = bands(16, 3, 16, 5, 1.0f);
    for (Shortcut s : {Shortcut::OptionA, Shortcut::Projection}) {
        std::vector<std::vector<float>> grads, stats, logits;
        std::vector<double> losses;
        std::vector<size_t> fused;
        for (bool fuse : {false, true}) {
            ModelOptions opt;
            opt.shortcut = s;
            auto net = cifarResnet(20, {3, 16, 16}, 3, opt);
            net->initialize(13);
            std::mt19937_64 rng(5);
            testing::randomizeBatchNorm(*net, rng);
            net->setLayerFusion(fuse);
            net->setTrainData(d, 8, 3);
            fused.push_back(net->planInfo().fused.size());
            double loss = 0;
            for (Index b = 0; b < 2; ++b) loss += net->evaluateWithGradient(b, optim::Pass::Commit);
            losses.push_back(loss);
            std::vector<float> g, st;
            for (ParameterBlock* blk : net->parameters().all())
                g.insert(g.end(), blk->grad.data(), blk->grad.data() + blk->grad.size());
            for (const auto& l : net->layers())
                if (auto* bn = dynamic_cast<BatchNorm*>(l.get())) {
                    st.insert(st.end(), bn->runningMean().data(), bn->runningMean().data() + bn->channels());
                    st.insert(st.end(), bn->runningVar().data(), bn->runningVar().data() + bn->channels());
                }
            grads.push_back(std::move(g));
            stats.push_back(std::move(st));
            logits.push_back(net->logits(d, 8));
        }
        BOOST_TEST(fused[0] == 0u);
        BOOST_TEST(fused[1] == 9u);  // every block's bn2 > add
        BOOST_TEST(losses[1] == losses[0], boost::test_tools::tolerance(1e-5));
        const auto relErr = [](const std::vector<float>& a, const std::vector<float>& b) {
            double num = 0, den = 0;
            for (size_t i = 0; i < a.size(); ++i) {
                num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
                den += double(b[i]) * b[i];
            }
            return std::sqrt(num / den);
        };
        BOOST_TEST(relErr(grads[1], grads[0]) < 1e-4);
        BOOST_TEST(relErr(stats[1], stats[0]) < 1e-5);
        BOOST_TEST(relErr(logits[1], logits[0]) < 1e-5);
    }
}

BOOST_AUTO_TEST_CASE(resnet_sizes_equal_the_reference_implementations) {
    // He et al.'s CIFAR ResNets with option A (the counts of the common PyTorch port, BN and
    // the classifier's bias included) and torchvision's ResNet-18 (11,689,512 for 1000 classes).
    const std::pair<int, Index> cifar[] = {{20, 269722}, {32, 464154}, {44, 658586}, {56, 853018}};
    for (auto [depth, params] : cifar) {
        auto net = makeModel("resnet" + std::to_string(depth), {3, 32, 32}, 10);
        BOOST_TEST(net->parameters().numel() == params, "resnet" << depth);
        BOOST_TEST(net->name() == "resnet" + std::to_string(depth));
    }
    auto r18 = makeModel("resnet18", {3, 224, 224}, 1000);
    BOOST_TEST(r18->parameters().numel() == 11689512);
    BOOST_TEST((r18->outputDimsOf(r18->layers().size() - 1) == memory::dims{1, 1000}));
    // 28x28 (Fashion-MNIST) works for the CIFAR ResNets: 28 -> 14 -> 7
    auto r = makeModel("resnet20", {1, 28, 28}, 10);
    BOOST_TEST(r->layers().size() > 50u);
    BOOST_CHECK_EXCEPTION(makeModel("resnet18", {3, 28, 28}, 10), std::invalid_argument,
                          messageContains("below its 32x32 minimum"));
    BOOST_CHECK_EXCEPTION(cifarResnet(21, {3, 32, 32}, 10), std::invalid_argument,
                          messageContains("not 6n + 2"));
}

BOOST_AUTO_TEST_CASE(graph_errors_name_the_problem) {
    Graph g({1, 8, 8});
    const int a = g.add(std::make_unique<Conv2d>("c1", 1, 4, 3, 1, 1));
    BOOST_CHECK_EXCEPTION(g.add(std::make_unique<Conv2d>("c1", 4, 4, 3, 1, 1)), std::exception,
                          messageContains("a second layer named 'c1'"));
    BOOST_CHECK_EXCEPTION(g.add(std::make_unique<Relu>("r"), {5}), std::exception,
                          messageContains("r reads node 5, which is not an earlier node"));
    BOOST_CHECK_EXCEPTION(g.add(std::make_unique<Add>("add"), {a}), std::exception,
                          messageContains("add reads 2 input(s), given 1"));
    const int b = g.add(std::make_unique<Conv2d>("c2", 4, 4, 3, 2, 1), {a});
    BOOST_CHECK_EXCEPTION(g.add(std::make_unique<Add>("add"), {a, b}), std::exception,
                          messageContains("the inputs differ: [1, 4, 8, 8] and [1, 4, 4, 4]"));
    // a dead branch: c3 is read by nobody
    g.add(std::make_unique<Conv2d>("c3", 4, 4, 3, 1, 1), {a});
    g.add(std::make_unique<Linear>("fc", 4 * 4 * 4, 3), {b});
    BOOST_CHECK_EXCEPTION(Network("dead", std::move(g), 3), std::exception,
                          messageContains("the output of layer 'c3' is read by no later layer"));
}

BOOST_AUTO_TEST_CASE(a_resnet_learns_and_inference_agrees) {
    io::Dataset train = bands(240, 3, 12, 8), test = bands(90, 3, 12, 9);
    ModelOptions opt;
    opt.width = 0.25;
    auto net = cifarResnet(20, {3, 12, 12}, 3, opt);
    net->initialize(1);
    net->setTrainData(train, 24, 1);
    std::mt19937_64 rng(1);
    std::vector<Vector> mom;
    for (ParameterBlock* p : net->parameters().all()) mom.push_back(Vector::Zero(p->value.size()));
    for (int epoch = 0; epoch < 4; ++epoch) {
        net->shuffle(rng);
        for (Index b = 0; b < net->numBatches(); ++b) {
            net->evaluateWithGradient(b);
            size_t k = 0;
            for (ParameterBlock* p : net->parameters().all()) {
                mom[k] = 0.9f * mom[k] + p->grad;
                p->value -= 0.05f * mom[k++];
            }
        }
    }
    const auto eval = net->evaluateDataset(test, 64);
    BOOST_TEST_MESSAGE("resnet20/4 on bands: " << eval.accuracy);
    BOOST_TEST(eval.accuracy >= 0.9);
    const auto pred = net->predict(test, 7);
    Index agree = 0;
    for (Index i = 0; i < test.count; ++i) agree += pred[i] == test.labels[i];
    BOOST_TEST(double(agree) / test.count == eval.accuracy, boost::test_tools::tolerance(1e-9));
}

BOOST_AUTO_TEST_SUITE_END()
