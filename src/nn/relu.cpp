// ReLU (include/tern/nn/relu.hpp) on oneDNN's eltwise primitive.
#include "tern/nn/relu.hpp"

#include "layer_util.hpp"

namespace tern::nn {

using namespace detail;

namespace {

class ReluExec final : public LayerExec {
public:
    ReluExec(Context& ctx, Mode mode, const memory::desc& src) : ctx_(ctx) {
        namespace d = dnnl;
        const auto prop = forwardKind(mode);
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

}  // namespace

std::unique_ptr<LayerExec> Relu::compile(Context& ctx, const memory::desc& src, Mode mode) {
    return guarded(name_, src.dims(), [&]() -> std::unique_ptr<LayerExec> {
        return std::make_unique<ReluExec>(ctx, mode, src);
    });
}

}  // namespace tern::nn
