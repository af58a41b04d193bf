// Layers on oneDNN v2.6 primitives (forward_training / forward_inference + backward).
#include "tern/nn/layers.hpp"

#include "tern/core/error.hpp"
#include "winograd.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <vector>

namespace tern::nn {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;
using optim::Pass;

void setNumThreads(int n) {
    if (n > 0) omp_set_num_threads(n);
}

int numThreads() { return omp_get_max_threads(); }

namespace {

memory::desc anyMd(const memory::dims& d) { return {d, dt::f32, tag::any}; }

/// Whether oneDNN runs AVX-512 (avx512_core) kernels on this CPU: some layout choices of
/// Conv2d and Linear were measured faster there and slower on AVX2 (docs/bench-train.md).
bool hasAvx512() {
    const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
    const auto avx512 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core);
    return (isa & avx512) == avx512;
}

std::string dimsStr(const memory::dims& d) {
    std::string s = "[";
    for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
    return s + "]";
}

/// Re-throws a oneDNN error with the layer's name and input dims.
template <typename F>
auto guarded(const std::string& layer, const memory::dims& src, F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const dnnl::error& e) {
        throw std::runtime_error(layer + ": oneDNN error for input " + dimsStr(src) + ": " +
                                 e.what());
    }
}

/// A memory the primitive wants in `want`, bridged from/to a neighbour's memory in `have` by
/// a reorder only when the two descriptors differ.
struct Bridge {
    bool active = false;
    memory mem;
    dnnl::reorder prim;

    void build(const dnnl::engine& eng, const memory::desc& have, const memory::desc& want) {
        active = (have != want);
        if (active) {
            mem = memory(want, eng);
            prim = dnnl::reorder(dnnl::reorder::primitive_desc(eng, have, eng, want));
        }
    }
    /// Forward direction: returns the memory in `want`, converting `from` if needed.
    const memory& into(dnnl::stream& s, const memory& from) {
        if (!active) return from;
        prim.execute(s, {{DNNL_ARG_FROM, const_cast<memory&>(from)}, {DNNL_ARG_TO, mem}});
        return mem;
    }
};

/// Reorder from an internal memory back out to a user memory (gradients).
struct OutBridge {
    bool active = false;
    memory mem;  // internal, in the primitive's format
    dnnl::reorder prim;

    void build(const dnnl::engine& eng, const memory::desc& internal, const memory::desc& user) {
        active = (internal != user);
        if (active) {
            mem = memory(internal, eng);
            prim = dnnl::reorder(dnnl::reorder::primitive_desc(eng, internal, eng, user));
        }
    }
    memory& target(memory& user) { return active ? mem : user; }
    void flush(dnnl::stream& s, memory& user) {
        if (active) prim.execute(s, {{DNNL_ARG_FROM, mem}, {DNNL_ARG_TO, user}});
    }
};

/// Executor shared by convolution and inner product: dst = op(src, W) + b, with
///   backward data:    diffSrc = op^T(diffDst, W)
///   backward weights: diffW = op'(src, diffDst), diffB = sum(diffDst).
/// W lives in the block's plain buffer (user format); it is reordered into the primitive's
/// format on every forward, because the optimizer changes it between steps.
class WeightedExec final : public LayerExec {
public:
    struct Pds {
        dnnl::primitive_desc fwdPd;
        dnnl::primitive fwd;
        dnnl::primitive_desc bwdDataPd;  // empty in Mode::Infer
        dnnl::primitive bwdData;
        dnnl::primitive_desc bwdWeightsPd;
        dnnl::primitive bwdWeights;
    };

    WeightedExec(Context& ctx, Mode mode, ParameterBlock* w, ParameterBlock* b,
                 const memory::desc& userWMd, const memory::desc& srcMd, Pds pds)
        : ctx_(ctx), mode_(mode), w_(w), b_(b), srcMd_(srcMd), p_(std::move(pds)) {
        auto& eng = ctx.engine;
        userW_ = memory(userWMd, eng, w_->value.data());
        if (b_) {
            memory::desc bMd({static_cast<memory::dim>(b_->value.size())}, dt::f32, tag::a);
            userB_ = memory(bMd, eng, b_->value.data());
            userDB_ = memory(bMd, eng, b_->grad.data());
        }
        const auto fwdSrc = p_.fwdPd.query_md(dnnl::query::src_md);
        const auto fwdW = p_.fwdPd.query_md(dnnl::query::weights_md);
        dstMd_ = p_.fwdPd.query_md(dnnl::query::dst_md);
        dst_ = memory(dstMd_, eng);
        srcIn_.build(eng, srcMd, fwdSrc);
        wFwd_.build(eng, userWMd, fwdW);
        if (mode_ == Mode::Infer) return;

        // Backward weights: src (as the forward used it) and diffDst in its formats.
        userDW_ = memory(userWMd, eng, w_->grad.data());
        const auto bwSrc = p_.bwdWeightsPd.query_md(dnnl::query::src_md);
        const auto bwDiffDst = p_.bwdWeightsPd.query_md(dnnl::query::diff_dst_md);
        const auto bwDiffW = p_.bwdWeightsPd.query_md(dnnl::query::diff_weights_md);
        srcBw_.build(eng, fwdSrc, bwSrc);
        diffDstBw_.build(eng, dstMd_, bwDiffDst);
        diffW_.build(eng, bwDiffW, userWMd);
        if (b_) {
            const auto bwDiffB = p_.bwdWeightsPd.query_md(dnnl::query::diff_weights_md, 1);
            diffB_.build(eng, bwDiffB, userDB_.get_desc());
        }
        // Backward data: weights and diffDst in its formats, diffSrc back to srcMd.
        const auto bdW = p_.bwdDataPd.query_md(dnnl::query::weights_md);
        const auto bdDiffDst = p_.bwdDataPd.query_md(dnnl::query::diff_dst_md);
        const auto bdDiffSrc = p_.bwdDataPd.query_md(dnnl::query::diff_src_md);
        wBd_.build(eng, userWMd, bdW);
        wBdSameAsFwd_ = (bdW == fwdW);
        diffDstBd_.build(eng, dstMd_, bdDiffDst);
        diffSrc_.build(eng, bdDiffSrc, srcMd);
        diffSrcUser_ = memory(srcMd, eng);
    }

