#pragma once
// Private to src/nn: the helpers the layer implementations share (conv2d.cpp, linear.cpp,
// weighted_layer.cpp, batch_norm.cpp, relu.cpp, pooling.cpp, dropout.cpp): memory descriptors,
// the CPU's ISA, error messages with the layer's input dims, and reorders between a
// primitive's formats and its neighbours'.
#include "tern/nn/layer.hpp"

#include <dnnl.hpp>

#include <stdexcept>
#include <string>

namespace tern::nn::detail {

// The short names the layer implementations use (they bring in this namespace).
using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;
using optim::Pass;

/// An f32 descriptor of `d` in the format the primitive picks (format_tag::any).
inline dnnl::memory::desc anyMd(const dnnl::memory::dims& d) {
    return {d, dnnl::memory::data_type::f32, dnnl::memory::format_tag::any};
}

/// forward_training in Mode::Train, forward_inference in Mode::Infer.
inline dnnl::prop_kind forwardKind(Mode mode) {
    return mode == Mode::Train ? dnnl::prop_kind::forward_training
                               : dnnl::prop_kind::forward_inference;
}

/// Whether oneDNN runs AVX-512 (avx512_core) kernels on this CPU: some layout choices of
/// Conv2d and Linear were measured faster there and slower on AVX2 (docs/bench-train.md).
bool hasAvx512();

/// "[N, C, H, W]" for messages.
std::string dimsStr(const dnnl::memory::dims& d);

/// Re-throws a oneDNN error with the layer's name and input dims.
template <typename F>
auto guarded(const std::string& layer, const dnnl::memory::dims& src, F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const dnnl::error& e) {
        throw std::runtime_error(layer + ": oneDNN error for input " + dimsStr(src) + ": " +
                                 e.what());
    }
}

/// Whether two descriptors put every element at the same byte (the same dims and data type,
/// and strides equal wherever a dimension has more than one element): nhwc and nChw16c with
/// 16 channels, say. A reorder between them would copy the bytes unchanged, so the memory is
/// viewed in the other descriptor instead (ResNet-20's first stage runs nhwc convolutions
/// between blocked ones: 4 such copies of 8 MB per step at batch 128).
bool sameBytes(const dnnl::memory::desc& a, const dnnl::memory::desc& b);

/// On AVX-512, `md` as nChw16c when that descriptor holds the same bytes (4-D f32 with 16
/// channels in nhwc): oneDNN's AVX-512 kernels are blocked-16, so batch norm and the
/// option-A shortcut run on this view instead of a copy. `md` itself otherwise (on AVX2 the
/// kernels are nhwc / nChw8c).
dnnl::memory::desc blocked16View(const dnnl::memory::desc& md);

/// The [N][Cb][H][W][B] layouts (nchw: Cb = C, B = 1; nhwc: Cb = 1, B = C; nChw8c / nChw16c:
/// Cb = ceil(C / B)) of a 4-D f32 descriptor; `matched` is false for anything else (then
/// {C, 1, nchw} is returned, for a reorder to nchw).
struct Blocks {
    dnnl::memory::dim cb = 0, b = 1;
    dnnl::memory::format_tag t = dnnl::memory::format_tag::nchw;
};
Blocks blocksOf(const dnnl::memory::desc& md, bool* matched);

/// Layer fusion across executors (Network::compile sets it up; see docs/architecture.md).
/// A producer whose output is a per-channel affine map of its input, dst = a[c] src + b[c]
/// (batch norm without ReLU), lets its only consumer apply that map itself: after
/// deferAffine() the producer's forward() computes a and b (and everything its backward
/// needs) but does not write dst.
class AffineSource {
public:
    virtual ~AffineSource() = default;
    /// Whether deferAffine() would succeed.
    virtual bool canDeferAffine() const = 0;
    /// Switches to deferred mode; false if this executor cannot.
    virtual bool deferAffine() = 0;
    /// After forward(): the memory the map applies to (in the consumer's input desc), a and b.
    virtual const dnnl::memory& affineInput() const = 0;
    virtual const float* affineScale() const = 0;
    virtual const float* affineShift() const = 0;
};
/// A consumer that can apply its input `i`'s affine map in its own pass (Add).
class AffineSink {
public:
    virtual ~AffineSink() = default;
    /// Takes over `src`'s map for input i; false if it cannot (then nothing changes).
    virtual bool absorbAffine(int i, AffineSource* src) = 0;
};

/// A reorder between a neighbour's memory and a memory in the primitive's format (`mem`), built
/// only when the two descriptors differ. When they differ only in name (sameBytes), `alias` is
/// set instead: `mem` is then a view, in the primitive's descriptor, of the neighbour's bytes.
/// Bridge runs it into the primitive, OutBridge out of it.
struct Reorder {
    bool active = false;
    bool alias = false;
    dnnl::memory mem;  // in the primitive's format
    dnnl::reorder prim;

protected:
    /// A reorder `from` -> `to`, with `mem` in `own` (one of the two), when they differ.
    void build(const dnnl::engine& eng, const dnnl::memory::desc& from,
               const dnnl::memory::desc& to, const dnnl::memory::desc& own) {
        alias = (from != to) && sameBytes(from, to);
        active = (from != to) && !alias;
        if (active) {
            mem = dnnl::memory(own, eng);
            prim = dnnl::reorder(dnnl::reorder::primitive_desc(eng, from, eng, to));
        } else if (alias) {
            mem = dnnl::memory(own, eng, DNNL_MEMORY_NONE);
        }
    }
    /// `mem` viewing the bytes of `m`.
    dnnl::memory& view(const dnnl::memory& m) {
        mem.set_data_handle(m.get_data_handle());
        return mem;
    }
};

/// A memory the primitive wants in `want`, bridged from a neighbour's memory in `have`.
struct Bridge : Reorder {
    void build(const dnnl::engine& eng, const dnnl::memory::desc& have,
               const dnnl::memory::desc& want) {
        Reorder::build(eng, have, want, want);
    }
    /// Forward direction: returns the memory in `want`, converting `from` if needed.
    const dnnl::memory& into(dnnl::stream& s, const dnnl::memory& from) {
        if (alias) return view(from);
        if (!active) return from;
        prim.execute(s, {{DNNL_ARG_FROM, const_cast<dnnl::memory&>(from)}, {DNNL_ARG_TO, mem}});
        return mem;
    }
};

/// Reorder from an internal memory back out to a user memory (gradients).
struct OutBridge : Reorder {
    void build(const dnnl::engine& eng, const dnnl::memory::desc& internal,
               const dnnl::memory::desc& user) {
        Reorder::build(eng, internal, user, internal);
    }
    /// Where the primitive writes: the internal memory, or `user` itself (viewed in the
    /// internal descriptor when the two differ only in name) when no reorder runs.
    dnnl::memory& target(dnnl::memory& user) {
        if (alias) return view(user);
        return active ? mem : user;
    }
    /// Copies the internal memory out to `user` (nothing when no reorder runs).
    void flush(dnnl::stream& s, dnnl::memory& user) {
        if (active) prim.execute(s, {{DNNL_ARG_FROM, mem}, {DNNL_ARG_TO, user}});
    }
};

}  // namespace tern::nn::detail
