// Batch normalization (include/tern/nn/batch_norm.hpp) on oneDNN's, with the running
// statistics kept by the layer.
#include "tern/nn/batch_norm.hpp"

#include "tern/core/error.hpp"
#include "layer_util.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <vector>

namespace tern::nn {

using namespace detail;

namespace {

/// Per-channel mean and biased variance of a [N][Cb][HW][B] tensor (no padded channels), in
/// double: sums of x - K and (x - K)^2 with K each channel's first element (against
/// cancellation), per (image, channel block) in float, across them in double.
void channelMoments(const float* x, Index n, Index cb, Index hw, Index b, double* mean,
                    double* var) {
    const Index c = cb * b;
    std::vector<float> k(static_cast<size_t>(c));
    for (Index j = 0; j < cb; ++j)
        for (Index q = 0; q < b; ++q) k[static_cast<size_t>(j * b + q)] = x[j * hw * b + q];
    const int threads = omp_get_max_threads();
    std::vector<double> part(static_cast<size_t>(threads) * static_cast<size_t>(2 * c), 0.0);
#pragma omp parallel
    {
        double* ps = part.data() + static_cast<size_t>(omp_get_thread_num()) * static_cast<size_t>(2 * c);
        std::vector<float> s1(static_cast<size_t>(b)), s2(static_cast<size_t>(b));
#pragma omp for collapse(2) schedule(static)
        for (Index i = 0; i < n; ++i)
            for (Index j = 0; j < cb; ++j) {
                const float* p = x + (i * cb + j) * hw * b;
                const float* kk = k.data() + j * b;
                if (b == 16) {  // the blocked layouts: one vector per pixel
                    float a1[16] = {}, a2[16] = {};
                    for (Index t = 0; t < hw; ++t)
#pragma omp simd
                        for (int q = 0; q < 16; ++q) {
                            const float v = p[t * 16 + q] - kk[q];
                            a1[q] += v;
                            a2[q] += v * v;
                        }
                    for (int q = 0; q < 16; ++q) {
                        ps[j * 16 + q] += a1[q];
                        ps[c + j * 16 + q] += a2[q];
                    }
                } else {
                    std::fill(s1.begin(), s1.end(), 0.0f);
                    std::fill(s2.begin(), s2.end(), 0.0f);
                    for (Index t = 0; t < hw; ++t)
                        for (Index q = 0; q < b; ++q) {
                            const float v = p[t * b + q] - kk[q];
                            s1[static_cast<size_t>(q)] += v;
                            s2[static_cast<size_t>(q)] += v * v;
                        }
                    for (Index q = 0; q < b; ++q) {
                        ps[j * b + q] += s1[static_cast<size_t>(q)];
                        ps[c + j * b + q] += s2[static_cast<size_t>(q)];
                    }
                }
            }
    }
    const double m = static_cast<double>(n * hw);
    for (Index ch = 0; ch < c; ++ch) {
        double a1 = 0, a2 = 0;
        for (int t = 0; t < threads; ++t) {
            a1 += part[static_cast<size_t>(t * 2 * c + ch)];
            a2 += part[static_cast<size_t>(t * 2 * c + c + ch)];
        }
        const double d = a1 / m;
        mean[ch] = k[static_cast<size_t>(ch)] + d;
        var[ch] = std::max(0.0, a2 / m - d * d);
    }
}

class BatchNormExec final : public LayerExec, public AffineSource {
public:
    BatchNormExec(Context& ctx, Mode mode, BatchNorm& layer, const memory::desc& src2)
        : ctx_(ctx), mode_(mode), L_(layer) {
        namespace d = dnnl;
        auto& eng = ctx.engine;
        // A plain (N, C) input is run as (N, C, 1, 1) channels-last (the same bytes), where
        // oneDNN has its JIT batch norm; the 2-D reference implementation is several x slower.
        view2d_ = src2.dims().size() == 2;
        memory::desc src =
            view2d_ ? memory::desc({src2.dims()[0], src2.dims()[1], 1, 1}, dt::f32, tag::nhwc)
                    : src2;
        // 16 channels in nhwc are nChw16c's bytes, where oneDNN's batch norm is faster
        // (ResNet-20's first stage, 128x16x32x32: forward 0.59 -> 0.42 ms, backward 0.96 ->
        // 0.75 ms): run it there, the input and output still seen in src2's desc.
        if (!view2d_) src = blocked16View(src2);
        const bool viewed = view2d_ || src != src2;
        srcView_ = memory(src, eng, nullptr);
        diffDstView_ = memory(src, eng, nullptr);
        const Index c = layer.channels();
        const memory::desc cMd({c}, dt::f32, tag::a);
        auto flags = d::normalization_flags::use_scale | d::normalization_flags::use_shift;
        if (mode == Mode::Infer) flags = flags | d::normalization_flags::use_global_stats;
        if (layer.fusedRelu()) flags = flags | d::normalization_flags::fuse_norm_relu;
        const auto prop = forwardKind(mode);
        d::batch_normalization_forward::desc fd(prop, src, layer.epsilon(), flags);
        fpd_ = d::batch_normalization_forward::primitive_desc(fd, eng);
        fwd_ = d::batch_normalization_forward(fpd_);
        dst_ = memory(fpd_.dst_desc(), eng);
        dstMd_ = viewed ? src2 : fpd_.dst_desc();
        dstOut_ = viewed ? memory(src2, eng, dst_.get_data_handle()) : dst_;
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
        diffSrcOut_ = viewed ? memory(src2, eng, diffSrc_.get_data_handle()) : diffSrc_;
        if (layer.fusedRelu()) workspace_ = memory(fpd_.workspace_desc(), eng);
        diffScale_ = memory(cMd, eng, layer.gamma()->grad.data());
        diffShift_ = memory(cMd, eng, layer.beta()->grad.data());
    }

