#pragma once
/// \file Least squares as an Objective (ensmallen's problems/): the entry point for plain
/// constrained problems such as min ||Ax - b||^2 s.t. x ternary, and the optimizer tests'
/// workhorse.
#include "tern/optim/objective.hpp"

#include <Eigen/Dense>

#include <cstdint>
#include <vector>

namespace tern::optim::problems {

/// f_B(x) = 1/(2|B|) * sum_{i in B} (a_i^T x - b_i)^2 over the rows B of a minibatch, so that
/// every batch (and the full problem) has the same scale: f(x) = 0.5/m ||Ax - b||^2,
/// grad f_B(x) = A_B^T (A_B x - b_B) / |B|. Its Hessian A^T A / m is ~ I for A with i.i.d.
/// N(0,1) entries and m >> n, so learning rates of order 0.1-1 are sensible.
///
/// One block "x" (shape {n}, constrained, no weight decay). rowsPerBatch = 0 means one full
/// batch; otherwise ceil(m / rowsPerBatch) batches over a permutation of the rows that
/// shuffle() redraws (the last batch may be smaller).
class LeastSquares final : public Objective {
public:
    /// Throws std::invalid_argument if A has no rows/columns, b.size() != A.rows(), an entry is
    /// not finite, or rowsPerBatch < 0.
    LeastSquares(Eigen::MatrixXf A, Vector b, Index rowsPerBatch = 0);

    ParameterSet& parameters() override { return params_; }
    Index numBatches() const override;
    void shuffle(std::mt19937_64& rng) override;
    double evaluateWithGradient(Index batch, Pass pass = Pass::Commit) override;
    double evaluate(Index batch) override;
    /// The row order.
    void saveState(StateWriter& out, const std::string& prefix) const override;
    void loadState(const StateReader& in, const std::string& prefix) override;

    /// The block "x".
    ParameterBlock& x() { return *x_; }
    const Eigen::MatrixXf& A() const { return A_; }
    const Vector& b() const { return b_; }
    Index rows() const { return A_.rows(); }
    Index cols() const { return A_.cols(); }

    /// f(x) = 0.5/m ||Ax - b||^2 over all rows (double accumulation).
    double objective(CVecRef x) const;
    /// The unconstrained minimiser (least-squares solution via complete orthogonal
    /// decomposition; the minimum-norm one if A is rank deficient).
    Vector solve() const;
    /// argmin_{a >= 0} f(a q) for a code q: max(0, <Aq, b> / ||Aq||^2) (0 if Aq = 0).
    Scalar optimalScale(CVecRef q) const;
    /// L = lambda_max(A^T A / m), the Lipschitz constant of grad f, by 200 power iterations
    /// from a Gaussian vector drawn from `seed` (at least 1e-12).
    double lipschitz(std::uint64_t seed = 1) const;

private:
    Eigen::MatrixXf A_;
    Vector b_;
    Index rowsPerBatch_;
    std::vector<Index> order_;
    ParameterSet params_;
    ParameterBlock* x_;
};

/// The result of an exhaustive search over codes.
struct BruteForceResult {
    Vector code;       ///< the best code q (entries from `levels`)
    Scalar scale = 1;  ///< its scale a (1 when the scale is fixed)
    double objective = 0;  ///< f(a q)
};

/// Exhaustive search: min over q in levels^n (and a >= 0 when freeScale, else a = 1) of
/// f(a q), incremental over the odometer order (O(m) per code). levels^n must stay small
/// (3^12 = 531441 is fine). Throws std::invalid_argument if levels is empty or levels^n > 2^26.
BruteForceResult bruteForce(const LeastSquares& problem, const std::vector<Scalar>& levels,
                            bool freeScale);

}  // namespace tern::optim::problems
