#pragma once
/// \file Euclidean projection onto a level set, and trainable quantizers.
///
///   P_C(v) = argmin_{z in C} ||v - z||^2        (docs/algorithms.md, section 1)
///
/// A projection works one group at a time: the whole vector (per tensor) or each output
/// filter, a contiguous slice of a row-major tensor whose dim 0 is the filter.
#include "tern/core/parameter.hpp"
#include "tern/core/state.hpp"
#include "tern/core/types.hpp"

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tern::proj {

/// What the projection chose for one group.
struct GroupResult {
    Scalar scale = 1;   ///< the level scale a (1 where the set has no scale)
    Index nonzeros = 0; ///< entries of z that are not 0
};

/// Projection onto a level set C. Stateless and const (thread-safe); `z` may alias `v`.
class Projection {
public:
    virtual ~Projection() = default;
    /// Spec string; round-trips through makeProjection().
    virtual std::string name() const = 0;
    /// Number of levels: 2 (binary), 3 (ternary), 2N+1 (pow2), 0 for a continuous set (box).
    virtual int levels() const = 0;
    /// True when the scale a of the set is chosen per group (a*L with a free); false for a
    /// set with a fixed scale (binary {-1, 1}, ",scale=one", box).
    virtual bool freeScale() const { return false; }
    /// Projects v into z, split into `groups` equal contiguous slices, one scale each.
    /// Throws std::invalid_argument on size mismatch, groups not dividing the size, an empty
    /// group or a non-finite entry.
    std::vector<GroupResult> project(CVecRef v, VecRef z, Index groups = 1) const;
    /// Same, with the groups given by a shape and a granularity.
    std::vector<GroupResult> project(CVecRef v, VecRef z, const Shape& shape,
                                     Granularity g) const;

private:
    /// One group; sizes already checked, v finite and non-empty.
    virtual GroupResult projectGroup(CVecRef v, VecRef z) const = 0;
    /// Throws std::invalid_argument if the set cannot take groups of n entries (TernaryTopK's
    /// k > n); called by project() before anything is written.
    virtual void checkGroupSize(Index /*n*/) const {}
};

/// The best scale of `w` for a fixed-scale projection (e.g. "ternary", scale one):
/// argmin_s ||w - s P(w/s)||, s in (0, max|w|], by a 64-point grid then golden-section
/// refinement around the best grid point. Returns 1 for w = 0. Used to bring weights to the
/// levels' scale before optimizing over a fixed-scale set in front of batch norm (RPR's initial
/// rescale, ADMM with alpha = 1).
Scalar bestScale(const Projection& p, CVecRef w);

/// Divides each group of `w` (per tensor or per output filter of `shape`) by its bestScale(),
/// so that a fixed-scale set sees the weights at its own scale (else small weights all project
/// to 0). Harmless in front of batch norm, which undoes any per-channel scale. Returns the
/// divisor of each group (bestScale()), e.g. for an optimizer that keeps the step the same
/// relative to the weights: the gradient of w/s is s times that of w, so a step on it needs a
/// learning rate 1/s^2 times as large (ADMM's and PGD's preconditioning).
Vector rescaleToLevels(const Projection& p, VecRef w, const Shape& shape, Granularity granularity);

/// Builds a projection from a spec: "ternary:exact", "ternary:twn,ratio=0.7", "pow2,bits=3",
/// "ternary:topk,fraction=0.3", ... ; ",scale=one" fixes the scale of a scaled set to 1.
/// Unknown names or options throw std::invalid_argument listing the valid ones.
std::unique_ptr<Projection> makeProjection(const std::string& spec);
/// The known base names, for help texts and error messages.
std::vector<std::string> projectionNames();

/// A forward map plus a pseudo-gradient (larq's quantizer). The network is evaluated at
/// wq = forward(latent); backward maps dL/dwq to dL/dlatent.
class Quantizer {
public:
    virtual ~Quantizer() = default;
    virtual std::string name() const = 0;
    /// Number of values per group that forward() produces (as Projection::levels()).
    virtual int levels() const = 0;
    /// True when the values carry a free (solved or trained) scale per group.
    virtual bool freeScale() const = 0;
    /// wq = Q(latent) for one block of the given shape.
    virtual void forward(CVecRef latent, VecRef wq, const Shape& shape) = 0;
    /// dLatent = pseudo-gradient of dL/dwq at `latent` (uses what forward() saw last).
    virtual void backward(CVecRef latent, CVecRef dWq, VecRef dLatent) = 0;
    /// Extra trainable parameters of the quantizer (TTQ's Wp, Wn); their `grad` is written by
    /// backward(). nullptr when there are none.
    virtual ParameterSet* trainable() { return nullptr; }
    /// Re-initialises the quantizer's trainable state (TTQ's scales) from the entries of
    /// `latent` where select[i] != 0 (incremental schedules: the newly quantized part). Groups
    /// with no selected entry keep their state. Default: nothing to do.
    virtual void initFrom(CVecRef /*latent*/, const Shape& /*shape*/,
                          const std::vector<std::uint8_t>& /*select*/) {}
    virtual void saveState(StateWriter& /*out*/, const std::string& /*prefix*/) const {}
    virtual void loadState(const StateReader& /*in*/, const std::string& /*prefix*/) {}
    /// Whether an optimizer keeps the trainables >= 0 after each update: true (the default) for
    /// scales such as TTQ's Wp, Wn; false for parameters of either sign (GTC's theta1, theta2).
    virtual bool trainablesNonNegative() const { return true; }
    /// Whether the quantizer has a penalty (penalty(), addPenaltyGradient()): GTC's bit cost.
    virtual bool hasPenalty() const { return false; }
    /// The quantizer's penalty at the last forward(), which an optimizer adds to the loss as
    /// lambda * penalty() (GTC: the layer's bit cost 2^bits). 0 without one.
    virtual double penalty() const { return 0; }
    /// Adds lambda * d penalty() / d trainables to the trainables' grads and lambda *
    /// d penalty() / d latent to dLatent (straight-through), at the last forward(); call after
    /// backward(), which overwrites the trainables' grads. Nothing without a penalty.
    virtual void addPenaltyGradient(double /*lambda*/, VecRef /*dLatent*/) {}
    /// Bits per weight of the last forward() where the quantizer counts them (GTC: 1 +
    /// ceil(log2(M - m + 1))); NaN otherwise.
    virtual double bitsPerWeight() const { return std::numeric_limits<double>::quiet_NaN(); }
};

}  // namespace tern::proj