    std::vector<GradientBuffer> gradientBuffers() override {
        if (mode_ != Mode::Train) return {};
        return {{&diffSrc_, {&diffSrcOut_}}};
    }

    // AffineSource: batch norm without ReLU, on a [N][Cb][H][W][B] input without padded
    // channels, lets its consumer (Add) apply a z + b: forward() then computes the batch
    // moments itself (one read of z, where oneDNN reads it twice and writes dst) and the
    // backward runs oneDNN's on them as before.
    bool canDeferAffine() const override {
        if (view2d_ || L_.fusedRelu()) return false;
        bool matched = false;
        const Blocks bl = blocksOf(dstMd_, &matched);
        return matched && bl.cb * bl.b == L_.channels();
    }
    bool deferAffine() override {
        if (!canDeferAffine()) return false;
        bool matched = false;
        blocks_ = blocksOf(dstMd_, &matched);
        deferred_ = true;
        dstOut_.set_data_handle(nullptr);  // dst is never written: free it
        dst_.set_data_handle(nullptr);
        a_.resize(static_cast<size_t>(L_.channels()));
        b_.resize(static_cast<size_t>(L_.channels()));
        return true;
    }
    const memory& affineInput() const override { return in_; }
    const float* affineScale() const override { return a_.data(); }
    const float* affineShift() const override { return b_.data(); }

    const memory& forward(const memory& src, Pass pass) override {
        if (deferred_) return forwardDeferred(src, pass);
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
        if (mode_ == Mode::Train && pass == Pass::Commit) updateRunning();
        return dstOut_;
    }

    /// running = (1 - m) running + m batch; the variance unbiased (as PyTorch keeps it).
    void updateRunning() {
        ctx_.stream.wait();
        const Index c = L_.channels();
        Eigen::Map<const Vector> m(static_cast<const float*>(mean_.get_data_handle()), c);
        Eigen::Map<const Vector> v(static_cast<const float*>(var_.get_data_handle()), c);
        const float mom = L_.momentum();
        const float unbias = count_ > 1 ? float(count_) / float(count_ - 1) : 1.0f;
        L_.runningMean() = (1 - mom) * L_.runningMean() + mom * m;
        L_.runningVar() = (1 - mom) * L_.runningVar() + (mom * unbias) * v;
    }

    /// Deferred mode: a and b (and, training, the batch moments the backward reads).
    const memory& forwardDeferred(const memory& src, Pass pass) {
        in_ = src;
        srcView_.set_data_handle(src.get_data_handle());
        src_ = srcView_;
        scale_.set_data_handle(L_.gamma()->value.data());
        shift_.set_data_handle(L_.beta()->value.data());
        const Index c = L_.channels();
        const float eps = L_.epsilon();
        const float* g = L_.gamma()->value.data();
        const float* be = L_.beta()->value.data();
        if (mode_ == Mode::Infer) {
            for (Index ch = 0; ch < c; ++ch) {
                const float a = g[ch] / std::sqrt(L_.runningVar()[ch] + eps);
                a_[static_cast<size_t>(ch)] = a;
                b_[static_cast<size_t>(ch)] = be[ch] - L_.runningMean()[ch] * a;
            }
            return dstOut_;
        }
        ctx_.stream.wait();
        const auto d = dstMd_.dims();
        std::vector<double> mean(static_cast<size_t>(c)), var(static_cast<size_t>(c));
        channelMoments(static_cast<const float*>(src.get_data_handle()), d[0], blocks_.cb,
                       d[2] * d[3], blocks_.b, mean.data(), var.data());
        auto* m = static_cast<float*>(mean_.get_data_handle());
        auto* v = static_cast<float*>(var_.get_data_handle());
        for (Index ch = 0; ch < c; ++ch) {
            const auto i = static_cast<size_t>(ch);
            m[ch] = static_cast<float>(mean[i]);
            v[ch] = static_cast<float>(var[i]);
            const double a = g[ch] / std::sqrt(var[i] + eps);
            a_[i] = static_cast<float>(a);
            b_[i] = static_cast<float>(be[ch] - mean[i] * a);
        }
        if (pass == Pass::Commit) updateRunning();
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
    // deferred mode (AffineSource)
    bool deferred_ = false;
    Blocks blocks_;
    memory in_;
    std::vector<float> a_, b_;
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
    const std::string m = prefix + name_ + ".running_mean", v = prefix + name_ + ".running_var";
    Vector mean = in.read(m, Shape{c_}), var = in.read(v, Shape{c_});
    for (Index i = 0; i < c_; ++i) {
        if (!std::isfinite(mean[i]))
            fail("BatchNorm::loadState()", TERN_MSG(m << "[" << i << "] is " << mean[i]
                                                    << ", not a finite mean"));
        if (!std::isfinite(var[i]) || var[i] < 0)
            fail("BatchNorm::loadState()", TERN_MSG(v << "[" << i << "] is " << var[i]
                                                    << ", not a variance (finite, >= 0)"));
    }
    runningMean_ = std::move(mean);
    runningVar_ = std::move(var);
}

}  // namespace tern::nn