    const memory& forward(const memory& src, Pass) override {
        auto& s = ctx_.stream;
        userW_.set_data_handle(w_->value.data());
        const memory& w = wFwd_.into(s, userW_);
        src_ = srcIn_.into(s, src);
        std::unordered_map<int, memory> args{
            {DNNL_ARG_SRC, src_}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, dst_}};
        if (b_) {
            userB_.set_data_handle(b_->value.data());
            args[DNNL_ARG_BIAS] = userB_;
        }
        p_.fwd.execute(s, args);
        return dst_;
    }

    const memory& backward(const memory& diffDst, bool needDiffSrc) override {
        auto& s = ctx_.stream;
        // diffW = op'(src, diffDst), diffB = sum diffDst
        userDW_.set_data_handle(w_->grad.data());
        {
            const memory& srcB = srcBw_.into(s, src_);
            const memory& dd = diffDstBw_.into(s, diffDst);
            std::unordered_map<int, memory> args{{DNNL_ARG_SRC, srcB},
                                                 {DNNL_ARG_DIFF_DST, dd},
                                                 {DNNL_ARG_DIFF_WEIGHTS, diffW_.target(userDW_)}};
            if (b_) {
                userDB_.set_data_handle(b_->grad.data());
                args[DNNL_ARG_DIFF_BIAS] = diffB_.target(userDB_);
            }
            p_.bwdWeights.execute(s, args);
            diffW_.flush(s, userDW_);
            if (b_) diffB_.flush(s, userDB_);
        }
        if (!needDiffSrc) return empty_;
        // diffSrc = op^T(diffDst, W)
        const memory& w = (wFwd_.active && wBdSameAsFwd_) ? wFwd_.mem : wBd_.into(s, userW_);
        const memory& dd = diffDstBd_.into(s, diffDst);
        memory& out = diffSrc_.target(diffSrcUser_);
        p_.bwdData.execute(s, {{DNNL_ARG_DIFF_DST, dd}, {DNNL_ARG_WEIGHTS, w},
                               {DNNL_ARG_DIFF_SRC, out}});
        diffSrc_.flush(s, diffSrcUser_);
        return diffSrcUser_;
    }

private:
    Context& ctx_;
    Mode mode_;
    ParameterBlock* w_;
    ParameterBlock* b_;
    memory::desc srcMd_;
    Pds p_;
    memory userW_, userB_, userDW_, userDB_, dst_, src_, diffSrcUser_, empty_;
    Bridge srcIn_, wFwd_, srcBw_, diffDstBw_, wBd_, diffDstBd_;
    OutBridge diffW_, diffB_, diffSrc_;
    bool wBdSameAsFwd_ = false;
};

/// tern's own Winograd convolution (winograd.hpp) as a layer executor: activations in nhwc
/// (bridged from and to the neighbours' layouts where they differ), weights and bias read from
/// and gradients written to the plain blocks directly.
class WinogradExec final : public LayerExec {
public:
    WinogradExec(Context& ctx, Mode mode, ParameterBlock* w, ParameterBlock* b,
                 const memory::desc& srcMd, const detail::WinogradShape& shape)
        : ctx_(ctx), w_(w), b_(b), conv_(shape) {
        auto& eng = ctx.engine;
        const memory::dims srcDims = srcMd.dims();
        const memory::desc nhwcSrc(srcDims, dt::f32, tag::nhwc);
        dstMd_ = memory::desc({shape.n, shape.o, conv_.outH(), conv_.outW()}, dt::f32, tag::nhwc);
        dst_ = memory(dstMd_, eng);
        srcIn_.build(eng, srcMd, nhwcSrc);
        if (mode == Mode::Infer) return;
        diffSrc_.build(eng, nhwcSrc, srcMd);
        diffSrcUser_ = memory(srcMd, eng);
    }

    const memory& forward(const memory& src, Pass) override {
        src_ = srcIn_.into(ctx_.stream, src);
        conv_.forward(static_cast<const float*>(src_.get_data_handle()), w_->value.data(),
                      b_ ? b_->value.data() : nullptr, static_cast<float*>(dst_.get_data_handle()));
        return dst_;
    }

    const memory& backward(const memory& diffDst, bool needDiffSrc) override {
        memory& out = diffSrc_.target(diffSrcUser_);
        conv_.backward(static_cast<const float*>(src_.get_data_handle()),
                       static_cast<const float*>(diffDst.get_data_handle()), w_->grad.data(),
                       b_ ? b_->grad.data() : nullptr,
                       needDiffSrc ? static_cast<float*>(out.get_data_handle()) : nullptr);
        if (!needDiffSrc) return empty_;
        diffSrc_.flush(ctx_.stream, diffSrcUser_);
        return diffSrcUser_;
    }

private:
    Context& ctx_;
    ParameterBlock* w_;
    ParameterBlock* b_;
    detail::WinogradConv conv_;
    memory dst_, src_, diffSrcUser_, empty_;
    Bridge srcIn_;
    OutBridge diffSrc_;
};

void heNormal(ParameterBlock* w, Index fanIn, std::mt19937_64& rng) {
    std::normal_distribution<float> dist(0.0f, std::sqrt(2.0f / static_cast<float>(fanIn)));
    for (Index i = 0; i < w->value.size(); ++i) w->value[i] = dist(rng);
}

}  // namespace

// ------------------------------------------------------------------------------- Conv2d

Conv2d::Conv2d(std::string name, Index inChannels, Index outChannels, Index kernel,
               Index stride, Index padding, bool bias, bool quantize)
    : name_(std::move(name)), in_(inChannels), out_(outChannels), k_(kernel), stride_(stride),
      pad_(padding), hasBias_(bias), quantize_(quantize) {
    const std::string where = "Conv2d(" + name_ + ")";
    requirePositive(static_cast<double>(in_), where.c_str(), "inChannels");
    requirePositive(static_cast<double>(out_), where.c_str(), "outChannels");
    requirePositive(static_cast<double>(k_), where.c_str(), "kernel");
    requirePositive(static_cast<double>(stride_), where.c_str(), "stride");
    requireNonNegative(static_cast<double>(pad_), where.c_str(), "padding");
}

