#pragma once
/// \file 2-D convolution (oneDNN's direct and Winograd kernels, tern's own Winograd).
#include "tern/nn/weighted_layer.hpp"

namespace tern::nn {

/// 2-D convolution, weights OIHW ("<name>.weights", a quantization target unless told
/// otherwise) and an optional bias ("<name>.bias").
class Conv2d final : public WeightedLayer {
public:
    Conv2d(std::string name, Index inChannels, Index outChannels, Index kernel, Index stride = 1,
           Index padding = 0, bool bias = true, bool quantize = true);
    std::string describe() const override;
    dnnl::memory::dims outputDims(const dnnl::memory::dims& src) const override;
    std::unique_ptr<LayerExec> compile(Context& ctx, const dnnl::memory::desc& src,
                                       Mode mode) override;
    LayerCost cost(const dnnl::memory::dims& src) const override;

    Index inChannels() const { return in_; }
    Index outChannels() const { return out_; }
    Index kernel() const { return k_; }
    Index stride() const { return stride_; }
    Index padding() const { return pad_; }
    /// Allow Winograd for 3x3 and 5x5 stride-1 convolutions with >= 16 input channels (default
    /// on; off gives direct convolution everywhere, e.g. for tight finite-difference checks).
    void setWinograd(bool on) { winograd_ = on; }
    /// Which Winograd: oneDNN's (3x3 only, AVX-512 only; F(4x4, 3x3)) or tern's own
    /// (src/nn/winograd.hpp: F(m x m, r x r) with m + r - 1 <= 8, any x86-64 CPU, channels-last
    /// activations; used here for 3x3 and 5x5 kernels). Auto: oneDNN's for 3x3 kernels on
    /// AVX-512 CPUs, tern's for 5x5 kernels everywhere (on AVX-512 LeNet-5's step 19.4 ->
    /// 14.2 ms) and for 3x3 kernels on CPUs without AVX-512, where oneDNN has none and tern's
    /// ran LeNet-5's conv2 (forward and both backward passes together) about 3x faster than
    /// oneDNN's direct kernels (docs/bench-train.md). OneDnn falls back to direct where oneDNN has no Winograd.
    enum class WinogradImpl { Auto, OneDnn, Tern };
    void setWinogradImpl(WinogradImpl impl) { winogradImpl_ = impl; }
    /// Activation layout of a direct convolution. Auto: channels-last (nhwc) with >= 16 input
    /// channels where oneDNN runs its brgemm kernels on it (AVX-512; strided layers stay
    /// blocked), and with 1 input channel (faster backward weights); oneDNN's blocked choice
    /// otherwise. The neighbouring layers take whichever layout they are given, and a
    /// reorder runs only where two layouts meet. oneDNN's Winograd layers use the blocked
    /// layout, tern's Winograd layers nhwc, whatever this says.
    enum class Layout { Auto, Blocked, ChannelsLast };
    void setLayout(Layout layout) { layout_ = layout; }

private:
    Shape weightShape() const override { return Shape{out_, in_, k_, k_}; }

    Index in_, out_, k_, stride_, pad_;
    bool winograd_ = true;
    WinogradImpl winogradImpl_ = WinogradImpl::Auto;
    Layout layout_ = Layout::Auto;
};

}  // namespace tern::nn
