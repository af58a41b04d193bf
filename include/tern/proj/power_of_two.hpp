#pragma once
/// \file Scaled power-of-two levels a*{0, +-1, +-2, ..., +-2^(N-1)} (ADMM's "N bits").
#include "tern/proj/projection.hpp"
#include "tern/proj/scale.hpp"

namespace tern::proj {

/// Power-of-two level set a*L^n, L = {0, +-1, +-2, +-4, ..., +-2^(N-1)}, a >= 0 (Leng et al.,
/// "Extremely low bit neural network", AAAI 2018; N = 3 is their {0, +-1, +-2, +-4}).
///
/// Solver::Alternate (default, docs/algorithms.md section 1), a heuristic:
///
///   (a, Q) = exact ternary solution          (Q in {-1, 0, 1} is in L)
///   repeat up to `rounds` times, until Q stops changing:
///     Q = nearest level of v/a               (midpoints 0.5 and 1.5*2^j)
///     a = <v, Q> / <Q, Q>
///
/// Each step cannot increase ||v - a*Q||^2, so the result is never worse than the ternary
/// solution; it can stop at a local minimum (tests measure how far from brute force).
///
/// Solver::Exact: for fixed a, Q(a) = nearest(v/a) changes only at the n*N breakpoints
/// a = |v_i|/m (m a midpoint); sweeping them in decreasing order while updating <|v|, |Q|> and
/// <Q, Q> visits every candidate code, and the best is max <|v|,|Q|>^2 / <Q,Q>. O(nN log(nN)).
///
/// With ",scale=one" (a = 1) both reduce to "nearest level of v". An all-zero group gives
/// z = 0, a = 0. Specs "pow2,bits=3", "pow2,bits=2,rounds=5", "pow2,bits=3,solver=exact".
class PowerOfTwo final : public Projection {
public:
    /// How the scaled problem is solved.
    enum class Solver { Alternate, Exact };

    /// Throws std::invalid_argument unless 1 <= bits <= 16 and rounds >= 1.
    explicit PowerOfTwo(int bits = 3, int rounds = 20, ScaleMode scale = ScaleMode::Free,
                        Solver solver = Solver::Alternate);
    std::string name() const override;
    /// 2N + 1.
    int levels() const override { return 2 * bits_ + 1; }
    /// N: the largest level is 2^(N-1).
    int bits() const { return bits_; }
    /// Maximum number of alternating rounds.
    int rounds() const { return rounds_; }
    /// Free or fixed to 1.
    ScaleMode scaleMode() const { return scale_; }
    bool freeScale() const override { return scale_ == ScaleMode::Free; }
    /// Alternating heuristic or exact sweep.
    Solver solver() const { return solver_; }
    /// Nearest level of x >= 0 in {0, 1, 2, ..., 2^(bits-1)} (ties go down).
    static Scalar nearestLevel(Scalar x, int bits);

private:
    GroupResult projectGroup(CVecRef v, VecRef z) const override;
    GroupResult alternate(CVecRef v, VecRef z) const;
    GroupResult sweep(CVecRef v, VecRef z) const;
    int bits_, rounds_;
    ScaleMode scale_;
    Solver solver_;
};

}  // namespace tern::proj
