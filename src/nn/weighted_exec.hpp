#pragma once
// Private to src/nn: the executor of the layers with weights (Conv2d's oneDNN convolutions and
// Linear), defined in weighted_layer.cpp.
#include "layer_util.hpp"

#include "tern/nn/layer.hpp"

namespace tern::nn::detail {

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
                 const dnnl::memory::desc& userWMd, const dnnl::memory::desc& srcMd, Pds pds);
    const dnnl::memory& forward(const dnnl::memory& src, optim::Pass) override;
    const dnnl::memory& backward(const dnnl::memory& diffDst, bool needDiffSrc) override;
    std::vector<GradientBuffer> gradientBuffers() override {
        if (mode_ != Mode::Train) return {};
        return {{&diffSrcUser_, {}}};
    }

private:
    Context& ctx_;
    Mode mode_;
    ParameterBlock* w_;
    ParameterBlock* b_;
    dnnl::memory::desc srcMd_;
    Pds p_;
    dnnl::memory userW_, userB_, userDW_, userDB_, dst_, src_, diffSrcUser_, empty_;
    Bridge srcIn_, wFwd_, srcBw_, diffDstBw_, wBd_, diffDstBd_;
    OutBridge diffW_, diffB_, diffSrc_;
    bool wBdSameAsFwd_ = false;
};

}  // namespace tern::nn::detail
