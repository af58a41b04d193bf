#pragma once
/// \file Inverted dropout.
#include "tern/nn/layer.hpp"

namespace tern::nn {

/// Inverted dropout on a plain 2-D (N, C) input: x * mask / (1 - p) in training, identity in
/// inference. The mask is drawn from Context::stepSeed, so a Probe and a Commit evaluation of
/// one step see the same mask.
class Dropout final : public Layer {
public:
    Dropout(std::string name, float p);
    std::string name() const override { return name_; }
    dnnl::memory::dims outputDims(const dnnl::memory::dims& src) const override { return src; }
    std::unique_ptr<LayerExec> compile(Context& ctx, const dnnl::memory::desc& src,
                                       Mode mode) override;
    float p() const { return p_; }

private:
    std::string name_;
    float p_;
};

}  // namespace tern::nn
