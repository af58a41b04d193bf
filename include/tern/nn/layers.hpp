#pragma once
/// \file The concrete layers: convolution, inner product, batch normalization, ReLU,
/// max pooling and dropout.
#include "tern/nn/layer.hpp"

namespace tern::nn {

/// 2-D convolution, weights OIHW ("<name>.weights", a quantization target unless told
/// otherwise) and an optional bias ("<name>.bias").
class Conv2d final : public Layer {
public:
    Conv2d(std::string name, Index inChannels, Index outChannels, Index kernel, Index stride = 1,
           Index padding = 0, bool bias = true, bool quantize = true);
    std::string name() const override { return name_; }
    std::string describe() const override;
    void declare(ParameterSet& params) override;
    void initialize(std::mt19937_64& rng) override;
    dnnl::memory::dims outputDims(const dnnl::memory::dims& src) const override;
    std::unique_ptr<LayerExec> compile(Context& ctx, const dnnl::memory::desc& src,
                                       Mode mode) override;
    LayerCost cost(const dnnl::memory::dims& src) const override;

    Index inChannels() const { return in_; }
    Index outChannels() const { return out_; }
    Index kernel() const { return k_; }
    Index stride() const { return stride_; }
    Index padding() const { return pad_; }
    ParameterBlock* weights() const { return weights_; }
    ParameterBlock* bias() const { return bias_; }
    /// Allow Winograd for 3x3 and 5x5 stride-1 convolutions with >= 16 input channels (default
    /// on; off gives direct convolution everywhere, e.g. for tight finite-difference checks).
    void setWinograd(bool on) { winograd_ = on; }
    /// Which Winograd: oneDNN's (3x3 only, AVX-512 only; F(4x4, 3x3)) or tern's own
    /// (src/nn/winograd.hpp: F(m x m, r x r) with m + r - 1 <= 8, any x86-64 CPU, channels-last
    /// activations; used here for 3x3 and 5x5 kernels). Auto: oneDNN's for 3x3 kernels on
    /// AVX-512 CPUs (5x5 stays direct there: tern's is unmeasured on AVX-512), tern's for 3x3
    /// and 5x5 kernels on CPUs without AVX-512, where oneDNN has none and tern's ran LeNet-5's
    /// conv2 (forward and both backward passes together) about 3x faster than oneDNN's direct
    /// kernels (docs/bench-train.md). OneDnn falls back to direct where oneDNN has no Winograd.
    enum class WinogradImpl { Auto, OneDnn, Tern };
    void setWinogradImpl(WinogradImpl impl) { winogradImpl_ = impl; }
    /// Activation layout of a direct convolution. Auto: channels-last (nhwc) with >= 16 input
    /// channels where oneDNN runs its brgemm kernels on it (AVX-512), and with 1 input
    /// channel on CPUs without AVX-512 (faster backward weights there); oneDNN's blocked
    /// choice otherwise. The neighbouring layers take whichever layout they are given, and a
    /// reorder runs only where two layouts meet. oneDNN's Winograd layers use the blocked
    /// layout, tern's Winograd layers nhwc, whatever this says.
    enum class Layout { Auto, Blocked, ChannelsLast };
    void setLayout(Layout layout) { layout_ = layout; }

private:
    std::string name_;
    Index in_, out_, k_, stride_, pad_;
    bool hasBias_, quantize_;
    bool winograd_ = true;
    WinogradImpl winogradImpl_ = WinogradImpl::Auto;
    Layout layout_ = Layout::Auto;
    ParameterBlock* weights_ = nullptr;
    ParameterBlock* bias_ = nullptr;
};

/// Fully connected layer on a flattened input: weights {out, in} (row-major, the input's
/// C,H,W order), optional bias.
class Linear final : public Layer {
public:
    Linear(std::string name, Index inFeatures, Index outFeatures, bool bias = true,
           bool quantize = true);
    std::string name() const override { return name_; }
    std::string describe() const override;
    void declare(ParameterSet& params) override;
    void initialize(std::mt19937_64& rng) override;
    dnnl::memory::dims outputDims(const dnnl::memory::dims& src) const override;
    std::unique_ptr<LayerExec> compile(Context& ctx, const dnnl::memory::desc& src,
                                       Mode mode) override;
    LayerCost cost(const dnnl::memory::dims& src) const override;

