// Fully connected layer (include/tern/nn/linear.hpp) on oneDNN's inner product
// (weighted_exec.hpp).
#include "tern/nn/linear.hpp"

#include "tern/core/error.hpp"
#include "weighted_exec.hpp"

namespace tern::nn {

using namespace detail;

Linear::Linear(std::string name, Index inFeatures, Index outFeatures, bool bias, bool quantize)
    : WeightedLayer(std::move(name), bias, quantize), in_(inFeatures), out_(outFeatures) {
    const std::string where = "Linear(" + name_ + ")";
    requirePositive(static_cast<double>(in_), where.c_str(), "inFeatures");
    requirePositive(static_cast<double>(out_), where.c_str(), "outFeatures");
}

std::string Linear::describe() const {
    return TERN_MSG(name_ << ": " << out_ << "-FC (" << in_ << "->" << out_
                          << (quantize_ ? ", quantized" : ", float") << ")");
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
        const auto prop = forwardKind(mode);
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

}  // namespace tern::nn
