#pragma once
// Private helper of src/nn: a layer that is one oneDNN eltwise primitive (ReLU, the fixed gain),
// forward and backward.
#include "layer_util.hpp"

namespace tern::nn::detail {

/// dst = f(src) with oneDNN's eltwise `algorithm` and its `alpha` (ReLU's slope 0, the gain's g);
/// backward computes diffSrc from the src of the last forward.
class EltwiseExec final : public LayerExec {
public:
    EltwiseExec(Context& ctx, Mode mode, const memory::desc& src, dnnl::algorithm algorithm,
                float alpha)
        : ctx_(ctx) {
        namespace d = dnnl;
        d::eltwise_forward::desc fd(forwardKind(mode), algorithm, src, alpha, 0.0f);
        d::eltwise_forward::primitive_desc fpd(fd, ctx.engine);
        fwd_ = d::eltwise_forward(fpd);
        dstMd_ = fpd.dst_desc();
        dst_ = memory(dstMd_, ctx.engine);
        if (mode == Mode::Infer) return;
        d::eltwise_backward::desc bd(algorithm, src, src, alpha, 0.0f);
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
    std::vector<GradientBuffer> gradientBuffers() override {
        if (!diffSrc_) return {};
        return {{&diffSrc_, {}}};
    }

private:
    Context& ctx_;
    dnnl::eltwise_forward fwd_;
    dnnl::eltwise_backward bwd_;
    memory src_, dst_, diffSrc_;
};

}  // namespace tern::nn::detail
