// ReLU (include/tern/nn/relu.hpp) on oneDNN's eltwise primitive.
#include "tern/nn/relu.hpp"

#include "eltwise_exec.hpp"

namespace tern::nn {

using namespace detail;

std::unique_ptr<LayerExec> Relu::compile(Context& ctx, const memory::desc& src, Mode mode) {
    return guarded(name_, src.dims(), [&]() -> std::unique_ptr<LayerExec> {
        return std::make_unique<EltwiseExec>(ctx, mode, src, dnnl::algorithm::eltwise_relu, 0.0f);
    });
}

}  // namespace tern::nn
