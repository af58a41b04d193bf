// Least squares as an Objective, and an exhaustive oracle for small constrained instances.
#include "tern/optim/problems/least_squares.hpp"

#include "tern/core/error.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <numeric>
#include <random>

namespace tern::optim::problems {

LeastSquares::LeastSquares(Eigen::MatrixXf A, Vector b, Index rowsPerBatch)
    : A_(std::move(A)), b_(std::move(b)), rowsPerBatch_(rowsPerBatch) {
    const char* where = "LeastSquares::LeastSquares()";
    if (A_.rows() == 0 || A_.cols() == 0)
        fail(where, TERN_MSG("A must be non-empty (got " << A_.rows() << " x " << A_.cols() << ")"));
    requireSameSize(b_.size(), A_.rows(), where, "b", "A's rows");
    if (!A_.allFinite()) fail(where, "A has a non-finite entry");
    requireFinite(b_, where, "b");
    if (rowsPerBatch < 0)
        fail(where, TERN_MSG("rowsPerBatch must be >= 0 (got " << rowsPerBatch << ")"));
    order_.resize(static_cast<size_t>(A_.rows()));
    std::iota(order_.begin(), order_.end(), Index{0});
    x_ = &params_.add("x", Shape{A_.cols()}, /*constrained=*/true, /*decay=*/false);
}

Index LeastSquares::numBatches() const {
    if (rowsPerBatch_ == 0 || rowsPerBatch_ >= A_.rows()) return 1;
    return (A_.rows() + rowsPerBatch_ - 1) / rowsPerBatch_;
}

void LeastSquares::shuffle(std::mt19937_64& rng) {
    if (numBatches() > 1) std::shuffle(order_.begin(), order_.end(), rng);
}

double LeastSquares::evaluateWithGradient(Index batch, Pass /*pass*/) {
    assert(batch >= 0 && batch < numBatches());
    const Vector& x = x_->value;
    if (numBatches() == 1) {
        // r = A x - b;  f = 0.5/m ||r||^2;  grad = A^T r / m
        const Vector r = A_ * x - b_;
        const auto m = static_cast<Scalar>(A_.rows());
        x_->grad.noalias() = A_.transpose() * r / m;
        return 0.5 * r.cast<double>().squaredNorm() / static_cast<double>(A_.rows());
    }
    const Index lo = batch * rowsPerBatch_;
    const Index hi = std::min(lo + rowsPerBatch_, A_.rows());
    Eigen::MatrixXf Ab(hi - lo, A_.cols());
    Vector bb(hi - lo);
    for (Index k = lo; k < hi; ++k) {
        Ab.row(k - lo) = A_.row(order_[size_t(k)]);
        bb[k - lo] = b_[order_[size_t(k)]];
    }
    const Vector r = Ab * x - bb;
    x_->grad.noalias() = Ab.transpose() * r / static_cast<Scalar>(hi - lo);
    return 0.5 * r.cast<double>().squaredNorm() / static_cast<double>(hi - lo);
}

double LeastSquares::evaluate(Index batch) {
    const Vector g = x_->grad;
    const double loss = evaluateWithGradient(batch, Pass::Probe);
    x_->grad = g;
    return loss;
}

void LeastSquares::saveState(StateWriter& out, const std::string& prefix) const {
    out.writeInts(prefix + "/order", std::vector<std::int64_t>(order_.begin(), order_.end()));
}

void LeastSquares::loadState(const StateReader& in, const std::string& prefix) {
    const std::vector<std::int64_t> order = in.readInts(prefix + "/order");
    if (static_cast<Index>(order.size()) != A_.rows())
        fail("LeastSquares::loadState()",
             TERN_MSG("order has " << order.size() << " entries, A has " << A_.rows() << " rows"));
    order_.assign(order.begin(), order.end());
}

double LeastSquares::objective(CVecRef x) const {
    requireSameSize(x.size(), A_.cols(), "LeastSquares::objective()", "x", "A's columns");
    const Vector r = A_ * x - b_;
    return 0.5 * r.cast<double>().squaredNorm() / static_cast<double>(A_.rows());
}

Vector LeastSquares::solve() const { return A_.completeOrthogonalDecomposition().solve(b_); }

Scalar LeastSquares::optimalScale(CVecRef q) const {
    requireSameSize(q.size(), A_.cols(), "LeastSquares::optimalScale()", "q", "A's columns");
    const Eigen::VectorXd Aq = (A_ * q).cast<double>();
    const double qq = Aq.squaredNorm();
    if (qq == 0) return 0;
    return static_cast<Scalar>(std::max(0.0, Aq.dot(b_.cast<double>()) / qq));
}

double LeastSquares::lipschitz(std::uint64_t seed) const {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0, 1);
    Eigen::VectorXd v(A_.cols());
    for (Index i = 0; i < v.size(); ++i) v[i] = normal(rng);
    const Eigen::MatrixXd Ad = A_.cast<double>();
    double lambda = 0;
    for (int it = 0; it < 200; ++it) {
        // v <- A^T A v / m, normalized; lambda = Rayleigh quotient
        v.normalize();
        const Eigen::VectorXd w = Ad.transpose() * (Ad * v) / static_cast<double>(A_.rows());
        lambda = v.dot(w);
        v = w;
        if (v.norm() == 0) break;
    }
    return std::max(lambda, 1e-12);
}

