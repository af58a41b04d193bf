#pragma once
/// \file Fully connected layer (oneDNN's inner product).
#include "tern/nn/weighted_layer.hpp"

namespace tern::nn {

/// Fully connected layer on a flattened input: weights {out, in} (row-major, the input's
/// C,H,W order), optional bias.
class Linear final : public WeightedLayer {
public:
    Linear(std::string name, Index inFeatures, Index outFeatures, bool bias = true,
           bool quantize = true);
    std::string describe() const override;
    dnnl::memory::dims outputDims(const dnnl::memory::dims& src) const override;
    std::unique_ptr<LayerExec> compile(Context& ctx, const dnnl::memory::desc& src,
                                       Mode mode) override;
    LayerCost cost(const dnnl::memory::dims& src) const override;

    Index inFeatures() const { return in_; }
    Index outFeatures() const { return out_; }
    /// Weight layout of the forward pass. Plain: the block's {out, in} buffer as is.
    /// Preferred: oneDNN's choice, reordered from the block every forward. Auto: Preferred
    /// on AVX-512, where it is faster; Plain elsewhere. The backward passes always use the
    /// plain block.
    enum class WeightLayout { Auto, Plain, Preferred };
    void setWeightLayout(WeightLayout layout) { layout_ = layout; }

private:
    Shape weightShape() const override { return Shape{out_, in_}; }

    Index in_, out_;
    WeightLayout layout_ = WeightLayout::Auto;
};

}  // namespace tern::nn
