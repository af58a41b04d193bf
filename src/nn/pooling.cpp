// Max pooling (include/tern/nn/pooling.hpp): tern's own loops on the plain and blocked layouts,
// oneDNN's pooling primitive on the others.
#include "tern/nn/pooling.hpp"

#include "tern/core/error.hpp"
#include "layer_util.hpp"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tern::nn {

using namespace detail;

namespace {

class MaxPoolExec final : public LayerExec {
public:
    MaxPoolExec(Context& ctx, Mode mode, const memory::desc& src, const memory::dims& dstDims,
                Index k, Index stride, Index padding)
        : ctx_(ctx), mode_(mode) {
        namespace d = dnnl;
        const auto prop = forwardKind(mode);
        const memory::dims kernel{k, k}, strides{stride, stride}, pad{padding, padding};
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
    std::vector<GradientBuffer> gradientBuffers() override {
        if (!diffSrc_) return {};
        return {{&diffSrc_, {}}};
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
    std::vector<GradientBuffer> gradientBuffers() override {
        if (!diffSrc_) return {};
        return {{&diffSrc_, {}}};
    }

private:
    Mode mode_;
    Geometry g_;
    std::vector<std::uint8_t> where_;
    memory dst_, diffSrc_;
};

}  // namespace

MaxPool::MaxPool(std::string name, Index kernel, Index stride, Index padding)
    : name_(std::move(name)), k_(kernel), stride_(stride), pad_(padding) {
    const std::string where = "MaxPool(" + name_ + ")";
    requirePositive(static_cast<double>(k_), where.c_str(), "kernel");
    requirePositive(static_cast<double>(stride_), where.c_str(), "stride");
    requireNonNegative(static_cast<double>(pad_), where.c_str(), "padding");
    if (pad_ >= k_) fail(where, TERN_MSG("padding " << pad_ << " must be below the window " << k_));
}

memory::dims MaxPool::outputDims(const memory::dims& src) const {
    if (src.size() != 4 || src[2] + 2 * pad_ < k_ || src[3] + 2 * pad_ < k_)
        fail("MaxPool::outputDims()", name_ + ": input " + dimsStr(src) + " too small or not 4-D");
    return {src[0], src[1], (src[2] + 2 * pad_ - k_) / stride_ + 1,
            (src[3] + 2 * pad_ - k_) / stride_ + 1};
}

std::unique_ptr<LayerExec> MaxPool::compile(Context& ctx, const memory::desc& src, Mode mode) {
    const auto dstDims = outputDims(src.dims());
    return guarded(name_, src.dims(), [&]() -> std::unique_ptr<LayerExec> {
        if (direct_ && pad_ == 0)
            if (auto m = DirectMaxPoolExec::match(src, dstDims, k_, stride_))
                return std::make_unique<DirectMaxPoolExec>(ctx, mode, src, dstDims, m->first,
                                                           m->second);
        return std::make_unique<MaxPoolExec>(ctx, mode, src, dstDims, k_, stride_, pad_);
    });
}

}  // namespace tern::nn