std::string Conv2d::describe() const {
    return TERN_MSG(name_ << ": " << out_ << "-C" << k_ << " (" << in_ << "->" << out_
                          << (quantize_ ? ", quantized" : ", float") << ")");
}

void Conv2d::declare(ParameterSet& params) {
    weights_ = &params.add(name_ + ".weights", Shape{out_, in_, k_, k_}, quantize_, true);
    if (hasBias_) bias_ = &params.add(name_ + ".bias", Shape{out_}, false, false);
}

void Conv2d::initialize(std::mt19937_64& rng) {
    heNormal(weights_, in_ * k_ * k_, rng);
    if (bias_) bias_->value.setZero();
}

memory::dims Conv2d::outputDims(const memory::dims& src) const {
    if (src.size() != 4 || src[1] != in_)
        fail("Conv2d::outputDims()", TERN_MSG(name_ << " expects input [N, " << in_
                                                    << ", H, W], got " << dimsStr(src)));
    const Index h = (src[2] + 2 * pad_ - k_) / stride_ + 1;
    const Index w = (src[3] + 2 * pad_ - k_) / stride_ + 1;
    if (h <= 0 || w <= 0)
        fail("Conv2d::outputDims()", name_ + ": input " + dimsStr(src) + " is too small");
    return {src[0], out_, h, w};
}

LayerCost Conv2d::cost(const memory::dims& src) const {
    const auto d = outputDims(src);
    return {out_ * in_ * k_ * k_, d[2] * d[3] * out_ * in_ * k_ * k_};
}

std::unique_ptr<LayerExec> Conv2d::compile(Context& ctx, const memory::desc& src, Mode mode) {
    const memory::dims srcDims = src.dims();
    const memory::dims dstDims = outputDims(srcDims);
    namespace d = dnnl;
    const memory::dims wDims{out_, in_, k_, k_};
    const memory::dims strides{stride_, stride_}, pad{pad_, pad_};
    const memory::desc bMd = hasBias_ ? memory::desc({out_}, dt::f32, tag::a) : memory::desc();
    const auto prop = mode == Mode::Train ? d::prop_kind::forward_training
                                          : d::prop_kind::forward_inference;
    // activations in nhwc, or in the format oneDNN picks
    const auto act = [](const memory::dims& dims, bool nhwc) {
        return nhwc ? memory::desc(dims, dt::f32, tag::nhwc) : anyMd(dims);
    };
    auto forwardPd = [&](d::algorithm alg, bool nhwc) {
        d::convolution_forward::desc fd(prop, alg, act(srcDims, nhwc), anyMd(wDims), bMd,
                                        act(dstDims, nhwc), strides, pad, pad);
        return d::convolution_forward::primitive_desc(fd, ctx.engine);
    };
    auto build = [&](d::algorithm alg) {
        // Auto, measured on LeNet-5 (docs/bench-train.md):
        // - >= 16 input channels: nhwc only for oneDNN's brgemm convolutions (AVX-512); on
        //   AVX2 the nhwc direct kernels are no faster than the blocked ones and cost reorders;
        // - 1 input channel on AVX2: nhwc (the input's bytes are the same in both layouts;
        //   the blocked backward-weights kernel ran at 20 GFLOP/s, the nhwc one at 120:
        //   conv1 4.6 -> 0.75 ms, the step -6% with pooling in nhwc).
        const bool autoNhwc = (in_ >= 16) || (in_ == 1 && !hasAvx512());
        bool nhwc = alg == d::algorithm::convolution_direct &&
                    (layout_ == Layout::ChannelsLast || (layout_ == Layout::Auto && autoNhwc));
        auto fpd = forwardPd(alg, nhwc);
        if (nhwc && layout_ == Layout::Auto && in_ >= 16 &&
            std::string(fpd.impl_info_str()).find("brg") == std::string::npos) {
            nhwc = false;
            fpd = forwardPd(alg, false);
        }
        WeightedExec::Pds p;
        p.fwdPd = fpd;
        p.fwd = d::convolution_forward(fpd);
        if (mode == Mode::Train) {
            d::convolution_backward_data::desc bdd(alg, act(srcDims, nhwc), anyMd(wDims),
                                                   act(dstDims, nhwc), strides, pad, pad);
            d::convolution_backward_data::primitive_desc bdpd(bdd, ctx.engine, fpd);
            d::convolution_backward_weights::desc bwd(alg, act(srcDims, nhwc), anyMd(wDims), bMd,
                                                      act(dstDims, nhwc), strides, pad, pad);
            d::convolution_backward_weights::primitive_desc bwpd(bwd, ctx.engine, fpd);
            p.bwdDataPd = bdpd;
            p.bwdData = d::convolution_backward_data(bdpd);
            p.bwdWeightsPd = bwpd;
            p.bwdWeights = d::convolution_backward_weights(bwpd);
        }
        return std::make_unique<WeightedExec>(ctx, mode, weights_, bias_,
                                              memory::desc(wDims, dt::f32, tag::oihw), src,
                                              std::move(p));
    };
    // Winograd is 2-4x faster than direct convolution for 3x3 and 5x5 stride-1 layers with
    // enough input channels (docs/bench-train.md); direct stays for the first layer of an
    // RGB/gray image and for other kernels. oneDNN's exists for 3x3 on AVX-512 only; tern's
    // runs everywhere (see setWinogradImpl).
    const bool winogradShape = winograd_ && stride_ == 1 && in_ >= 16;
    const bool ternWinograd =
        winogradShape && (k_ == 3 || k_ == 5) &&
        detail::winogradTile(k_, dstDims[2], dstDims[3]) > 0 &&
        (winogradImpl_ == WinogradImpl::Tern ||
         (winogradImpl_ == WinogradImpl::Auto && !hasAvx512()));
    if (ternWinograd)
        return guarded(name_, srcDims, [&]() -> std::unique_ptr<LayerExec> {
            return std::make_unique<WinogradExec>(
                ctx, mode, weights_, bias_, src,
                detail::WinogradShape{srcDims[0], in_, srcDims[2], srcDims[3], out_, k_, pad_, 0});
        });
    if (winogradShape && k_ == 3) {
        try {
            return build(d::algorithm::convolution_winograd);
        } catch (const dnnl::error&) {
        }
    }
    return guarded(name_, srcDims, [&]() -> std::unique_ptr<LayerExec> {
        return build(d::algorithm::convolution_direct);
    });
}

