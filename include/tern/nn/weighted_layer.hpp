#pragma once
/// \file The common part of the layers with weights (Conv2d, Linear): their parameter blocks,
/// how they are declared and initialised.
#include "tern/nn/layer.hpp"

#include <string>

namespace tern::nn {

/// A layer with one weight tensor "<name>.weights" (a quantization target unless told
/// otherwise; He-normal initialised) and an optional bias "<name>.bias" (zero initialised).
class WeightedLayer : public Layer {
public:
    std::string name() const override { return name_; }
    void declare(ParameterSet& params) override;
    void initialize(std::mt19937_64& rng) override;

    ParameterBlock* weights() const { return weights_; }
    ParameterBlock* bias() const { return bias_; }

protected:
    WeightedLayer(std::string name, bool bias, bool quantize)
        : name_(std::move(name)), hasBias_(bias), quantize_(quantize) {}
    /// Dims of the weight tensor, outputs first ({out, in, k, k}, {out, in}).
    virtual Shape weightShape() const = 0;

    std::string name_;
    bool hasBias_, quantize_;
    ParameterBlock* weights_ = nullptr;
    ParameterBlock* bias_ = nullptr;
};

}  // namespace tern::nn
