#pragma once
/// \file Binary level sets: {-1, +1}^n and a*{-1, +1}^n (BinaryConnect, BWN).
#include "tern/proj/projection.hpp"
#include "tern/proj/scale.hpp"

namespace tern::proj {

/// Fixed binary set {-1, +1}^n:  P(v)_i = sign(v_i), with sign(0) = +1.
///
/// Courbariaux et al., "BinaryConnect" (2015). Spec "binary".
class BinarySign final : public Projection {
public:
    std::string name() const override { return "binary"; }
    int levels() const override { return 2; }

private:
    GroupResult projectGroup(CVecRef v, VecRef z) const override;
};

/// Scaled binary set a*{-1, +1}^n, a >= 0 (BWN, Rastegari et al., "XNOR-Net", 2016):
///
///   Q = sign(v),  a = <v, Q>/n = mean |v_i|,  P(v) = a*Q      (exact)
///
/// An all-zero group gives z = 0, a = 0. Spec "binary:scaled"; ",scale=one" gives sign(v).
class BinaryScaled final : public Projection {
public:
    explicit BinaryScaled(ScaleMode scale = ScaleMode::Free) : scale_(scale) {}
    std::string name() const override;
    int levels() const override { return 2; }
    /// Free or fixed to 1.
    ScaleMode scaleMode() const { return scale_; }
    bool freeScale() const override { return scale_ == ScaleMode::Free; }

private:
    GroupResult projectGroup(CVecRef v, VecRef z) const override;
    ScaleMode scale_;
};

}  // namespace tern::proj
