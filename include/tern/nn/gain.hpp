#pragma once
/// \file A fixed, non-trainable gain y = g * x (docs/export.md section 1.1).
///
/// Used after every quantized conv / FC layer of a model without BN when
/// ModelOptions::gains is set: with alpha = 1 the codes are {-1, 0, +1} and a layer of fan-in n
/// multiplies the size of its input by about sqrt(n * density); nothing else (no BN, no scale)
/// brings it back. The gain is a power of two, gainForFanIn(n), so that export folds it
/// exactly into the layer's scale and bias and propagates it to the logits like any other
/// per-tensor scale: the deployed network stays multiplication-free.
#include "tern/nn/layer.hpp"

#include <string>
#include <vector>

namespace tern::nn {

/// 2^-k with k = round(log2(sqrt(n / 2))), n >= 1: the power of two nearest (in log scale) to
/// sqrt(2 / n), the He gain of codes {-1, +1}. A ternary layer at density d would want
/// sqrt(2 / (n d)); d is about 1/2 to 2/3 for TWN-like thresholds and it moves while training,
/// so it is left out (a factor sqrt(2) at most, inside the power-of-two rounding).
float gainForFanIn(Index fanIn);

/// Whether a checkpoint's state keys (the names under its network state group) hold a Gain's
/// saved value ("<name>.gain"): the network was built with ModelOptions::gains.
bool hasGainState(const std::vector<std::string>& keys);

/// y = g * x, in whatever format it is given; backward dx = g * dy. No parameter blocks; g is
/// saved as state ("<prefix><name>.gain") so that a checkpoint records the gains it was
/// trained with, and loaded from it where present.
class Gain final : public Layer {
public:
    Gain(std::string name, float gain);
    std::string name() const override { return name_; }
    std::string describe() const override;
    dnnl::memory::dims outputDims(const dnnl::memory::dims& src) const override { return src; }
    std::unique_ptr<LayerExec> compile(Context& ctx, const dnnl::memory::desc& src,
                                       Mode mode) override;
    void saveState(StateWriter& out, const std::string& prefix) const override;
    void loadState(const StateReader& in, const std::string& prefix) override;
    float gain() const { return gain_; }

private:
    std::string name_;
    float gain_;
};

}  // namespace tern::nn
