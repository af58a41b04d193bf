// Ternary least squares with a planted x*: ADMM (with and without extragradient) and projected
// SGD against the brute-force optimum (all 3^n codes, optimal scale each), and ADMM against
// "round the unconstrained solution".
#define BOOST_TEST_MODULE optim_admm
#include <boost/test/data/monomorphic.hpp>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include "testing/helpers.hpp"
#include "tern/optim/admm.hpp"
#include "tern/optim/problems/least_squares.hpp"
#include "tern/optim/problems/polish.hpp"
#include "tern/optim/projected_sgd.hpp"

#include <algorithm>
#include <cmath>
#include <random>

namespace bdata = boost::unit_test::data;
using namespace tern;
using namespace tern::optim;
using problems::LeastSquares;

namespace {

/// b = A x* + noise, A ~ N(0,1) (m x n), x* = 0.8 * code with code uniform in {-1,0,1}^n.
LeastSquares planted(Index m, Index n, std::uint64_t seed, float noise) {
    return testing::plantedTernaryLsq(m, n, seed, noise);
}

/// The sign code of x (the ternary code of a point a*{-1,0,1}^n with a > 0).
Vector codeOf(const Vector& x) {
    return x.unaryExpr([](Scalar v) { return Scalar((v > 0) - (v < 0)); });
}

/// f at the best scale for x's code: how good the code found is.
double refit(const LeastSquares& p, const Vector& x) {
    const Vector q = codeOf(x);
    return p.objective(p.optimalScale(q) * q);
}

std::shared_ptr<const proj::Projection> ternary() { return proj::makeProjection("ternary:exact"); }

TrainSettings train(Index epochs, double lr) {
    TrainSettings t;
    t.maxEpochs = epochs;
    t.lr = LrSchedule::constant(lr);
    return t;
}

SgdSettings sgd(double momentum) {
    SgdSettings s;
    s.momentum = momentum;
    s.weightDecay = 0;
    return s;
}

/// ADMM as the tests and bench/lsq_recovery run it on least squares (full batch: one W-step
/// per epoch, an outer iteration every 10). The W-step needs lr * (L + rhoMax) well below 2
/// (L <= 3.7 here); extragradient wants lr * L < 1.
Vector runAdmm(LeastSquares& p, bool extragradient, std::vector<double>* primal = nullptr,
               LossAt lossAt = LossAt::W) {
    AdmmSettings a;
    a.lossAt = lossAt;
    a.rho = 1e-2;
    a.rhoGrowth = 1.05;
    a.rhoMax = 3;
    a.outerEvery = 10;
    a.extragradient = extragradient;
    p.x().value = p.solve();
    Admm opt(ternary(), Granularity::PerTensor, a, sgd(0.5), train(1500, 0.1));
    const TrainReport r = opt.optimize(p);
    BOOST_TEST(statusName(r.status) == "max-epochs");
    if (primal)
        for (const auto& s : r.history)
            if (s.epoch % 10 == 9) primal->push_back(s.primalRes);
    return p.x().value;
}

Vector runPgd(LeastSquares& p) {
    p.x().value = p.solve();
    ProjectedSgd opt(ternary(), Granularity::PerTensor, sgd(0), train(100, 0.5));
    opt.optimize(p);
    return p.x().value;
}

Vector roundSolution(const LeastSquares& p) {
    const Vector xls = p.solve();
    Vector z(xls.size());
    ternary()->project(xls, z);
    return z;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(planted_ternary_least_squares)

BOOST_AUTO_TEST_CASE(brute_force_oracle_is_exhaustive) {
    // n = 3: compare with a direct loop over the 27 codes.
    LeastSquares p = planted(12, 3, 5, 0.3f);
    const problems::BruteForceResult bf = problems::bruteForce(p, {-1, 0, 1}, true);
    double best = 1e300;
    for (int c = 0; c < 27; ++c) {
        Vector q(3);
        q << Scalar(c % 3 - 1), Scalar(c / 3 % 3 - 1), Scalar(c / 9 - 1);
        best = std::min(best, p.objective(p.optimalScale(q) * q));
    }
    BOOST_TEST(bf.objective == best, boost::test_tools::tolerance(1e-9));
    const problems::BruteForceResult fixed = problems::bruteForce(p, {-1, 0, 1}, false);
    BOOST_TEST(fixed.scale == 1.0f);
    BOOST_TEST(fixed.objective >= bf.objective - 1e-9);
}

// Well-conditioned A (m = 4n): every method must find the brute-force optimum.
BOOST_DATA_TEST_CASE(methods_reach_brute_force_optimum,
                     bdata::make({6, 8, 10}) * bdata::xrange(0, 4), n, seed) {
    LeastSquares p = planted(4 * n, n, 100 + seed, 0.1f);
    const problems::BruteForceResult bf = problems::bruteForce(p, {-1, 0, 1}, true);
    const double tol = 1e-5 * bf.objective + 1e-7;

    std::vector<double> primal;
    const Vector admm = runAdmm(p, true, &primal);
    BOOST_TEST(refit(p, admm) <= bf.objective + tol);
    BOOST_TEST((codeOf(admm) - bf.code).isZero());
    // the deployed point itself (with ADMM's own scale) is near-optimal too
    BOOST_TEST(p.objective(admm) <= bf.objective * 1.01 + 1e-6);
    // residuals fall: the final primal residual is far below the first one
    BOOST_TEST(primal.back() < 0.01 * primal.front());

    const Vector plain = runAdmm(p, false);
    BOOST_TEST(refit(p, plain) <= bf.objective + tol);

    // the loss gradient at P(W + U) instead of W: the same fixed points, the same optimum
    const Vector atZ = runAdmm(p, false, nullptr, LossAt::Projection);
    BOOST_TEST(refit(p, atZ) <= bf.objective + tol);

    const Vector pgd = runPgd(p);
    BOOST_TEST(refit(p, pgd) <= bf.objective + tol);
}

// Poorly conditioned A (m close to n) and more noise: rounding the least-squares solution
// often misses; ADMM must do better on average, and never worse than rounding by much.
BOOST_AUTO_TEST_CASE(admm_beats_rounding_on_average) {
    double gapAdmm = 0, gapRound = 0;
    int admmOptimal = 0, roundOptimal = 0;
    const int instances = 30;
    for (int seed = 0; seed < instances; ++seed) {
        LeastSquares p = planted(10, 8, 500 + seed, 0.5f);
        const problems::BruteForceResult bf = problems::bruteForce(p, {-1, 0, 1}, true);
        const double admm = refit(p, runAdmm(p, true));
        const double round = refit(p, roundSolution(p));
        gapAdmm += (admm - bf.objective) / bf.objective;
        gapRound += (round - bf.objective) / bf.objective;
        admmOptimal += admm <= bf.objective * (1 + 1e-5);
        roundOptimal += round <= bf.objective * (1 + 1e-5);
    }
    BOOST_TEST_MESSAGE("mean relative gap: admm " << gapAdmm / instances << ", round "
                                                  << gapRound / instances << "; optimal: admm "
                                                  << admmOptimal << ", round " << roundOptimal
                                                  << " of " << instances);
    BOOST_TEST(gapAdmm < 0.5 * gapRound);
    BOOST_TEST(admmOptimal > roundOptimal);
}

BOOST_AUTO_TEST_SUITE_END()

// ---- polishing (problems::polish): single-coordinate moves, Takapoui et al. 2017 ----

namespace {

/// g(q): f at q's optimal scale (free) or at the fixed scale.
double codeObjective(const LeastSquares& p, const Vector& q, bool freeScale, Scalar scale) {
    return p.objective((freeScale ? p.optimalScale(q) : scale) * q);
}

/// A code with entries drawn uniformly from levels.
Vector randomCode(Index n, const std::vector<Scalar>& levels, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<size_t> pick(0, levels.size() - 1);
    Vector q(n);
    for (Index j = 0; j < n; ++j) q[j] = levels[pick(rng)];
    return q;
}

}  // namespace

BOOST_AUTO_TEST_CASE(polish_never_increases_and_is_one_flip_optimal) {
    const std::vector<std::vector<Scalar>> sets = {{-1, 0, 1}, {-1, 1}, {-4, -2, -1, 0, 1, 2, 4}};
    int checked = 0, moved = 0;
    for (const auto& levels : sets)
        for (const bool freeScale : {true, false})
            for (std::uint64_t seed = 1; seed <= 12; ++seed) {
                const Index m = seed % 2 ? 6 : 14, n = 7;  // under- and overdetermined
                const LeastSquares p = planted(m, n, seed, 0.3f);
                const Vector q0 = randomCode(n, levels, 100 + seed);
                const Scalar scale = freeScale ? 1 : 0.8f;
                const double before = codeObjective(p, q0, freeScale, scale);
                const problems::PolishResult r = problems::polish(p, levels, freeScale, q0, scale);
                BOOST_TEST_CONTEXT("levels " << levels.size() << " free " << freeScale
                                             << " seed " << seed) {
                    BOOST_TEST(r.objective <= before * (1 + 1e-6) + 1e-9);
                    BOOST_TEST(r.objective == codeObjective(p, r.code, freeScale, scale),
                               boost::test_tools::tolerance(1e-9));
                    BOOST_TEST(r.scale >= 0);
                    if (!freeScale) BOOST_TEST(r.scale == scale);
                    // 1-flip optimal: no single change of the code lowers g
                    for (Index j = 0; j < n; ++j) {
                        BOOST_TEST((std::find(levels.begin(), levels.end(), r.code[j]) !=
                                    levels.end()));
                        for (const Scalar l : levels) {
                            Vector q = r.code;
                            q[j] = l;
                            BOOST_TEST(codeObjective(p, q, freeScale, scale) >=
                                       r.objective * (1 - 1e-5) - 1e-9);
                        }
                    }
                }
                ++checked;
                moved += r.moves > 0;
            }
    BOOST_TEST(moved > checked / 2);  // random codes are rarely 1-flip optimal
}

BOOST_AUTO_TEST_CASE(polish_often_reaches_the_brute_force_optimum) {
    // Tiny noisy instances: polishing the rounded least-squares solution reaches the optimum
    // far more often than rounding alone, and never ends worse than it.
    const std::vector<Scalar> levels = {-1, 0, 1};
    int rounded = 0, polished = 0;
    const int instances = 40;
    for (int k = 0; k < instances; ++k) {
        const LeastSquares p = planted(8, 7, 500 + std::uint64_t(k), 0.5f);
        const double best = problems::bruteForce(p, levels, true).objective;
        const Vector q = codeOf(roundSolution(p));
        const double f0 = codeObjective(p, q, true, 1);
        const problems::PolishResult r = problems::polish(p, levels, true, q);
        BOOST_TEST(r.objective <= f0 * (1 + 1e-6));
        BOOST_TEST(r.objective >= best * (1 - 1e-5));
        rounded += f0 <= best * (1 + 1e-6);
        polished += r.objective <= best * (1 + 1e-6);
    }
    BOOST_TEST_MESSAGE("optimal: rounding " << rounded << ", polished " << polished << " of "
                                            << instances);
    BOOST_TEST(polished >= rounded);
    BOOST_TEST(polished >= instances * 3 / 5);  // measured: 29 of 40 (rounding: 12)
}

BOOST_AUTO_TEST_CASE(polish_nearest_code_and_starting_points_check_arguments) {
    const LeastSquares p = planted(6, 4, 3, 0.1f);
    const std::vector<Scalar> ternaryLevels = {-1, 0, 1};
    const Vector q = Vector::Zero(4);
    BOOST_CHECK_THROW(problems::polish(p, {}, true, q), std::invalid_argument);
    BOOST_CHECK_THROW(problems::polish(p, ternaryLevels, true, Vector::Zero(3)),
                      std::invalid_argument);
    BOOST_CHECK_THROW(problems::polish(p, ternaryLevels, true, Vector::Constant(4, 0.5f)),
                      std::invalid_argument);
    BOOST_CHECK_THROW(problems::polish(p, ternaryLevels, false, q, -1), std::invalid_argument);
    BOOST_CHECK_THROW(problems::polish(p, ternaryLevels, true, q, 1, 0), std::invalid_argument);
    // From 0 with a free scale, polishing finds a non-trivial code.
    BOOST_TEST(problems::polish(p, ternaryLevels, true, q).objective < p.objective(q));

    Vector x(4);
    x << 0.9f, -0.2f, -1.4f, 0.6f;
    const Vector c = problems::nearestCode(x, 1, ternaryLevels);
    BOOST_TEST(c[0] == 1.0f);
    BOOST_TEST(c[1] == 0.0f);
    BOOST_TEST(c[2] == -1.0f);
    BOOST_TEST(c[3] == 1.0f);
    BOOST_TEST(problems::nearestCode(x, 0, ternaryLevels).isZero());
    BOOST_TEST(problems::nearestCode(2 * x, 2, {-1, 1})[1] == -1.0f);
    BOOST_CHECK_THROW(problems::nearestCode(x, -1, ternaryLevels), std::invalid_argument);

    BOOST_TEST(problems::startingPoint(x, 0, 7) == x);
    const Vector s1 = problems::startingPoint(x, 1, 7), s2 = problems::startingPoint(x, 2, 7);
    BOOST_TEST(s1 == problems::startingPoint(x, 1, 7));  // reproducible
    BOOST_TEST(s1 != s2);
    BOOST_TEST(s1 != problems::startingPoint(x, 1, 8));
    BOOST_TEST(problems::startingPoint(x, 3, 7, 0) == x);
    BOOST_CHECK_THROW(problems::startingPoint(x, -1, 7), std::invalid_argument);
    BOOST_CHECK_THROW(problems::startingPoint(x, 1, 7, -1), std::invalid_argument);
}
