#pragma once
/// \file The inference path of a deployed model on oneDNN f32 primitives: conv / inner product
/// on the codes as floats, the per-channel scale and shift as binary post-ops (a plain bias
/// when every s_c is 1), ReLU as an eltwise post-op, max pooling; reorders only where formats
/// differ. TernaryModel::logits() runs it; use it directly to serve one model without copies.
#include "tern/core/types.hpp"

#include <memory>

namespace tern::deploy {

class TernaryModel;

/// oneDNN primitives for one model and one batch size, rebuilt when the batch size changes.
/// An engine serves one model: the weights are copied (and reordered) when the plan is built.
class InferenceEngine {
public:
    InferenceEngine();
    ~InferenceEngine();
    InferenceEngine(const InferenceEngine&) = delete;
    InferenceEngine& operator=(const InferenceEngine&) = delete;

    /// Logits of `count` images at `images` (NCHW, normalized) for `model`: count x classes
    /// values, valid until the next call. Throws std::runtime_error "TernaryModel: oneDNN
    /// failed on layer '<name>' ..." if a primitive cannot be created.
    const float* run(const TernaryModel& model, const float* images, Index count);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace tern::deploy
