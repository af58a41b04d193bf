// The layers of residual networks (include/tern/nn/residual.hpp): Add (+ ReLU), global average
// pooling and the option-A shortcut, as loops over the layouts their neighbours produce.
#include "tern/nn/residual.hpp"

#include "tern/core/error.hpp"
#include "layer_util.hpp"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>

namespace tern::nn {

using namespace detail;

namespace {

/// Floats in a memory of descriptor `md` (blocked layouts include their padded channels).
Index floatsOf(const memory::desc& md) { return static_cast<Index>(md.get_size() / sizeof(float)); }

float* data(const memory& m) { return static_cast<float*>(m.get_data_handle()); }

void zero(const memory& m) { std::fill(data(m), data(m) + floatsOf(m.get_desc()), 0.0f); }

// ---------------------------------------------------------------------------------------------
// Add

class AddExec final : public LayerExec, public AffineSink {
public:
    AddExec(Context& ctx, Mode mode, const memory::desc& a, const memory::desc& b, bool relu)
        : ctx_(ctx), relu_(relu), bMd_(b) {
        dstMd_ = a;
        n_ = floatsOf(a);
        dst_ = memory(a, ctx.engine);
        bIn_.build(ctx.engine, b, a);
        if (mode == Mode::Infer) return;
        diffA_ = memory(a, ctx.engine);
        if (bIn_.active) {
            diffB_ = memory(b, ctx.engine);
            diffBOut_ = dnnl::reorder(dnnl::reorder::primitive_desc(ctx.engine, a, ctx.engine, b));
        } else if (bIn_.alias) {
            diffB_ = memory(b, ctx.engine, diffA_.get_data_handle());  // the same bytes
        }
    }
    const memory& forward(const memory& src, Pass) override {
        (void)src;
        throw std::logic_error("Add: forward() needs both inputs (forwardAll)");
    }
    /// Input 0 from a batch norm that leaves its a z + b to this pass (Network::compile): on a
    /// [N][Cb][H][W][B] layout without padded channels.
    bool absorbAffine(int i, AffineSource* src) override {
        bool matched = false;
        const Blocks bl = blocksOf(dstMd_, &matched);
        const auto d = dstMd_.dims();
        if (i != 0 || !matched || bl.cb * bl.b != d[1]) return false;
        aff_ = src;
        blocks_ = bl;
        return true;
    }
    const memory& forwardAll(const std::vector<const memory*>& srcs, Pass) override {
        if (aff_) return forwardAffine(*srcs.at(1));
        const float* a = data(*srcs.at(0));
        const float* b = data(bIn_.into(ctx_.stream, *srcs.at(1)));
        ctx_.stream.wait();
        float* y = data(dst_);
        const Index n = n_;
        if (relu_) {
#pragma omp parallel for simd schedule(static)
            for (Index i = 0; i < n; ++i) {
                const float v = a[i] + b[i];
                y[i] = v > 0.0f ? v : 0.0f;
            }
        } else {
#pragma omp parallel for simd schedule(static)
            for (Index i = 0; i < n; ++i) y[i] = a[i] + b[i];
        }
        return dst_;
    }
    const memory& backward(const memory& diffDst, bool) override {
        const float* dy = data(diffDst);
        return maskedBackward([dy](Index i) { return dy[i]; });
    }
    /// Two gradients of the output (it feeds the next block's conv and shortcut): their sum
    /// and the ReLU mask in one pass, the same float operations as sum-then-backward.
    const memory& backwardSum(const std::vector<const memory*>& diffDsts, memory& scratch,
                              bool needDiffSrc) override {
        if (diffDsts.size() != 2) return LayerExec::backwardSum(diffDsts, scratch, needDiffSrc);
        const float* p = data(*diffDsts[0]);
        const float* q = data(*diffDsts[1]);
        return maskedBackward([p, q](Index i) { return p[i] + q[i]; });
    }
    std::vector<GradientBuffer> gradientBuffers() override {
        if (!diffA_) return {};
        if (bIn_.active) return {{&diffA_, {}}, {&diffB_, {}}};
        return {{&diffA_, {&diffB_}}};  // diffB_: a view of diffA_'s bytes, or empty
    }
    const memory& diffSrc(int i) override {
        if (i == 0) return diffA_;
        if (i == 1) return bIn_.active || bIn_.alias ? diffB_ : diffA_;
        return LayerExec::diffSrc(i);
    }

private:
    /// y = [relu](s z + t + b), (s, t) per channel from the batch norm of input 0.
    const memory& forwardAffine(const memory& bMem) {
        const float* z = data(aff_->affineInput());
        const float* b = data(bIn_.into(ctx_.stream, bMem));
        ctx_.stream.wait();
        const float* s = aff_->affineScale();
        const float* t = aff_->affineShift();
        float* y = data(dst_);
        const auto d = dstMd_.dims();
        const Index n = d[0], cb = blocks_.cb, bw = blocks_.b, hw = d[2] * d[3];
        // max(v, 0) for the ReLU, max(v, -inf) = v without; scalars firstprivate and pointers
        // restrict, or GCC reloads them after every store and vectorizes nothing
        const float lo = relu_ ? 0.0f : -std::numeric_limits<float>::infinity();
#pragma omp parallel for collapse(2) schedule(static) firstprivate(lo, n, cb, bw, hw, z, b, y, s, t)
        for (Index i = 0; i < n; ++i)
            for (Index j = 0; j < cb; ++j) {
                const Index off = (i * cb + j) * hw * bw;
                const float* __restrict zp = z + off;
                const float* __restrict bp = b + off;
                float* __restrict yp = y + off;
                const float* __restrict sp = s + j * bw;
                const float* __restrict tp = t + j * bw;
                if (bw == 16) {
                    float sv[16], tv[16];
                    for (int q = 0; q < 16; ++q) {
                        sv[q] = sp[q];
                        tv[q] = tp[q];
                    }
                    for (Index p = 0; p < hw; ++p)
#pragma omp simd
                        for (int q = 0; q < 16; ++q) {
                            const float v = zp[p * 16 + q] * sv[q] + tv[q] + bp[p * 16 + q];
                            yp[p * 16 + q] = v > lo ? v : lo;
                        }
                } else {
                    for (Index p = 0; p < hw; ++p)
                        for (Index q = 0; q < bw; ++q) {
                            const float v = zp[p * bw + q] * sp[q] + tp[q] + bp[p * bw + q];
                            yp[p * bw + q] = v > lo ? v : lo;
                        }
                }
            }
        return dst_;
    }

