#pragma once
/// \file Layers on oneDNN v2.6. A Layer owns its hyper-parameters and declares its parameter
/// blocks; compile() turns it into a LayerExec: the primitives and memories for one input
/// descriptor (batch size, format) and one Mode. Training and inference executors coexist.
///
/// Invariants between neighbouring executors (format propagation):
///  - forward() takes src in the descriptor given to compile() and returns dst in dstDesc();
///  - backward() takes diffDst in dstDesc() and returns diffSrc in the compile-time src desc.
/// Conv / inner product choose their formats (format_tag::any) and reorder only where a
/// neighbour's format differs; memory-bound layers keep the format they are given.
#include "tern/core/parameter.hpp"
#include "tern/core/state.hpp"
#include "tern/optim/objective.hpp"

#include <dnnl.hpp>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace tern::nn {

/// Training (batch statistics, workspaces, backward) or inference (running statistics).
enum class Mode { Train, Infer };

/// The oneDNN engine and stream; plus the per-step seed that stochastic layers (dropout) use,
/// so that a step is a pure function of (seed, epoch, batch).
struct Context {
    dnnl::engine engine{dnnl::engine::kind::cpu, 0};
    dnnl::stream stream{engine};
    std::uint64_t stepSeed = 0;
};

/// Sets the number of threads oneDNN and tern use (OpenMP) and returns the number in use. n <= 0
/// leaves the default; n above availableCores() is capped there (more threads than cores makes
/// every OpenMP barrier spin against a descheduled thread: --threads 1000 on 2 cores ran a
/// 0.6 s job for over 300 s), and the caller can warn when the result is below n.
int setNumThreads(int n);
/// The cores this process may run on (its CPU affinity mask; at least 1).
int availableCores();
/// The current OpenMP thread count.
int numThreads();

/// Primitives and memories of one layer for one input descriptor and mode.
/// A buffer an executor's backward() writes an input gradient into, which the network may move
/// into a pool shared with the buffers of other layers (see LayerExec::gradientBuffers()).
/// `views` are other memories over the same bytes (another descriptor of the same layout);
/// they follow `mem` when it moves.
struct GradientBuffer {
    dnnl::memory* mem = nullptr;
    std::vector<dnnl::memory*> views;
};

class LayerExec {
public:
    virtual ~LayerExec() = default;
    /// Runs the forward pass on `src` (in the compile-time src desc); returns dst.
    virtual const dnnl::memory& forward(const dnnl::memory& src, optim::Pass pass) = 0;
    /// Backward from diffDst (in dstDesc()); writes parameter grads; returns diffSrc in the
    /// compile-time src desc (an empty memory when !needDiffSrc). Mode::Train only.
    virtual const dnnl::memory& backward(const dnnl::memory& diffDst, bool needDiffSrc) = 0;
    const dnnl::memory::desc& dstDesc() const { return dstMd_; }
    /// Backward from the sum of several gradients of dst (its node is read more than once),
    /// each in dstDesc(). The default sums them into `scratch` (a memory in dstDesc()) and
    /// calls backward(); an executor whose backward is element-wise (Add) folds the sum into
    /// its own pass, saving a write and a read of the sum.
    virtual const dnnl::memory& backwardSum(const std::vector<const dnnl::memory*>& diffDsts,
                                            dnnl::memory& scratch, bool needDiffSrc);
    /// The buffers backward() writes the input gradients into (Mode::Train), for the network
    /// to place in one pool by lifetime: a gradient is alive only from its layer's backward()
    /// to its producer's, so most layers can share bytes (Network sets their data handles once,
    /// after compiling). An executor lists a buffer only if every backward() writes all of it
    /// before reading it, and nothing but the returned gradients refers to it after compile
    /// (views excepted). The default lists none: the executor keeps its own buffers.
    virtual std::vector<GradientBuffer> gradientBuffers() { return {}; }

    // Layers with several inputs (Layer::numInputs() > 1, e.g. Add) override these two; a
    // one-input executor gets them for free.
    /// Forward on one memory per input, each in its compile-time desc.
    virtual const dnnl::memory& forwardAll(const std::vector<const dnnl::memory*>& srcs,
                                           optim::Pass pass) {
        return forward(*srcs.at(0), pass);
    }
    /// After backward(): the gradient for input `i` in its compile-time desc (input 0's is
    /// what backward() returned). Only for i < numInputs().
    virtual const dnnl::memory& diffSrc(int i);

protected:
    dnnl::memory::desc dstMd_;
};

/// Cost figures of one layer for one image (for reports and export).
struct LayerCost {
    Index weights = 0;  ///< weight count of the layer's weight tensor (0 if none)
    Index macs = 0;     ///< multiply-accumulates per image in the forward pass
};

class Layer {
public:
    virtual ~Layer() = default;
    /// Unique name, prefix of its blocks ("conv1" -> "conv1.weights").
    virtual std::string name() const = 0;
    /// Short description, e.g. "conv1: 32-C5 (1->32)".
    virtual std::string describe() const { return name(); }
    /// Creates the layer's parameter blocks (called once).
    virtual void declare(ParameterSet& /*params*/) {}
    /// Initialises the layer's blocks (He-normal weights, zero biases, BN gamma=1 beta=0).
    virtual void initialize(std::mt19937_64& /*rng*/) {}
    /// Output dims (N, C, H, W or N, C) for the input dims.
    virtual dnnl::memory::dims outputDims(const dnnl::memory::dims& src) const = 0;
    /// Builds the executor for `src` in `mode`.
    virtual std::unique_ptr<LayerExec> compile(Context& ctx, const dnnl::memory::desc& src,
                                               Mode mode) = 0;

    // Several inputs (residual connections): a layer that reads more than one tensor
    // overrides these; Network gives it one input per graph edge, in the order of the node's
    // inputs. The defaults serve one-input layers.
    /// How many tensors the layer reads (1 for all but merge layers such as Add).
    virtual int numInputs() const { return 1; }
    /// Output dims for one dims per input.
    virtual dnnl::memory::dims outputDimsAll(const std::vector<dnnl::memory::dims>& srcs) const;
    /// Executor for one desc per input.
    virtual std::unique_ptr<LayerExec> compileAll(Context& ctx,
                                                  const std::vector<dnnl::memory::desc>& srcs,
                                                  Mode mode);
    /// Forward cost per image for input dims `src` (batch dim ignored).
    virtual LayerCost cost(const dnnl::memory::dims& /*src*/) const { return {}; }
    /// State beyond parameter blocks (BN running statistics).
    virtual void saveState(StateWriter& /*out*/, const std::string& /*prefix*/) const {}
    virtual void loadState(const StateReader& /*in*/, const std::string& /*prefix*/) {}
};

}  // namespace tern::nn