    Index inFeatures() const { return in_; }
    Index outFeatures() const { return out_; }
    ParameterBlock* weights() const { return weights_; }
    ParameterBlock* bias() const { return bias_; }
    /// Weight layout of the forward pass. Plain: the block's {out, in} buffer as is.
    /// Preferred: oneDNN's choice, reordered from the block every forward. Auto: Preferred
    /// on AVX-512, where it is faster; Plain elsewhere. The backward passes always use the
    /// plain block.
    enum class WeightLayout { Auto, Plain, Preferred };
    void setWeightLayout(WeightLayout layout) { layout_ = layout; }

private:
    std::string name_;
    Index in_, out_;
    bool hasBias_, quantize_;
    WeightLayout layout_ = WeightLayout::Auto;
    ParameterBlock* weights_ = nullptr;
    ParameterBlock* bias_ = nullptr;
};

/// Batch normalization over channels with learned gamma/beta. oneDNN keeps no running
/// statistics; this layer does, updating them on Pass::Commit only:
///   running = (1 - momentum) * running + momentum * batch  (variance unbiased).
/// With `fuseRelu`, the layer computes max(0, BN(x)) in one pass (oneDNN's fuse_norm_relu),
/// saving a read and a write of the activation forward and backward.
class BatchNorm final : public Layer {
public:
    BatchNorm(std::string name, Index channels, float epsilon = 1e-5f, float momentum = 0.1f,
              bool fuseRelu = false);
    std::string describe() const override {
        return name_ + (fuseRelu_ ? ": batch norm + ReLU" : ": batch norm");
    }
    std::string name() const override { return name_; }
    void declare(ParameterSet& params) override;
    void initialize(std::mt19937_64& rng) override;
    dnnl::memory::dims outputDims(const dnnl::memory::dims& src) const override { return src; }
    std::unique_ptr<LayerExec> compile(Context& ctx, const dnnl::memory::desc& src,
                                       Mode mode) override;
    void saveState(StateWriter& out, const std::string& prefix) const override;
    void loadState(const StateReader& in, const std::string& prefix) override;

    Index channels() const { return c_; }
    float epsilon() const { return eps_; }
    float momentum() const { return momentum_; }
    /// Changes the running-average factor (Network::recalibrateBatchNorm uses 1/k).
    void setMomentum(float m) { momentum_ = m; }
    bool fusedRelu() const { return fuseRelu_; }
    ParameterBlock* gamma() const { return gamma_; }
    ParameterBlock* beta() const { return beta_; }
    Vector& runningMean() { return runningMean_; }
    Vector& runningVar() { return runningVar_; }
    const Vector& runningMean() const { return runningMean_; }
    const Vector& runningVar() const { return runningVar_; }

private:
    std::string name_;
    Index c_;
    float eps_, momentum_;
    bool fuseRelu_;
    ParameterBlock* gamma_ = nullptr;
    ParameterBlock* beta_ = nullptr;
    Vector runningMean_, runningVar_;
};

/// max(0, x), in whatever format it is given.
class Relu final : public Layer {
public:
    explicit Relu(std::string name) : name_(std::move(name)) {}
    std::string name() const override { return name_; }
    dnnl::memory::dims outputDims(const dnnl::memory::dims& src) const override { return src; }
    std::unique_ptr<LayerExec> compile(Context& ctx, const dnnl::memory::desc& src,
                                       Mode mode) override;

private:
    std::string name_;
};

/// Max pooling, square window, no padding.
class MaxPool final : public Layer {
public:
    MaxPool(std::string name, Index kernel = 2, Index stride = 2);
    std::string name() const override { return name_; }
    dnnl::memory::dims outputDims(const dnnl::memory::dims& src) const override;
    std::unique_ptr<LayerExec> compile(Context& ctx, const dnnl::memory::desc& src,
                                       Mode mode) override;
    Index kernel() const { return k_; }  ///< square window side
    Index stride() const { return stride_; }
    /// tern's own pooling loop (default) on nchw, nhwc and nChw8c/16c inputs, oneDNN's
    /// pooling primitive otherwise or when off (the loop is 2-5x faster than oneDNN 2.6's
    /// AVX2 pooling; both give the same values and gradients).
    void setDirect(bool on) { direct_ = on; }

private:
    std::string name_;
    Index k_, stride_;
    bool direct_ = true;
};

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
