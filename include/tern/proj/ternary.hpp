#pragma once
/// \file Ternary level sets {-1, 0, 1}^n and a*{-1, 0, 1}^n: the exact projection and the TWN rule.
#include "tern/proj/projection.hpp"
#include "tern/proj/scale.hpp"

namespace tern::proj {

/// Fixed ternary set {-1, 0, 1}^n, projection = round and clip:
///
///   P(v)_i = sign(v_i) * [|v_i| > 1/2]
///
/// Spec "ternary". Scale 1.
class TernaryFixed final : public Projection {
public:
    std::string name() const override { return "ternary"; }
    int levels() const override { return 3; }

private:
    GroupResult projectGroup(CVecRef v, VecRef z) const override;
};

/// TWN's threshold rule on a*{-1, 0, 1}^n (Li, Zhang & Liu, "Ternary Weight Networks", 2016):
///
///   delta = ratio * mean |v_i|,  I = {i : |v_i| > delta},
///   a = mean_{i in I} |v_i|,     P(v)_i = a * sign(v_i) * [i in I]
///
/// A cheap approximation of TernaryExact (the scale is optimal for the chosen support, the
/// support need not be). With ",scale=one" the rule keeps its threshold and outputs +-1.
/// Spec "ternary:twn" (ratio 0.7) or "ternary:twn,ratio=0.5".
class TernaryTwn final : public Projection {
public:
    /// Throws std::invalid_argument unless ratio >= 0, finite.
    explicit TernaryTwn(Scalar ratio = 0.7f, ScaleMode scale = ScaleMode::Free);
    std::string name() const override;
    int levels() const override { return 3; }
    /// delta / mean|v|.
    Scalar ratio() const { return ratio_; }
    /// Free or fixed to 1.
    ScaleMode scaleMode() const { return scale_; }
    bool freeScale() const override { return scale_ == ScaleMode::Free; }

private:
    GroupResult projectGroup(CVecRef v, VecRef z) const override;
    Scalar ratio_;
    ScaleMode scale_;
};

/// Exact projection onto a*{-1, 0, 1}^n, a >= 0 (docs/algorithms.md, section 1):
///
///   sort |v| descending, S_k = sum of the k largest |v_i|;
///   ||v - a*Q||^2 is minimal at k* = argmax_k S_k^2 / k, a = S_k*/k*, Q = sign(v) on the top k*
///
/// O(n log n). An all-zero group gives z = 0, a = 0. With ",scale=one" the set is {-1, 0, 1}^n
/// and the projection is TernaryFixed's rounding. Spec "ternary:exact".
class TernaryExact final : public Projection {
public:
    explicit TernaryExact(ScaleMode scale = ScaleMode::Free) : scale_(scale) {}
    std::string name() const override;
    int levels() const override { return 3; }
    /// Free or fixed to 1.
    ScaleMode scaleMode() const { return scale_; }
    bool freeScale() const override { return scale_ == ScaleMode::Free; }
    /// Groups of at least this many entries use the O(n) histogram search instead of a sort.
    static constexpr Index kLargeGroup = Index{1} << 14;

private:
    GroupResult projectGroup(CVecRef v, VecRef z) const override;
    ScaleMode scale_;
};

}  // namespace tern::proj
