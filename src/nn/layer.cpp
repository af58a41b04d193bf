// The thread count of oneDNN and tern (include/tern/nn/layer.hpp) and the non-inline helpers
// the layers share (layer_util.hpp).
#include "tern/nn/layer.hpp"

#include "layer_util.hpp"

#include <omp.h>
#include <sched.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <thread>

namespace tern::nn {

int availableCores() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

int setNumThreads(int n) {
    if (n > 0) omp_set_num_threads(std::min(n, availableCores()));
    return omp_get_max_threads();
}

int numThreads() { return omp_get_max_threads(); }

const dnnl::memory& LayerExec::diffSrc(int i) {
    throw std::logic_error("LayerExec::diffSrc(" + std::to_string(i) +
                           "): a one-input executor has no gradient for another input");
}

dnnl::memory::dims Layer::outputDimsAll(const std::vector<dnnl::memory::dims>& srcs) const {
    if (srcs.size() != 1)
        throw std::runtime_error(name() + ": takes one input, given " + std::to_string(srcs.size()));
    return outputDims(srcs[0]);
}

std::unique_ptr<LayerExec> Layer::compileAll(Context& ctx, const std::vector<dnnl::memory::desc>& srcs,
                                             Mode mode) {
    if (srcs.size() != 1)
        throw std::runtime_error(name() + ": takes one input, given " + std::to_string(srcs.size()));
    return compile(ctx, srcs[0], mode);
}

namespace detail {

bool hasAvx512() {
    const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
    const auto avx512 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core);
    return (isa & avx512) == avx512;
}

std::string dimsStr(const dnnl::memory::dims& d) {
    std::string s = "[";
    for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
    return s + "]";
}

}  // namespace detail

}  // namespace tern::nn
