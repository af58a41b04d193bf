#pragma once
/// \file The layers of residual networks beside convolution and BN: the element-wise sum of
/// two branches (with the block's closing ReLU fused), global average pooling, and the CIFAR
/// ResNets' parameter-free "option A" shortcut (stride-2 subsampling, zero-padded channels).
/// Network's graph (nn/network.hpp, Graph) wires them; nn/models.hpp builds ResNets from them.
#include "tern/nn/layer.hpp"

namespace tern::nn {

/// y = a + b (two inputs of the same dims), or max(0, a + b) with `relu` (the closing ReLU of
/// a residual block: one pass over the activation instead of two). The inputs may arrive in
/// different memory formats; the second is reordered to the first's, which the output keeps.
/// The gradient of both inputs is dL/dy (masked by y > 0 with `relu`).
class Add final : public Layer {
public:
    explicit Add(std::string name, bool relu = false) : name_(std::move(name)), relu_(relu) {}
    std::string name() const override { return name_; }
    std::string describe() const override;
    int numInputs() const override { return 2; }
    dnnl::memory::dims outputDims(const dnnl::memory::dims& src) const override { return src; }
    dnnl::memory::dims outputDimsAll(const std::vector<dnnl::memory::dims>& srcs) const override;
    std::unique_ptr<LayerExec> compile(Context& ctx, const dnnl::memory::desc& src,
                                       Mode mode) override;
    std::unique_ptr<LayerExec> compileAll(Context& ctx, const std::vector<dnnl::memory::desc>& srcs,
                                          Mode mode) override;
    bool relu() const { return relu_; }

private:
    std::string name_;
    bool relu_;
};

/// Global average pooling: (N, C, H, W) -> (N, C), the mean over each channel's plane.
class GlobalAvgPool final : public Layer {
public:
    explicit GlobalAvgPool(std::string name) : name_(std::move(name)) {}
    std::string name() const override { return name_; }
    std::string describe() const override { return name_ + ": global average pool"; }
    dnnl::memory::dims outputDims(const dnnl::memory::dims& src) const override;
    std::unique_ptr<LayerExec> compile(Context& ctx, const dnnl::memory::desc& src,
                                       Mode mode) override;
    LayerCost cost(const dnnl::memory::dims& src) const override;

private:
    std::string name_;
};

/// He et al.'s option A shortcut of the CIFAR ResNets (and TTQ's): y = x subsampled with
/// `stride` (every stride-th row and column from the first), its channels zero-padded from
/// `in` to `out`: (out - in) / 2 zero channels before, the rest after. No parameters.
class SubsamplePad final : public Layer {
public:
    SubsamplePad(std::string name, Index inChannels, Index outChannels, Index stride = 2);
    std::string name() const override { return name_; }
    std::string describe() const override;
    dnnl::memory::dims outputDims(const dnnl::memory::dims& src) const override;
    std::unique_ptr<LayerExec> compile(Context& ctx, const dnnl::memory::desc& src,
                                       Mode mode) override;
    Index inChannels() const { return in_; }
    Index outChannels() const { return out_; }
    Index stride() const { return stride_; }
    /// Zero channels before the copied ones: (out - in) / 2.
    Index padBefore() const { return (out_ - in_) / 2; }

private:
    std::string name_;
    Index in_, out_, stride_;
};

}  // namespace tern::nn