// ------------------------------------------------------------------------------- Linear

Linear::Linear(std::string name, Index inFeatures, Index outFeatures, bool bias, bool quantize)
    : name_(std::move(name)), in_(inFeatures), out_(outFeatures), hasBias_(bias),
      quantize_(quantize) {
    const std::string where = "Linear(" + name_ + ")";
    requirePositive(static_cast<double>(in_), where.c_str(), "inFeatures");
    requirePositive(static_cast<double>(out_), where.c_str(), "outFeatures");
}

std::string Linear::describe() const {
    return TERN_MSG(name_ << ": " << out_ << "-FC (" << in_ << "->" << out_
                          << (quantize_ ? ", quantized" : ", float") << ")");
}

void Linear::declare(ParameterSet& params) {
    weights_ = &params.add(name_ + ".weights", Shape{out_, in_}, quantize_, true);
    if (hasBias_) bias_ = &params.add(name_ + ".bias", Shape{out_}, false, false);
}

void Linear::initialize(std::mt19937_64& rng) {
    heNormal(weights_, in_, rng);
    if (bias_) bias_->value.setZero();
}

memory::dims Linear::outputDims(const memory::dims& src) const {
    Index features = 1;
    for (size_t i = 1; i < src.size(); ++i) features *= src[i];
    if (src.size() < 2 || features != in_)
        fail("Linear::outputDims()", TERN_MSG(name_ << " expects " << in_
                                                    << " input features, got " << dimsStr(src)));
    return {src[0], out_};
}

LayerCost Linear::cost(const memory::dims&) const { return {out_ * in_, out_ * in_}; }

std::unique_ptr<LayerExec> Linear::compile(Context& ctx, const memory::desc& src, Mode mode) {
    const memory::dims srcDims = src.dims();
    const memory::dims dstDims = outputDims(srcDims);
    return guarded(name_, srcDims, [&]() -> std::unique_ptr<LayerExec> {
        namespace d = dnnl;
        // Weights follow the input's rank: {O, C, H, W} (oihw) on a 4-D input, {O, I} (oi)
        // on a 2-D one; both are the row-major {out, in} block.
        memory::dims wDims{out_};
        wDims.insert(wDims.end(), srcDims.begin() + 1, srcDims.end());
        const tag userTag = srcDims.size() == 4 ? tag::oihw : tag::oi;
        if (srcDims.size() != 4 && srcDims.size() != 2)
            fail("Linear::compile()", name_ + ": input must be 2-D or 4-D, got " + dimsStr(srcDims));
        const memory::desc bMd = hasBias_ ? memory::desc({out_}, dt::f32, tag::a) : memory::desc();
        const auto prop = mode == Mode::Train ? d::prop_kind::forward_training
                                              : d::prop_kind::forward_inference;
        // The forward may take the weights in the layout oneDNN prefers (then a reorder from
        // the block's row-major {out, in} buffer runs each step); the backward passes read
        // and write the plain block directly: no reorder there.
        const memory::desc wMd(wDims, dt::f32, userTag);
        auto forwardPd = [&](const memory::desc& w) {
            d::inner_product_forward::desc fd(prop, anyMd(srcDims), w, bMd, anyMd(dstDims));
            return d::inner_product_forward::primitive_desc(fd, ctx.engine);
        };
        // On AVX-512 (session-3 micro-benchmark, LeNet-5's fc1) oneDNN's preferred layout
        // ([in, out]) runs the forward 0.76 -> 0.32 ms, ~0.1 ms of reorder included; on AVX2
        // the same choice is slower than the plain weights (1.24 -> 1.67 ms + 0.62 ms of
        // reorder), so plain weights stay there.
        const bool preferred = layout_ == WeightLayout::Preferred ||
                               (layout_ == WeightLayout::Auto && hasAvx512());
        auto fpd = forwardPd(preferred ? anyMd(wDims) : wMd);
        WeightedExec::Pds p;
        p.fwdPd = fpd;
        p.fwd = d::inner_product_forward(fpd);
        if (mode == Mode::Train) {
            d::inner_product_backward_data::desc bdd(anyMd(srcDims), wMd, anyMd(dstDims));
            d::inner_product_backward_data::primitive_desc bdpd(bdd, ctx.engine, fpd);
            d::inner_product_backward_weights::desc bwd(anyMd(srcDims), wMd, bMd,
                                                        anyMd(dstDims));
            d::inner_product_backward_weights::primitive_desc bwpd(bwd, ctx.engine, fpd);
            p.bwdDataPd = bdpd;
            p.bwdData = d::inner_product_backward_data(bdpd);
            p.bwdWeightsPd = bwpd;
            p.bwdWeights = d::inner_product_backward_weights(bwpd);
        }
        return std::make_unique<WeightedExec>(ctx, mode, weights_, bias_, wMd, src,
                                              std::move(p));
    });
}

// ---------------------------------------------------------------------------- BatchNorm

