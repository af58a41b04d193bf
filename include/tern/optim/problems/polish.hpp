#pragma once
/// \file Polishing a code of a constrained least-squares problem by single-coordinate moves,
/// and the starting points of a multi-start heuristic (Takapoui, Moehle, Boyd, Bemporad,
/// "A simple effective heuristic for embedded mixed-integer quadratic programming", 2017:
/// ADMM from several starting points, each result polished, the best one kept).
///
///     auto pr = problems::polish(p, {-1, 0, 1}, /*freeScale=*/true, q);   // q in {-1,0,1}^n
///     x = pr.scale * pr.code;                      // 1-flip optimal, f(x) <= f(a* q)
#include "tern/optim/problems/least_squares.hpp"

#include <cstdint>
#include <vector>

namespace tern::optim::problems {

/// The result of polish().
struct PolishResult {
    Vector code;           ///< the polished code q (entries from `levels`)
    Scalar scale = 1;      ///< its scale a: optimal for a free scale, else the one given
    double objective = 0;  ///< f(a q), recomputed by LeastSquares::objective()
    Index moves = 0;       ///< accepted single-coordinate changes
    Index sweeps = 0;      ///< passes over the coordinates (the last one found no improving move)
};

/// Greedy local search over the 1-flip neighbourhood of a code q in levels^n:
///
///   repeat: for j = 1..n: try q_j <- l for every other level l; keep the best change if it
///           lowers g(q) (a cyclic sweep); until a sweep changes nothing (or maxSweeps)
///
/// with g(q) = min_{a >= 0} f(a q) for a free scale (a = max(0, <Aq, b>/||Aq||^2)) and
/// g(q) = f(a q) for the fixed scale `scale`. The result is 1-flip optimal (no single change
/// lowers g) unless maxSweeps ran out, and g never increases. With r = A q kept through
/// s = ||r||^2, c = <r, b> and the correlations h = A^T r, one trial costs O(1):
///
///   q_j += d:   s' = s + 2 d h_j + d^2 ||A_j||^2,   c' = c + d <A_j, b>,
///   g = 0.5/m (||b||^2 - c^2/s) (free, c > 0),  0.5/m ||b||^2 (free, c <= 0),
///       0.5/m (a^2 s - 2 a c + ||b||^2) (fixed);
///
/// an accepted move updates h += d (A^T A)_j in O(n); each sweep starts from an exact
/// recomputation (O(mn)). Throws std::invalid_argument if levels is empty, code has the wrong
/// size or an entry not in levels (within 1e-6), scale is not finite or < 0, or maxSweeps < 1.
PolishResult polish(const LeastSquares& problem, const std::vector<Scalar>& levels,
                    bool freeScale, CVecRef code, Scalar scale = 1, Index maxSweeps = 1000);

/// The code of a point x = a q of the level set: q_i = the level nearest x_i / a (the level
/// nearest 0 where a = 0). Throws std::invalid_argument if levels is empty or scale < 0.
Vector nearestCode(CVecRef x, Scalar scale, const std::vector<Scalar>& levels);

/// The k-th starting point of a multi-start run from the least-squares solution x_ls:
///
///   k = 0:   x_ls
///   k >= 1:  x_ls + spread * rms(x_ls) * e,   e ~ N(0, I) drawn from (seed, k)
///
/// (rms(x_ls) = ||x_ls|| / sqrt(n), or 1 where x_ls = 0), so every start has the scale of the
/// solution and each one is reproducible on its own. Throws std::invalid_argument if k < 0 or
/// spread is not finite or < 0.
Vector startingPoint(CVecRef xls, Index k, std::uint64_t seed, double spread = 1);

}  // namespace tern::optim::problems