BruteForceResult bruteForce(const LeastSquares& problem, const std::vector<Scalar>& levels,
                            bool freeScale) {
    const char* where = "problems::bruteForce()";
    if (levels.empty()) fail(where, "levels must not be empty");
    const Index n = problem.cols(), m = problem.rows();
    const auto L = static_cast<Index>(levels.size());
    double total = 1;
    for (Index i = 0; i < n; ++i) total *= static_cast<double>(L);
    if (total > double(1 << 26))
        fail(where, TERN_MSG("levels^n = " << total << " codes is too many (max 2^26)"));
    const Eigen::MatrixXd A = problem.A().cast<double>();
    const Eigen::VectorXd b = problem.b().cast<double>();
    const double bb = b.squaredNorm();
    // Odometer over digits; r = A q kept incrementally.
    std::vector<Index> digit(static_cast<size_t>(n), 0);
    Eigen::VectorXd q = Eigen::VectorXd::Constant(n, levels[0]);
    Eigen::VectorXd r = A * q;
    BruteForceResult best;
    best.objective = std::numeric_limits<double>::infinity();
    auto consider = [&] {
        double a = 1, obj;
        if (freeScale) {
            // min_{a>=0} ||a r - b||^2: a = max(0, <r,b>/<r,r>)
            const double rr = r.squaredNorm(), rb = r.dot(b);
            a = rr > 0 ? std::max(0.0, rb / rr) : 0.0;
            obj = a > 0 ? bb - rb * rb / rr : bb;
        } else {
            obj = (r - b).squaredNorm();
        }
        obj *= 0.5 / static_cast<double>(m);
        if (obj < best.objective) {
            best.objective = obj;
            best.code = q.cast<Scalar>();
            best.scale = static_cast<Scalar>(a);
        }
    };
    consider();
    for (;;) {
        Index i = 0;
        while (i < n && digit[size_t(i)] == L - 1) {
            // wrap digit i back to level 0
            r += (levels[0] - q[i]) * A.col(i);
            q[i] = levels[0];
            digit[size_t(i)] = 0;
            ++i;
        }
        if (i == n) break;
        const Scalar next = levels[size_t(++digit[size_t(i)])];
        r += (next - q[i]) * A.col(i);
        q[i] = next;
        consider();
    }
    // Recompute the winner exactly (the incremental r drifts by rounding).
    if (freeScale) best.scale = problem.optimalScale(best.code);
    best.objective = problem.objective(best.scale * best.code);
    return best;
}

}  // namespace tern::optim::problems