namespace {

class BatchNormExec final : public LayerExec {
public:
    BatchNormExec(Context& ctx, Mode mode, BatchNorm& layer, const memory::desc& src2)
        : ctx_(ctx), mode_(mode), L_(layer) {
        namespace d = dnnl;
        auto& eng = ctx.engine;
        // A plain (N, C) input is run as (N, C, 1, 1) channels-last (the same bytes), where
        // oneDNN has its JIT batch norm; the 2-D reference implementation is several x slower.
        view2d_ = src2.dims().size() == 2;
        const memory::desc src =
            view2d_ ? memory::desc({src2.dims()[0], src2.dims()[1], 1, 1}, dt::f32, tag::nhwc)
                    : src2;
        srcView_ = memory(src, eng, nullptr);
        diffDstView_ = memory(src, eng, nullptr);
        const Index c = layer.channels();
        const memory::desc cMd({c}, dt::f32, tag::a);
        auto flags = d::normalization_flags::use_scale | d::normalization_flags::use_shift;
        if (mode == Mode::Infer) flags = flags | d::normalization_flags::use_global_stats;
        if (layer.fusedRelu()) flags = flags | d::normalization_flags::fuse_norm_relu;
        const auto prop = mode == Mode::Train ? d::prop_kind::forward_training
                                              : d::prop_kind::forward_inference;
        d::batch_normalization_forward::desc fd(prop, src, layer.epsilon(), flags);
        fpd_ = d::batch_normalization_forward::primitive_desc(fd, eng);
        fwd_ = d::batch_normalization_forward(fpd_);
        dst_ = memory(fpd_.dst_desc(), eng);
        dstMd_ = view2d_ ? src2 : fpd_.dst_desc();
        dstOut_ = view2d_ ? memory(src2, eng, dst_.get_data_handle()) : dst_;
        scale_ = memory(cMd, eng, layer.gamma()->value.data());
        shift_ = memory(cMd, eng, layer.beta()->value.data());
        if (mode == Mode::Infer) {
            mean_ = memory(cMd, eng, layer.runningMean().data());
            var_ = memory(cMd, eng, layer.runningVar().data());
            return;
        }
        mean_ = memory(cMd, eng);
        var_ = memory(cMd, eng);
        const auto dims = src.dims();
        count_ = 1;
        for (size_t i = 0; i < dims.size(); ++i)
            if (i != 1) count_ *= dims[i];
        d::batch_normalization_backward::desc bd(d::prop_kind::backward, src, src,
                                                 layer.epsilon(), flags);
        bpd_ = d::batch_normalization_backward::primitive_desc(bd, eng, fpd_);
        bwd_ = d::batch_normalization_backward(bpd_);
        diffSrc_ = memory(src, eng);
        diffSrcOut_ = view2d_ ? memory(src2, eng, diffSrc_.get_data_handle()) : diffSrc_;
        if (layer.fusedRelu()) workspace_ = memory(fpd_.workspace_desc(), eng);
        diffScale_ = memory(cMd, eng, layer.gamma()->grad.data());
        diffShift_ = memory(cMd, eng, layer.beta()->grad.data());
    }

    const memory& forward(const memory& src, Pass pass) override {
        srcView_.set_data_handle(src.get_data_handle());
        src_ = srcView_;
        scale_.set_data_handle(L_.gamma()->value.data());
        shift_.set_data_handle(L_.beta()->value.data());
        if (mode_ == Mode::Infer) {
            mean_.set_data_handle(L_.runningMean().data());
            var_.set_data_handle(L_.runningVar().data());
        }
        std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src_},     {DNNL_ARG_DST, dst_},
                                             {DNNL_ARG_SCALE, scale_}, {DNNL_ARG_SHIFT, shift_},
                                             {DNNL_ARG_MEAN, mean_},   {DNNL_ARG_VARIANCE, var_}};
        if (mode_ == Mode::Train && L_.fusedRelu()) args[DNNL_ARG_WORKSPACE] = workspace_;
        fwd_.execute(ctx_.stream, args);
        if (mode_ == Mode::Train && pass == Pass::Commit) {
            // running = (1 - m) running + m batch; the variance unbiased (as PyTorch keeps it).
            ctx_.stream.wait();
            const Index c = L_.channels();
            Eigen::Map<const Vector> m(static_cast<const float*>(mean_.get_data_handle()), c);
            Eigen::Map<const Vector> v(static_cast<const float*>(var_.get_data_handle()), c);
            const float mom = L_.momentum();
            const float unbias = count_ > 1 ? float(count_) / float(count_ - 1) : 1.0f;
            L_.runningMean() = (1 - mom) * L_.runningMean() + mom * m;
            L_.runningVar() = (1 - mom) * L_.runningVar() + (mom * unbias) * v;
        }
        return dstOut_;
    }

    const memory& backward(const memory& diffDst, bool) override {
        diffScale_.set_data_handle(L_.gamma()->grad.data());
        diffShift_.set_data_handle(L_.beta()->grad.data());
        diffDstView_.set_data_handle(diffDst.get_data_handle());
        std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src_},
                                             {DNNL_ARG_MEAN, mean_},
                                             {DNNL_ARG_VARIANCE, var_},
                                             {DNNL_ARG_DIFF_DST, diffDstView_},
                                             {DNNL_ARG_SCALE, scale_},
                                             {DNNL_ARG_SHIFT, shift_},
                                             {DNNL_ARG_DIFF_SRC, diffSrc_},
                                             {DNNL_ARG_DIFF_SCALE, diffScale_},
                                             {DNNL_ARG_DIFF_SHIFT, diffShift_}};
        if (L_.fusedRelu()) args[DNNL_ARG_WORKSPACE] = workspace_;
        bwd_.execute(ctx_.stream, args);
        return diffSrcOut_;
    }

private:
    Context& ctx_;
    Mode mode_;
    BatchNorm& L_;
    Index count_ = 1;
    dnnl::batch_normalization_forward::primitive_desc fpd_;
    dnnl::batch_normalization_forward fwd_;
    dnnl::batch_normalization_backward::primitive_desc bpd_;
    dnnl::batch_normalization_backward bwd_;
    memory src_, dst_, scale_, shift_, mean_, var_, diffSrc_, diffScale_, diffShift_, workspace_;
    bool view2d_ = false;
    memory srcView_, diffDstView_, dstOut_, diffSrcOut_;  // 4-D views in, 2-D views out
};

}  // namespace

BatchNorm::BatchNorm(std::string name, Index channels, float epsilon, float momentum,
                     bool fuseRelu)
    : name_(std::move(name)), c_(channels), eps_(epsilon), momentum_(momentum),
      fuseRelu_(fuseRelu) {
    const std::string where = "BatchNorm(" + name_ + ")";
    requirePositive(static_cast<double>(c_), where.c_str(), "channels");
    requirePositive(eps_, where.c_str(), "epsilon");
    requireInRange(momentum_, 0, 1, where.c_str(), "momentum");
    runningMean_ = Vector::Zero(c_);
    runningVar_ = Vector::Ones(c_);
}

