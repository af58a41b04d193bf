#pragma once
/// \file Sparsity-targeted ternary set: a*{-1, 0, 1}^n with at most k nonzeros.
#include "tern/proj/projection.hpp"
#include "tern/proj/scale.hpp"

#include <optional>

namespace tern::proj {

/// Ternary with at most k nonzeros per group, C_k = {a*Q : Q in {-1, 0, 1}^n, ||Q||_0 <= k, a >=
/// 0}.
///
///   sort |v| descending, S_m = sum of the m largest |v_i|;
///   m* = argmax_{m <= k} S_m^2 / m,  a = S_m*/m*,  Q = sign(v) on the top m*
///
/// This is the exact Euclidean projection onto C_k. docs/algorithms.md states it as "keep the k
/// largest |v_i|, a = their mean"; that is the same point whenever S_m^2/m still grows at m = k
/// (for Gaussian-like weights: fractions up to about one half), but keeping exactly k can be
/// farther from v when |v| has a few dominant entries (v = (10, 0.1), k = 2: keeping both costs
/// 48.6, keeping one costs 0.01). So z has *at most* k nonzeros.
///
/// With ",scale=one" (a = 1) the projection keeps the top-k entries with |v_i| > 1/2 as +-1.
/// k is given directly (the same for every group; k > group size throws) or as a fraction of
/// the group size, k = round(fraction * n). Specs "ternary:topk,k=5", "ternary:topk,fraction=0.3".
class TernaryTopK final : public Projection {
public:
    /// At most k nonzeros per group. Throws std::invalid_argument if k < 0.
    static TernaryTopK withK(Index k, ScaleMode scale = ScaleMode::Free);
    /// At most round(fraction * n) nonzeros per group of n. Throws unless 0 <= fraction <= 1.
    static TernaryTopK withFraction(Scalar fraction, ScaleMode scale = ScaleMode::Free);

    std::string name() const override;
    int levels() const override { return 3; }
    /// The nonzero budget for a group of n entries.
    Index budget(Index n) const;
    /// The fixed k, if given that way.
    std::optional<Index> k() const { return k_; }
    /// The fraction, if given that way.
    std::optional<Scalar> fraction() const { return fraction_; }
    /// Free or fixed to 1.
    ScaleMode scaleMode() const { return scale_; }
    bool freeScale() const override { return scale_ == ScaleMode::Free; }

private:
    TernaryTopK(std::optional<Index> k, std::optional<Scalar> fraction, ScaleMode scale)
        : k_(k), fraction_(fraction), scale_(scale) {}
    void checkGroupSize(Index n) const override;
    GroupResult projectGroup(CVecRef v, VecRef z) const override;
    std::optional<Index> k_;
    std::optional<Scalar> fraction_;
    ScaleMode scale_;
};

}  // namespace tern::proj
