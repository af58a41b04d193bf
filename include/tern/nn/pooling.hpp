#pragma once
/// \file Max pooling (tern's own loops, or oneDNN's pooling primitive).
#include "tern/nn/layer.hpp"

namespace tern::nn {

/// Max pooling, square window, `padding` on each side (padded positions never win: ResNet-18's
/// 3x3 stride-2 pool has padding 1).
class MaxPool final : public Layer {
public:
    MaxPool(std::string name, Index kernel = 2, Index stride = 2, Index padding = 0);
    std::string name() const override { return name_; }
    dnnl::memory::dims outputDims(const dnnl::memory::dims& src) const override;
    std::unique_ptr<LayerExec> compile(Context& ctx, const dnnl::memory::desc& src,
                                       Mode mode) override;
    Index kernel() const { return k_; }  ///< square window side
    Index stride() const { return stride_; }
    Index padding() const { return pad_; }
    /// tern's own pooling loop (default) on nchw, nhwc and nChw8c/16c inputs, oneDNN's
    /// pooling primitive otherwise (and with padding) or when off (the loop is 2-5x faster than oneDNN 2.6's
    /// AVX2 pooling; both give the same values and gradients).
    void setDirect(bool on) { direct_ = on; }

private:
    std::string name_;
    Index k_, stride_, pad_;
    bool direct_ = true;
};

}  // namespace tern::nn