    /// da = g(i) where y > 0 (ReLU), else 0; da = g(i) without ReLU. The mask is a bit mask:
    /// GCC 12 turns a select into a branch around g's add (not vectorized: 21 ms of a
    /// ResNet-20 step).
    template <typename G>
    const memory& maskedBackward(G g) {
        const float* y = data(dst_);
        float* da = data(diffA_);
        const Index n = n_;
        if (relu_) {
#pragma omp parallel for simd schedule(static)
            for (Index i = 0; i < n; ++i) {
                const std::uint32_t m = 0u - static_cast<std::uint32_t>(y[i] > 0.0f);
                da[i] = std::bit_cast<float>(std::bit_cast<std::uint32_t>(g(i)) & m);
            }
        } else {
#pragma omp parallel for simd schedule(static)
            for (Index i = 0; i < n; ++i) da[i] = g(i);
        }
        return finishBackward();
    }

    /// Input b's gradient: da itself, or da reordered into b's layout.
    const memory& finishBackward() {
        if (bIn_.active) {
            diffBOut_.execute(ctx_.stream, {{DNNL_ARG_FROM, diffA_}, {DNNL_ARG_TO, diffB_}});
            ctx_.stream.wait();
        }
        return diffA_;
    }

    Context& ctx_;
    bool relu_;
    AffineSource* aff_ = nullptr;  // input 0's batch norm, applied here (absorbAffine)
    Blocks blocks_;
    memory::desc bMd_;
    Index n_ = 0;
    memory dst_, diffA_, diffB_;
    Bridge bIn_;
    dnnl::reorder diffBOut_;
};

// ---------------------------------------------------------------------------------------------
// Layout helper: the [N][Cb][H][W][B] layouts (nchw: Cb = C, B = 1; nhwc: Cb = 1, B = C;
// nChw8c / nChw16c: Cb = ceil(C / B)). Anything else is reordered to nchw first.

/// Offset of element (n, c, h, w) in a [N][Cb][H][W][B] layout.
struct Layout {
    Index cb, b, h, w;
    Index at(Index n, Index c, Index y, Index x) const {
        return (((n * cb + c / b) * h + y) * w + x) * b + c % b;
    }
};

// ---------------------------------------------------------------------------------------------
// Global average pooling

class GlobalAvgPoolExec final : public LayerExec {
public:
    GlobalAvgPoolExec(Context& ctx, Mode mode, const memory::desc& src) : ctx_(ctx) {
        const auto d = src.dims();
        n_ = d[0];
        c_ = d[1];
        h_ = d[2];
        w_ = d[3];
        bool matched = false;
        const Blocks bl = blocksOf(src, &matched);
        const memory::desc plain(d, dt::f32, bl.t);
        in_.build(ctx.engine, src, plain);
        lay_ = Layout{bl.cb, bl.b, h_, w_};
        dstMd_ = memory::desc({n_, c_}, dt::f32, tag::nc);
        dst_ = memory(dstMd_, ctx.engine);
        if (mode == Mode::Infer) return;
        diffOut_.build(ctx.engine, plain, src);
        diffSrc_ = memory(src, ctx.engine);
    }
    const memory& forward(const memory& src, Pass) override {
        const float* x = data(in_.into(ctx_.stream, src));
        ctx_.stream.wait();
        float* y = data(dst_);
        const Index C = c_, HW = h_ * w_, B = lay_.b, Cb = lay_.cb;
        const float inv = 1.0f / static_cast<float>(HW);
#pragma omp parallel for schedule(static)
        for (Index n = 0; n < n_; ++n)
            for (Index cb = 0; cb < Cb; ++cb) {
                float acc[16] = {0};
                float* a = B <= 16 ? acc : nullptr;
                std::vector<float> big;
                if (!a) {
                    big.assign(static_cast<size_t>(B), 0.0f);
                    a = big.data();
                }
                const float* p = x + (n * Cb + cb) * HW * B;
                for (Index i = 0; i < HW; ++i)
                    for (Index j = 0; j < B; ++j) a[j] += p[i * B + j];
                for (Index j = 0; j < B && cb * B + j < C; ++j) y[n * C + cb * B + j] = a[j] * inv;
            }
        return dst_;
    }
    const memory& backward(const memory& diffDst, bool) override {
        const float* dy = data(diffDst);
        float* dx = data(diffOut_.target(diffSrc_));
        const Index C = c_, HW = h_ * w_, B = lay_.b, Cb = lay_.cb;
        const float inv = 1.0f / static_cast<float>(HW);
#pragma omp parallel for schedule(static)
        for (Index n = 0; n < n_; ++n)
            for (Index cb = 0; cb < Cb; ++cb) {
                float* p = dx + (n * Cb + cb) * HW * B;
                const Index valid = std::min(B, C - cb * B);  // padded channels get 0
                float g[16];
                std::vector<float> big;
                float* gv = g;
                if (B > 16) {
                    big.resize(static_cast<size_t>(B));
                    gv = big.data();
                }
                for (Index j = 0; j < B; ++j) gv[j] = j < valid ? dy[n * C + cb * B + j] * inv : 0.0f;
                for (Index i = 0; i < HW; ++i)
                    for (Index j = 0; j < B; ++j) p[i * B + j] = gv[j];
            }
        diffOut_.flush(ctx_.stream, diffSrc_);
        ctx_.stream.wait();
        return diffSrc_;
    }

private:
    Context& ctx_;
    Index n_ = 0, c_ = 0, h_ = 0, w_ = 0;
    Layout lay_{};
    Bridge in_;
    OutBridge diffOut_;
    memory dst_, diffSrc_;
};

// ---------------------------------------------------------------------------------------------
// Option-A shortcut

class SubsamplePadExec final : public LayerExec {
public:
    SubsamplePadExec(Context& ctx, Mode mode, const memory::desc& src, const memory::dims& dstDims,
                     Index stride, Index padBefore)
        : ctx_(ctx), stride_(stride), pad_(padBefore) {
        const auto d = src.dims();
        bool matched = false;
        // 16 channels in nhwc read as nChw16c (the same bytes), so that the output (more
        // channels) is blocked like the convolutions of the next stage
        const Blocks bl = blocksOf(blocked16View(src), &matched);
        const memory::desc plain(d, dt::f32, bl.t);
        in_.build(ctx.engine, src, plain);
        dstMd_ = memory::desc(dstDims, dt::f32, bl.t);
        dst_ = memory(dstMd_, ctx.engine);
        zero(dst_);  // forward() writes only the copied channels
        const Blocks ob = blocksOf(dstMd_, &matched);
        src_ = Layout{bl.cb, bl.b, d[2], d[3]};
        dstL_ = Layout{ob.cb, ob.b, dstDims[2], dstDims[3]};
        n_ = d[0];
        cin_ = d[1];
        cout_ = dstDims[1];
        if (mode == Mode::Infer) return;
        diffOut_.build(ctx.engine, plain, src);
        diffSrc_ = memory(src, ctx.engine);
        zero(diffSrc_);  // backward() writes only the subsampled positions
        if (diffOut_.active) zero(diffOut_.mem);
    }
    const memory& forward(const memory& src, Pass) override {
        const float* x = data(in_.into(ctx_.stream, src));
        ctx_.stream.wait();
        float* y = data(dst_);  // the padded channels stay 0 (zeroed once)
        const Index oh = dstL_.h, ow = dstL_.w, s = stride_;
        const Index ib = src_.b, ob = dstL_.b, iw = src_.w;
#pragma omp parallel for collapse(2) schedule(static)
        for (Index n = 0; n < n_; ++n)
            for (Index c = 0; c < cin_; ++c) {
                // element (y, x) of a channel plane sits at base + (y W + x) B
                const float* xp = x + src_.at(n, c, 0, 0);
                float* yp = y + dstL_.at(n, c + pad_, 0, 0);
                for (Index i = 0; i < oh; ++i)
                    for (Index j = 0; j < ow; ++j) yp[(i * ow + j) * ob] = xp[(i * s * iw + j * s) * ib];
            }
        return dst_;
    }
    const memory& backward(const memory& diffDst, bool) override {
        const float* dy = data(diffDst);
        float* dx = data(diffOut_.target(diffSrc_));  // the rows and columns skipped stay 0
        const Index oh = dstL_.h, ow = dstL_.w, s = stride_;
        const Index ib = src_.b, ob = dstL_.b, iw = src_.w;
#pragma omp parallel for collapse(2) schedule(static)
        for (Index n = 0; n < n_; ++n)
            for (Index c = 0; c < cin_; ++c) {
                float* xp = dx + src_.at(n, c, 0, 0);
                const float* yp = dy + dstL_.at(n, c + pad_, 0, 0);
                for (Index i = 0; i < oh; ++i)
                    for (Index j = 0; j < ow; ++j) xp[(i * s * iw + j * s) * ib] = yp[(i * ow + j) * ob];
            }
        diffOut_.flush(ctx_.stream, diffSrc_);
        ctx_.stream.wait();
        return diffSrc_;
    }

private:
    Context& ctx_;
    Index stride_, pad_;
    Index n_ = 0, cin_ = 0, cout_ = 0;
    Layout src_{}, dstL_{};
    Bridge in_;
    OutBridge diffOut_;
    memory dst_, diffSrc_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string Add::describe() const { return name_ + (relu_ ? ": add + ReLU" : ": add"); }

memory::dims Add::outputDimsAll(const std::vector<memory::dims>& srcs) const {
    if (srcs.size() != 2)
        fail("Add::outputDims()", TERN_MSG(name_ << " adds two inputs, given " << srcs.size()));
    if (srcs[0] != srcs[1])
        fail("Add::outputDims()", name_ + ": the inputs differ: " + dimsStr(srcs[0]) + " and " +
                                      dimsStr(srcs[1]));
    return srcs[0];
}

std::unique_ptr<LayerExec> Add::compile(Context&, const memory::desc&, Mode) {
    fail("Add::compile()", name_ + " adds two inputs: build it in a graph (nn::Graph)");
}

std::unique_ptr<LayerExec> Add::compileAll(Context& ctx, const std::vector<memory::desc>& srcs,
                                           Mode mode) {
    std::vector<memory::dims> dims;
    for (const auto& s : srcs) dims.push_back(s.dims());
    outputDimsAll(dims);
    return guarded(name_, dims[0], [&]() -> std::unique_ptr<LayerExec> {
        return std::make_unique<AddExec>(ctx, mode, srcs[0], srcs[1], relu_);
    });
}

memory::dims GlobalAvgPool::outputDims(const memory::dims& src) const {
    if (src.size() != 4)
        fail("GlobalAvgPool::outputDims()", name_ + ": input " + dimsStr(src) + " is not 4-D");
    return {src[0], src[1]};
}

std::unique_ptr<LayerExec> GlobalAvgPool::compile(Context& ctx, const memory::desc& src,
                                                  Mode mode) {
    outputDims(src.dims());
    return guarded(name_, src.dims(), [&]() -> std::unique_ptr<LayerExec> {
        return std::make_unique<GlobalAvgPoolExec>(ctx, mode, src);
    });
}

LayerCost GlobalAvgPool::cost(const memory::dims& src) const {
    LayerCost c;
    if (src.size() == 4) c.macs = src[1] * src[2] * src[3];
    return c;
}

SubsamplePad::SubsamplePad(std::string name, Index inChannels, Index outChannels, Index stride)
    : name_(std::move(name)), in_(inChannels), out_(outChannels), stride_(stride) {
    const std::string where = "SubsamplePad(" + name_ + ")";
    requirePositive(static_cast<double>(in_), where.c_str(), "inChannels");
    requirePositive(static_cast<double>(stride_), where.c_str(), "stride");
    if (out_ < in_)
        fail(where.c_str(), TERN_MSG("cannot pad " << in_ << " channels down to " << out_));
}

std::string SubsamplePad::describe() const {
    return TERN_MSG(name_ << ": shortcut A (stride " << stride_ << ", channels " << in_ << "->"
                          << out_ << " zero-padded)");
}

memory::dims SubsamplePad::outputDims(const memory::dims& src) const {
    if (src.size() != 4 || src[1] != in_)
        fail("SubsamplePad::outputDims()",
             TERN_MSG(name_ << " expects " << in_ << " channels, got " << dimsStr(src)));
    return {src[0], out_, (src[2] - 1) / stride_ + 1, (src[3] - 1) / stride_ + 1};
}

std::unique_ptr<LayerExec> SubsamplePad::compile(Context& ctx, const memory::desc& src, Mode mode) {
    const auto dst = outputDims(src.dims());
    return guarded(name_, src.dims(), [&]() -> std::unique_ptr<LayerExec> {
        return std::make_unique<SubsamplePadExec>(ctx, mode, src, dst, stride_, padBefore());
    });
}

}  // namespace tern::nn
