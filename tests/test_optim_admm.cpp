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
#include "tern/optim/projected_sgd.hpp"

#include <cmath>

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
Vector runAdmm(LeastSquares& p, bool extragradient, std::vector<double>* primal = nullptr) {
    AdmmSettings a;
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
