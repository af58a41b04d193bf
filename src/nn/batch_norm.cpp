// Batch normalization (include/tern/nn/batch_norm.hpp) on oneDNN's, with the running
// statistics kept by the layer.
#include "tern/nn/batch_norm.hpp"

#include "tern/core/error.hpp"
#include "layer_util.hpp"

#include <cmath>
#include <unordered_map>

namespace tern::nn {

using namespace detail;

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
        memory::desc src =
            view2d_ ? memory::desc({src2.dims()[0], src2.dims()[1], 1, 1}, dt::f32, tag::nhwc)
                    : src2;
        // 16 channels in nhwc are nChw16c's bytes, where oneDNN's batch norm is faster
        // (ResNet-20's first stage, 128x16x32x32: forward 0.59 -> 0.42 ms, backward 0.96 ->
        // 0.75 ms): run it there, the input and output still seen in src2's desc.
        if (!view2d_ && src2.dims().size() == 4) {
            const memory::desc blocked(src2.dims(), dt::f32, tag::nChw16c);
            if (src2 != blocked && sameBytes(src2, blocked)) src = blocked;
        }
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