void BatchNorm::declare(ParameterSet& params) {
    gamma_ = &params.add(name_ + ".gamma", Shape{c_}, false, false);
    beta_ = &params.add(name_ + ".beta", Shape{c_}, false, false);
}

void BatchNorm::initialize(std::mt19937_64&) {
    gamma_->value.setOnes();
    beta_->value.setZero();
    runningMean_.setZero();
    runningVar_.setOnes();
}

std::unique_ptr<LayerExec> BatchNorm::compile(Context& ctx, const memory::desc& src, Mode mode) {
    const memory::dims dims = src.dims();
    if (dims.size() < 2 || dims[1] != c_)
        fail("BatchNorm::compile()", TERN_MSG(name_ << " expects " << c_ << " channels, got "
                                                    << dimsStr(dims)));
    return guarded(name_, dims, [&]() -> std::unique_ptr<LayerExec> {
        return std::make_unique<BatchNormExec>(ctx, mode, *this, src);
    });
}

void BatchNorm::saveState(StateWriter& out, const std::string& prefix) const {
    out.write(prefix + name_ + ".running_mean", runningMean_, Shape{c_});
    out.write(prefix + name_ + ".running_var", runningVar_, Shape{c_});
}

void BatchNorm::loadState(const StateReader& in, const std::string& prefix) {
    runningMean_ = in.read(prefix + name_ + ".running_mean", Shape{c_});
    runningVar_ = in.read(prefix + name_ + ".running_var", Shape{c_});
}

// --------------------------------------------------------------------------------- Relu

