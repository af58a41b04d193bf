#pragma once
/// \file The box [lo, hi]^n (BinaryConnect keeps its latent weights there).
#include "tern/proj/projection.hpp"

namespace tern::proj {

/// Box constraint, projection = clip:
///
///   P(v)_i = min(max(v_i, lo), hi)
///
/// Courbariaux et al., "BinaryConnect" (2015): latent weights are clipped to [-1, 1].
/// Continuous set: levels() == 0, scale 1. Spec "box" or "box,lo=-2,hi=2".
class Box final : public Projection {
public:
    /// Throws std::invalid_argument unless lo <= hi, both finite.
    explicit Box(Scalar lo = -1, Scalar hi = 1);
    std::string name() const override;
    int levels() const override { return 0; }
    /// Lower bound.
    Scalar lo() const { return lo_; }
    /// Upper bound.
    Scalar hi() const { return hi_; }

private:
    GroupResult projectGroup(CVecRef v, VecRef z) const override;
    Scalar lo_, hi_;
};

}  // namespace tern::proj
