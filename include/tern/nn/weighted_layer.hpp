#pragma once
/// \file The common part of the layers with weights (Conv2d, Linear): their parameter blocks,
/// how they are declared and initialised.
#include "tern/nn/layer.hpp"

#include <string>

namespace tern::nn {

/// How weights and biases start.
enum class WeightInit {
    /// He-normal weights, std sqrt(2 / fan_in), zero biases (the default, and what every
    /// recipe in docs/results.md was measured with).
    HeNormal,
    /// PyTorch's default for Conv2d / Linear: weights and biases uniform in
    /// +-1/sqrt(fan_in) (std 1/sqrt(3 fan_in)). In front of BN the smaller weights make the
    /// effective step lr / |W|^2 six times larger, which is why PyTorch's LeNet-5 learns faster
    /// in its first 100 steps (docs/results.md, issue 15).
    TorchUniform,
};
/// "he" | "torch" (throws std::invalid_argument naming the known ones).
WeightInit parseWeightInit(const std::string& name);
std::string weightInitName(WeightInit w);

/// A layer with one weight tensor "<name>.weights" (a quantization target unless told
/// otherwise) and an optional bias "<name>.bias", initialised as setWeightInit() says.
class WeightedLayer : public Layer {
public:
    std::string name() const override { return name_; }
    void declare(ParameterSet& params) override;
    void initialize(std::mt19937_64& rng) override;
    void setWeightInit(WeightInit w) { init_ = w; }

    ParameterBlock* weights() const { return weights_; }
    ParameterBlock* bias() const { return bias_; }

protected:
    WeightedLayer(std::string name, bool bias, bool quantize)
        : name_(std::move(name)), hasBias_(bias), quantize_(quantize) {}
    /// Dims of the weight tensor, outputs first ({out, in, k, k}, {out, in}).
    virtual Shape weightShape() const = 0;

    std::string name_;
    bool hasBias_, quantize_;
    WeightInit init_ = WeightInit::HeNormal;
    ParameterBlock* weights_ = nullptr;
    ParameterBlock* bias_ = nullptr;
};

}  // namespace tern::nn
