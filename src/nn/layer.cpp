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
#include <vector>

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

const dnnl::memory& LayerExec::backwardSum(const std::vector<const dnnl::memory*>& diffDsts,
                                           dnnl::memory& scratch, bool needDiffSrc) {
    if (diffDsts.size() == 1) return backward(*diffDsts[0], needDiffSrc);
    auto* a = static_cast<float*>(scratch.get_data_handle());
    const auto count = static_cast<Index>(scratch.get_desc().get_size() / sizeof(float));
    const auto* x = static_cast<const float*>(diffDsts[0]->get_data_handle());
    const auto* y = static_cast<const float*>(diffDsts[1]->get_data_handle());
#pragma omp parallel for simd schedule(static)
    for (Index e = 0; e < count; ++e) a[e] = x[e] + y[e];
    for (size_t k = 2; k < diffDsts.size(); ++k) {
        const auto* z = static_cast<const float*>(diffDsts[k]->get_data_handle());
#pragma omp parallel for simd schedule(static)
        for (Index e = 0; e < count; ++e) a[e] += z[e];
    }
    return backward(scratch, needDiffSrc);
}

namespace detail {

bool hasAvx512() {
    const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
    const auto avx512 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core);
    return (isa & avx512) == avx512;
}

namespace {

// The strides of a plain-or-one-block descriptor with every element's offset, or false for
// anything else (padding, several blocks, a block smaller than its dimension, extra flags).
// A single inner block as large as its dimension leaves one outer block, so the layout is the
// plain one with that dimension's stride 1.
bool plainStrides(const dnnl_memory_desc_t& d, std::vector<dnnl_dim_t>* strides) {
    if (d.format_kind != dnnl_blocked || d.extra.flags != 0) return false;
    for (int i = 0; i < d.ndims; ++i)
        if (d.padded_dims[i] != d.dims[i] || d.padded_offsets[i] != 0) return false;
    const auto& b = d.format_desc.blocking;
    strides->assign(b.strides, b.strides + d.ndims);
    if (b.inner_nblks == 0) return true;
    if (b.inner_nblks == 1 && b.inner_blks[0] == d.dims[b.inner_idxs[0]]) {
        (*strides)[static_cast<size_t>(b.inner_idxs[0])] = 1;
        return true;
    }
    return false;
}

}  // namespace

Blocks blocksOf(const dnnl::memory::desc& md, bool* matched) {
    using tag = dnnl::memory::format_tag;
    const auto f32 = dnnl::memory::data_type::f32;
    const auto d = md.dims();
    *matched = false;
    if (d.size() != 4 || md.data_type() != f32) return {d.size() > 1 ? d[1] : 0, 1, tag::nchw};
    const auto c = d[1];
    const Blocks cands[] = {{c, 1, tag::nchw}, {1, c, tag::nhwc}, {(c + 7) / 8, 8, tag::nChw8c},
                            {(c + 15) / 16, 16, tag::nChw16c}};
    for (const Blocks& x : cands)
        if (md == dnnl::memory::desc(d, f32, x.t)) {
            *matched = true;
            return x;
        }
    return {c, 1, tag::nchw};
}

dnnl::memory::desc blocked16View(const dnnl::memory::desc& md) {
    if (md.dims().size() != 4 || !hasAvx512()) return md;
    const dnnl::memory::desc blocked(md.dims(), dnnl::memory::data_type::f32,
                                     dnnl::memory::format_tag::nChw16c);
    return sameBytes(md, blocked) ? blocked : md;
}

bool sameBytes(const dnnl::memory::desc& a, const dnnl::memory::desc& b) {
    if (a == b) return true;
    const dnnl_memory_desc_t& x = a.data;
    const dnnl_memory_desc_t& y = b.data;
    if (x.ndims != y.ndims || x.data_type != y.data_type || x.offset0 != y.offset0) return false;
    for (int i = 0; i < x.ndims; ++i)
        if (x.dims[i] != y.dims[i]) return false;
    std::vector<dnnl_dim_t> sx, sy;
    if (!plainStrides(x, &sx) || !plainStrides(y, &sy)) return false;
    for (int i = 0; i < x.ndims; ++i)
        if (x.dims[i] > 1 && sx[static_cast<size_t>(i)] != sy[static_cast<size_t>(i)]) return false;
    return a.get_size() == b.get_size();
}

std::string dimsStr(const dnnl::memory::dims& d) {
    std::string s = "[";
    for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
    return s + "]";
}

}  // namespace detail

}  // namespace tern::nn