namespace {

class ReluExec final : public LayerExec {
public:
    ReluExec(Context& ctx, Mode mode, const memory::desc& src) : ctx_(ctx) {
        namespace d = dnnl;
        const auto prop = mode == Mode::Train ? d::prop_kind::forward_training
                                              : d::prop_kind::forward_inference;
        d::eltwise_forward::desc fd(prop, d::algorithm::eltwise_relu, src, 0.0f, 0.0f);
        d::eltwise_forward::primitive_desc fpd(fd, ctx.engine);
        fwd_ = d::eltwise_forward(fpd);
        dstMd_ = fpd.dst_desc();
        dst_ = memory(dstMd_, ctx.engine);
        if (mode == Mode::Infer) return;
        d::eltwise_backward::desc bd(d::algorithm::eltwise_relu, src, src, 0.0f, 0.0f);
        d::eltwise_backward::primitive_desc bpd(bd, ctx.engine, fpd);
        bwd_ = d::eltwise_backward(bpd);
        diffSrc_ = memory(src, ctx.engine);
    }
    const memory& forward(const memory& src, Pass) override {
        src_ = src;
        fwd_.execute(ctx_.stream, {{DNNL_ARG_SRC, src_}, {DNNL_ARG_DST, dst_}});
        return dst_;
    }
    const memory& backward(const memory& diffDst, bool) override {
        bwd_.execute(ctx_.stream, {{DNNL_ARG_SRC, src_},
                                   {DNNL_ARG_DIFF_DST, const_cast<memory&>(diffDst)},
                                   {DNNL_ARG_DIFF_SRC, diffSrc_}});
        return diffSrc_;
    }

private:
    Context& ctx_;
    dnnl::eltwise_forward fwd_;
    dnnl::eltwise_backward bwd_;
    memory src_, dst_, diffSrc_;
};

class MaxPoolExec final : public LayerExec {
public:
    MaxPoolExec(Context& ctx, Mode mode, const memory::desc& src, const memory::dims& dstDims,
                Index k, Index stride)
        : ctx_(ctx), mode_(mode) {
        namespace d = dnnl;
        const auto prop = mode == Mode::Train ? d::prop_kind::forward_training
                                              : d::prop_kind::forward_inference;
        const memory::dims kernel{k, k}, strides{stride, stride}, pad{0, 0};
        d::pooling_forward::desc fd(prop, d::algorithm::pooling_max, src, anyMd(dstDims),
                                    strides, kernel, pad, pad);
        d::pooling_forward::primitive_desc fpd(fd, ctx.engine);
        fwd_ = d::pooling_forward(fpd);
        dstMd_ = fpd.dst_desc();
        dst_ = memory(dstMd_, ctx.engine);
        if (mode == Mode::Infer) return;
        workspace_ = memory(fpd.workspace_desc(), ctx.engine);
        d::pooling_backward::desc bd(d::algorithm::pooling_max, src, dstMd_, strides, kernel,
                                     pad, pad);
        d::pooling_backward::primitive_desc bpd(bd, ctx.engine, fpd);
        bwd_ = d::pooling_backward(bpd);
        diffSrc_ = memory(src, ctx.engine);
    }
    const memory& forward(const memory& src, Pass) override {
        std::unordered_map<int, memory> args{{DNNL_ARG_SRC, const_cast<memory&>(src)},
                                             {DNNL_ARG_DST, dst_}};
        if (mode_ == Mode::Train) args[DNNL_ARG_WORKSPACE] = workspace_;
        fwd_.execute(ctx_.stream, args);
        return dst_;
    }
    const memory& backward(const memory& diffDst, bool) override {
        bwd_.execute(ctx_.stream, {{DNNL_ARG_DIFF_DST, const_cast<memory&>(diffDst)},
                                   {DNNL_ARG_DIFF_SRC, diffSrc_},
                                   {DNNL_ARG_WORKSPACE, workspace_}});
        return diffSrc_;
    }

private:
    Context& ctx_;
    Mode mode_;
    dnnl::pooling_forward fwd_;
    dnnl::pooling_backward bwd_;
    memory dst_, diffSrc_, workspace_;
};

// Max pooling kernels on one [H][W][B] plane (B contiguous channels per position). Each inner
// loop runs over the B channels; B = 8 and 16 (the blocked layouts) get loops of fixed length.
// The dispatchers are built for AVX-512, AVX2 and the baseline ISA and chosen at load time
// (the library is compiled without -march); the kernels inline into each clone.
template <int FixedB>
inline __attribute__((always_inline)) void maxPoolPlaneImpl(
    const float* __restrict in, float* __restrict out, std::uint8_t* __restrict at, Index w,
    Index runtimeB, Index oh, Index ow, Index k, Index stride) {
    const Index b = FixedB > 0 ? FixedB : runtimeB;
    for (Index i = 0; i < oh; ++i)
        for (Index j = 0; j < ow; ++j) {
            const float* win = in + ((i * stride) * w + j * stride) * b;
            float* __restrict m = out + (i * ow + j) * b;
            std::uint8_t* __restrict best = at ? at + (i * ow + j) * b : nullptr;
            for (Index c = 0; c < b; ++c) m[c] = win[c];
            if (best)
                for (Index c = 0; c < b; ++c) best[c] = 0;
            for (Index kh = 0; kh < k; ++kh)
                for (Index kw = (kh == 0 ? 1 : 0); kw < k; ++kw) {
                    const float* __restrict v = win + (kh * w + kw) * b;
                    const auto pos = static_cast<std::uint8_t>(kh * k + kw);
                    if (best) {
                        for (Index c = 0; c < b; ++c) {
                            const bool more = v[c] > m[c];
                            m[c] = more ? v[c] : m[c];
                            best[c] = more ? pos : best[c];
                        }
                    } else {
                        for (Index c = 0; c < b; ++c) m[c] = v[c] > m[c] ? v[c] : m[c];
                    }
                }
        }
}

template <int FixedB>
inline __attribute__((always_inline)) void maxPoolPlaneBackwardImpl(
    const float* __restrict dy, const std::uint8_t* __restrict at, float* __restrict dx, Index h,
    Index w, Index runtimeB, Index oh, Index ow, Index k, Index stride) {
    const Index b = FixedB > 0 ? FixedB : runtimeB;
    std::fill(dx, dx + h * w * b, 0.0f);
    for (Index i = 0; i < oh; ++i)
        for (Index j = 0; j < ow; ++j) {
            float* win = dx + ((i * stride) * w + j * stride) * b;
            const float* __restrict g = dy + (i * ow + j) * b;
            const std::uint8_t* __restrict a = at + (i * ow + j) * b;
            for (Index kh = 0; kh < k; ++kh)
                for (Index kw = 0; kw < k; ++kw) {
                    float* __restrict d = win + (kh * w + kw) * b;
                    const auto pos = static_cast<std::uint8_t>(kh * k + kw);
                    for (Index c = 0; c < b; ++c) d[c] += a[c] == pos ? g[c] : 0.0f;
                }
        }
}

__attribute__((target_clones("avx512f", "avx2", "default")))
void maxPoolPlane(const float* in, float* out, std::uint8_t* at, Index w, Index b, Index oh,
                  Index ow, Index k, Index stride) {
    if (b == 8) maxPoolPlaneImpl<8>(in, out, at, w, b, oh, ow, k, stride);
    else if (b == 16) maxPoolPlaneImpl<16>(in, out, at, w, b, oh, ow, k, stride);
    else maxPoolPlaneImpl<0>(in, out, at, w, b, oh, ow, k, stride);
}

__attribute__((target_clones("avx512f", "avx2", "default")))
void maxPoolPlaneBackward(const float* dy, const std::uint8_t* at, float* dx, Index h, Index w,
                          Index b, Index oh, Index ow, Index k, Index stride) {
    if (b == 8) maxPoolPlaneBackwardImpl<8>(dy, at, dx, h, w, b, oh, ow, k, stride);
    else if (b == 16) maxPoolPlaneBackwardImpl<16>(dy, at, dx, h, w, b, oh, ow, k, stride);
    else maxPoolPlaneBackwardImpl<0>(dy, at, dx, h, w, b, oh, ow, k, stride);
}

/// Max pooling without padding, written out: on 2 AVX2 threads oneDNN 2.6's pooling runs a
/// 2x2 pool of LeNet-5's 100x32x24x24 activations in 3.4-3.8 ms forward and 2.4-3.1 ms
/// backward (nhwc; nChw8c 2.7 / 2.2 ms), these loops in 0.65-1.1 / 0.54-0.74 ms (nChw8c
/// 1.3 / 1.4 ms; docs/bench-train.md). Works on the layouts the neighbouring
/// layers produce, all of the form [N][Cb][H][W][B]: nchw (Cb = C, B = 1), nhwc (Cb = 1,
/// B = C) and nChw8c / nChw16c (Cb = ceil(C / B), padded channels included). The forward
/// keeps the window position of each maximum (1 byte) for the backward, which routes each
/// output gradient to that input (the first maximum of a window on ties, like oneDNN).
class DirectMaxPoolExec final : public LayerExec {
public:
    struct Geometry {
        Index n, cb, h, w, b, oh, ow, k, stride;
    };
    /// The layout of `src` as [N][Cb][H][W][B] and the tag that gives dst the same layout;
    /// nothing for other layouts (then oneDNN's pooling runs).
    static std::optional<std::pair<Geometry, tag>> match(const memory::desc& src,
                                                          const memory::dims& dstDims, Index k,
                                                          Index stride) {
        const auto d = src.dims();
        if (d.size() != 4 || src.data_type() != dt::f32 || k * k > 255) return std::nullopt;
        const Index c = d[1];
        struct Cand { tag t; Index cb, b; };
        const Cand cands[] = {{tag::nchw, c, 1}, {tag::nhwc, 1, c},
                              {tag::nChw8c, (c + 7) / 8, 8}, {tag::nChw16c, (c + 15) / 16, 16}};
        for (const Cand& x : cands)
            if (src == memory::desc(d, dt::f32, x.t))
                return std::make_pair(Geometry{d[0], x.cb, d[2], d[3], x.b, dstDims[2],
                                               dstDims[3], k, stride},
                                      x.t);
        return std::nullopt;
    }

