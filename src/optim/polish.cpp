// Single-coordinate polishing of a least-squares code, and multi-start starting points.
#include "tern/optim/problems/polish.hpp"

#include "tern/core/error.hpp"

#include <algorithm>
#include <cmath>
#include <random>

namespace tern::optim::problems {

namespace {

/// Index of the level nearest v (ties: the level nearest 0, then the first).
size_t nearestLevel(double v, const std::vector<Scalar>& levels) {
    size_t best = 0;
    for (size_t l = 1; l < levels.size(); ++l) {
        const double d = std::abs(v - levels[l]), db = std::abs(v - levels[best]);
        if (d < db || (d == db && std::abs(levels[l]) < std::abs(levels[best]))) best = l;
    }
    return best;
}

}  // namespace

PolishResult polish(const LeastSquares& problem, const std::vector<Scalar>& levels,
                    bool freeScale, CVecRef code, Scalar scale, Index maxSweeps) {
    const char* where = "problems::polish()";
    if (levels.empty()) fail(where, "levels must not be empty");
    const Index n = problem.cols();
    requireSameSize(code.size(), n, where, "code", "A's columns");
    if (!std::isfinite(scale) || scale < 0)
        fail(where, TERN_MSG("scale must be finite and >= 0 (got " << scale << ")"));
    if (maxSweeps < 1) fail(where, TERN_MSG("maxSweeps must be >= 1 (got " << maxSweeps << ")"));
    for (Index j = 0; j < n; ++j) {
        const size_t l = nearestLevel(code[j], levels);
        if (!(std::abs(code[j] - levels[l]) <= 1e-6 * (1 + std::abs(levels[l]))))
            fail(where, TERN_MSG("code[" << j << "] = " << code[j] << " is not a level"));
    }

    const Eigen::MatrixXd A = problem.A().cast<double>();
    const Eigen::VectorXd b = problem.b().cast<double>();
    const Eigen::MatrixXd gram = A.transpose() * A;  // (A^T A)_jk = <A_j, A_k>
    const Eigen::VectorXd Ab = A.transpose() * b;    // <A_j, b>
    const double bb = b.squaredNorm(), a = scale;
    // g(q) * 2m as a function of s = ||Aq||^2 and c = <Aq, b>
    auto value = [&](double s, double c) {
        if (freeScale) return c > 0 && s > 0 ? bb - c * c / s : bb;
        return a * a * s - 2 * a * c + bb;
    };
    // Relative tolerance of an improvement: rounding in s and c must not look like progress.
    const double tol = 1e-12 * bb;

    Eigen::VectorXd q(n);
    for (Index j = 0; j < n; ++j) q[j] = levels[nearestLevel(code[j], levels)];
    PolishResult res;
    for (bool changed = true; changed && res.sweeps < maxSweeps;) {
        changed = false;
        ++res.sweeps;
        // exact state: r = A q, s = ||r||^2, c = <r, b>, h = A^T r
        const Eigen::VectorXd r = A * q;
        double s = r.squaredNorm(), c = r.dot(b);
        Eigen::VectorXd h = A.transpose() * r;
        double g = value(s, c);
        for (Index j = 0; j < n; ++j) {
            double bestG = g, bestD = 0;
            for (const Scalar l : levels) {
                const double d = l - q[j];
                if (d == 0) continue;
                // q_j += d:  s' = s + 2 d h_j + d^2 ||A_j||^2,  c' = c + d <A_j, b>
                const double gl = value(s + 2 * d * h[j] + d * d * gram(j, j), c + d * Ab[j]);
                if (gl < bestG - tol) {
                    bestG = gl;
                    bestD = d;
                }
            }
            if (bestD == 0) continue;
            // accept: update s, c and h = A^T A q in O(n)
            s += 2 * bestD * h[j] + bestD * bestD * gram(j, j);
            c += bestD * Ab[j];
            h += bestD * gram.col(j);
            q[j] += bestD;
            g = bestG;
            ++res.moves;
            changed = true;
        }
    }
    res.code = q.cast<Scalar>();
    res.scale = freeScale ? problem.optimalScale(res.code) : scale;
    res.objective = problem.objective(res.scale * res.code);
    return res;
}

Vector nearestCode(CVecRef x, Scalar scale, const std::vector<Scalar>& levels) {
    const char* where = "problems::nearestCode()";
    if (levels.empty()) fail(where, "levels must not be empty");
    if (!(scale >= 0)) fail(where, TERN_MSG("scale must be >= 0 (got " << scale << ")"));
    Vector q(x.size());
    for (Index i = 0; i < x.size(); ++i)
        q[i] = levels[nearestLevel(scale > 0 ? double(x[i]) / scale : 0.0, levels)];
    return q;
}

Vector startingPoint(CVecRef xls, Index k, std::uint64_t seed, double spread) {
    const char* where = "problems::startingPoint()";
    if (k < 0) fail(where, TERN_MSG("k must be >= 0 (got " << k << ")"));
    if (!std::isfinite(spread) || spread < 0)
        fail(where, TERN_MSG("spread must be finite and >= 0 (got " << spread << ")"));
    Vector x = xls;
    if (k == 0 || xls.size() == 0) return x;
    const double norm = xls.cast<double>().norm();
    const double rms = norm > 0 ? norm / std::sqrt(static_cast<double>(xls.size())) : 1.0;
    std::seed_seq seq{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32),
                      static_cast<std::uint32_t>(k)};
    std::mt19937_64 rng(seq);
    std::normal_distribution<double> normal(0, 1);
    for (Index i = 0; i < x.size(); ++i)
        x[i] = static_cast<Scalar>(x[i] + spread * rms * normal(rng));
    return x;
}

}  // namespace tern::optim::problems
