#pragma once
/// \file Max pooling (tern's own loops, or oneDNN's pooling primitive).
#include "tern/nn/layer.hpp"

namespace tern::nn {

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

}  // namespace tern::nn