    DirectMaxPoolExec(Context& ctx, Mode mode, const memory::desc& src,
                      const memory::dims& dstDims, Geometry g, tag t)
        : mode_(mode), g_(g) {
        dstMd_ = memory::desc(dstDims, dt::f32, t);
        dst_ = memory(dstMd_, ctx.engine);
        if (mode == Mode::Infer) return;
        where_.resize(static_cast<size_t>(g.n * g.cb * g.oh * g.ow * g.b));
        diffSrc_ = memory(src, ctx.engine);
    }

    const memory& forward(const memory& src, Pass) override {
        const Geometry& g = g_;
        const auto* x = static_cast<const float*>(src.get_data_handle());
        auto* y = static_cast<float*>(dst_.get_data_handle());
        const Index planeIn = g.h * g.w * g.b, planeOut = g.oh * g.ow * g.b;
        std::uint8_t* at = mode_ == Mode::Train ? where_.data() : nullptr;
#pragma omp parallel for schedule(static)
        for (Index p = 0; p < g.n * g.cb; ++p)
            maxPoolPlane(x + p * planeIn, y + p * planeOut, at ? at + p * planeOut : nullptr,
                         g.w, g.b, g.oh, g.ow, g.k, g.stride);
        return dst_;
    }

    const memory& backward(const memory& diffDst, bool) override {
        const Geometry& g = g_;
        const auto* dy = static_cast<const float*>(diffDst.get_data_handle());
        auto* dx = static_cast<float*>(diffSrc_.get_data_handle());
        const Index planeIn = g.h * g.w * g.b, planeOut = g.oh * g.ow * g.b;
#pragma omp parallel for schedule(static)
        for (Index p = 0; p < g.n * g.cb; ++p)
            maxPoolPlaneBackward(dy + p * planeOut, where_.data() + p * planeOut,
                                 dx + p * planeIn, g.h, g.w, g.b, g.oh, g.ow, g.k, g.stride);
        return diffSrc_;
    }

private:
    Mode mode_;
    Geometry g_;
    std::vector<std::uint8_t> where_;
    memory dst_, diffSrc_;
};

class DropoutExec final : public LayerExec {
public:
    DropoutExec(Context& ctx, Mode mode, const memory::desc& src, float p, std::uint64_t salt)
        : ctx_(ctx), mode_(mode), p_(p), salt_(salt) {
        dstMd_ = src;
        n_ = static_cast<Index>(src.get_size() / sizeof(float));
        if (mode == Mode::Train) {
            dst_ = memory(src, ctx.engine);
            diffSrc_ = memory(src, ctx.engine);
            mask_.resize(n_);
        }
    }
    const memory& forward(const memory& src, Pass) override {
        if (mode_ == Mode::Infer || p_ == 0.0f) {
            passthrough_ = src;
            return passthrough_;
        }
        ctx_.stream.wait();
        std::mt19937_64 rng(ctx_.stepSeed ^ salt_);
        std::bernoulli_distribution keep(1.0 - p_);
        const float scale = 1.0f / (1.0f - p_);
        for (Index i = 0; i < n_; ++i) mask_[i] = keep(rng) ? scale : 0.0f;
        Eigen::Map<const Vector> x(static_cast<const float*>(src.get_data_handle()), n_);
        Eigen::Map<Vector> y(static_cast<float*>(dst_.get_data_handle()), n_);
        y = x.cwiseProduct(mask_);
        return dst_;
    }
    const memory& backward(const memory& diffDst, bool) override {
        if (p_ == 0.0f) {
            passthrough_ = diffDst;
            return passthrough_;
        }
        ctx_.stream.wait();
        Eigen::Map<const Vector> dy(static_cast<const float*>(diffDst.get_data_handle()), n_);
        Eigen::Map<Vector> dx(static_cast<float*>(diffSrc_.get_data_handle()), n_);
        dx = dy.cwiseProduct(mask_);
        return diffSrc_;
    }

private:
    Context& ctx_;
    Mode mode_;
    float p_;
    std::uint64_t salt_;
    Index n_ = 0;
    Vector mask_;
    memory dst_, diffSrc_, passthrough_;
};

}  // namespace

std::unique_ptr<LayerExec> Relu::compile(Context& ctx, const memory::desc& src, Mode mode) {
    return guarded(name_, src.dims(), [&]() -> std::unique_ptr<LayerExec> {
        return std::make_unique<ReluExec>(ctx, mode, src);
    });
}

MaxPool::MaxPool(std::string name, Index kernel, Index stride)
    : name_(std::move(name)), k_(kernel), stride_(stride) {
    const std::string where = "MaxPool(" + name_ + ")";
    requirePositive(static_cast<double>(k_), where.c_str(), "kernel");
    requirePositive(static_cast<double>(stride_), where.c_str(), "stride");
}

memory::dims MaxPool::outputDims(const memory::dims& src) const {
    if (src.size() != 4 || src[2] < k_ || src[3] < k_)
        fail("MaxPool::outputDims()", name_ + ": input " + dimsStr(src) + " too small or not 4-D");
    return {src[0], src[1], (src[2] - k_) / stride_ + 1, (src[3] - k_) / stride_ + 1};
}

std::unique_ptr<LayerExec> MaxPool::compile(Context& ctx, const memory::desc& src, Mode mode) {
    const auto dstDims = outputDims(src.dims());
    return guarded(name_, src.dims(), [&]() -> std::unique_ptr<LayerExec> {
        if (direct_)
            if (auto m = DirectMaxPoolExec::match(src, dstDims, k_, stride_))
                return std::make_unique<DirectMaxPoolExec>(ctx, mode, src, dstDims, m->first,
                                                           m->second);
        return std::make_unique<MaxPoolExec>(ctx, mode, src, dstDims, k_, stride_);
    });
}

Dropout::Dropout(std::string name, float p) : name_(std::move(name)), p_(p) {
    requireInRange(p_, 0, 0.99, ("Dropout(" + name_ + ")").c_str(), "p");
}

std::unique_ptr<LayerExec> Dropout::compile(Context& ctx, const memory::desc& src, Mode mode) {
    return std::make_unique<DropoutExec>(ctx, mode, src, p_, std::hash<std::string>{}(name_));
}

}  // namespace tern::nn
