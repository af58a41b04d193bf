// The common part of Conv2d and Linear (include/tern/nn/weighted_layer.hpp): their blocks, their
// initialisation, and the executor of their oneDNN primitives (weighted_exec.hpp).
#include "tern/nn/weighted_layer.hpp"

#include <cmath>
#include <stdexcept>

#include "weighted_exec.hpp"

#include <cmath>
#include <unordered_map>

namespace tern::nn {

void WeightedLayer::declare(ParameterSet& params) {
    const Shape shape = weightShape();
    weights_ = &params.add(name_ + ".weights", shape, quantize_, true);
    if (hasBias_) bias_ = &params.add(name_ + ".bias", Shape{shape.dims[0]}, false, false);
}

void WeightedLayer::initialize(std::mt19937_64& rng) {
    // the fan-in is the number of weights per output
    const Shape shape = weightShape();
    const Index fanIn = shape.size() / shape.dims[0];
    if (init_ == WeightInit::TorchUniform) {
        const float bound = 1.0f / std::sqrt(static_cast<float>(fanIn));
        std::uniform_real_distribution<float> dist(-bound, bound);
        for (Index i = 0; i < weights_->value.size(); ++i) weights_->value[i] = dist(rng);
        if (bias_)
            for (Index i = 0; i < bias_->value.size(); ++i) bias_->value[i] = dist(rng);
        return;
    }
    std::normal_distribution<float> dist(0.0f, std::sqrt(2.0f / static_cast<float>(fanIn)));
    for (Index i = 0; i < weights_->value.size(); ++i) weights_->value[i] = dist(rng);
    if (bias_) bias_->value.setZero();
}

WeightInit parseWeightInit(const std::string& name) {
    if (name == "he") return WeightInit::HeNormal;
    if (name == "torch") return WeightInit::TorchUniform;
    throw std::invalid_argument("unknown weight initialisation '" + name + "'; known: he, torch");
}

std::string weightInitName(WeightInit w) { return w == WeightInit::TorchUniform ? "torch" : "he"; }

namespace detail {

WeightedExec::WeightedExec(Context& ctx, Mode mode, ParameterBlock* w, ParameterBlock* b,
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

const memory& WeightedExec::forward(const memory& src, Pass) {
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

const memory& WeightedExec::backward(const memory& diffDst, bool needDiffSrc) {
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

}  // namespace detail

}  // namespace tern::nn
