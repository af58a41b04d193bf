// 2-D convolution (include/tern/nn/conv2d.hpp): oneDNN's direct and Winograd convolutions
// (weighted_exec.hpp) and tern's own Winograd (winograd.hpp), chosen per shape and CPU.
#include "tern/nn/conv2d.hpp"

#include "tern/core/error.hpp"
#include "weighted_exec.hpp"
#include "winograd.hpp"

namespace tern::nn {

using namespace detail;

namespace {

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
    std::vector<GradientBuffer> gradientBuffers() override {
        if (!diffSrcUser_) return {};
        return {{&diffSrcUser_, {}}};
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

}  // namespace

Conv2d::Conv2d(std::string name, Index inChannels, Index outChannels, Index kernel,
               Index stride, Index padding, bool bias, bool quantize)
    : WeightedLayer(std::move(name), bias, quantize), in_(inChannels), out_(outChannels),
      k_(kernel), stride_(stride), pad_(padding) {
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
    const auto prop = forwardKind(mode);
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
        // - 1 input channel: nhwc (the input's bytes are the same in both layouts; on AVX2
        //   the blocked backward-weights kernel ran at 20 GFLOP/s, the nhwc one at 120:
        //   conv1 4.6 -> 0.75 ms, the step -6% with pooling in nhwc; on AVX-512, with tern's
        //   Winograd for LeNet-5's conv2, the step 14.2 -> 10.3 ms);
        // - strided layers (ResNets' downsampling convs) blocked: oneDNN's blocked direct
        //   kernels beat its nhwc brgemm ones there (ResNet-20, 16->32 channels, stride 2,
        //   batch 128: forward 1.89 -> 1.51 ms), and the Winograd layers around them are
        //   blocked too (no reorders).
        const bool autoNhwc = (in_ >= 16 && stride_ == 1) || in_ == 1;
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
    // runs everywhere and takes the 5x5 layers on AVX-512 too (LeNet-5's conv2: the step
    // 19.4 -> 14.2 ms at batch 100 on 2 threads, AMD EPYC; see setWinogradImpl).
    const bool winogradShape = winograd_ && stride_ == 1 && in_ >= 16;
    const bool ternWinograd =
        winogradShape && (k_ == 3 || k_ == 5) &&
        detail::winogradTile(k_, dstDims[2], dstDims[3]) > 0 &&
        (winogradImpl_ == WinogradImpl::Tern ||
         (winogradImpl_ == WinogradImpl::Auto && (!hasAvx512() || k_ == 5)));
    if (ternWinograd)
        return guarded(name_, srcDims, [&]() -> std::unique_ptr<LayerExec> {
            return std::make_unique<WinogradExec>(
                ctx, mode, weights_, bias_, src,
                detail::WinogradShape{srcDims[0], in_, srcDims[2], srcDims[3], out_, k_, pad_, 0});
        });
    // oneDNN's Winograd from 32 input channels: with 16 (ResNet-20's first stage, 128x16x32x32)
    // its brgemm direct convolution on nhwc was faster (ResNet-20 step, batch 128, 2 threads,
    // AVX-512: 134 against 139 ms; from 32 channels on, Winograd stays ahead: 145 ms without it
    // for the 32-channel stage; docs/bench-train.md).
    if (winogradShape && k_ == 3 && in_ >= 32) {
        try {
            return build(d::algorithm::convolution_winograd);
        } catch (const dnnl::error&) {
        }
    }
    return guarded(name_, srcDims, [&]() -> std::unique_ptr<LayerExec> {
        return build(d::algorithm::convolution_direct);
    });
}

}  // namespace tern::nn
