#pragma once
/// \file The ReLU activation.
#include "tern/nn/layer.hpp"

namespace tern::nn {

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

}  // namespace tern::nn
