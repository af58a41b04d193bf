#define BOOST_TEST_MODULE projection
#include <boost/test/data/monomorphic.hpp>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include "tern/proj/factory.hpp"
#include "testing/helpers.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <random>
#include <vector>

using namespace tern;
using namespace tern::proj;
using tern::testing::messageContains;
namespace bdata = boost::unit_test::data;

namespace {

/// Test vectors: Gaussian, and for every 4th seed values rounded to multiples of 1/2, so ties
/// and exact zeros (and the 1/2 rounding boundary) occur.
Vector testVector(Index n, int seed) {
    Vector v = testing::randomVector(
        n, static_cast<std::uint64_t>(seed) + 1000u * static_cast<std::uint64_t>(n));
    if (seed % 4 == 3) v = (v * 2).array().round() / 2;
    return v;
}

double sqErr(const Vector& v, const Vector& z) {
    return (v.cast<double>() - z.cast<double>()).squaredNorm();
}

/// Smallest ||v - a*Q||^2 over all codes Q in levels^n (with at most maxNonzeros nonzeros), with
/// a = max(0, <v,Q>/<Q,Q>) (free scale) or a = 1 (fixed). Enumerates |levels|^n codes.
double bruteForce(const Vector& v, const std::vector<double>& levels, bool freeScale,
                  std::optional<Index> maxNonzeros = std::nullopt) {
    const Index n = v.size();
    const auto L = levels.size();
    std::vector<std::size_t> code(static_cast<std::size_t>(n), 0);
    double best = std::numeric_limits<double>::infinity();
    while (true) {
        double vq = 0, qq = 0, vv = 0;
        Index nnz = 0;
        for (Index i = 0; i < n; ++i) {
            const double q = levels[code[static_cast<std::size_t>(i)]];
            vq += v[i] * q;
            qq += q * q;
            vv += static_cast<double>(v[i]) * v[i];
            nnz += q != 0;
        }
        if (!maxNonzeros || nnz <= *maxNonzeros) {
            const double a = freeScale ? (qq > 0 ? std::max(0.0, vq / qq) : 0.0) : 1.0;
            best = std::min(best, vv - 2 * a * vq + a * a * qq);
        }
        std::size_t i = 0;  // next code, odometer style
        while (i < code.size() && ++code[i] == L) code[i++] = 0;
        if (i == code.size()) break;
    }
    return std::max(best, 0.0);
}

std::vector<double> pow2Levels(int bits) {
    std::vector<double> l{0};
    for (int j = 0; j < bits; ++j) {
        l.push_back(std::ldexp(1.0, j));
        l.push_back(-std::ldexp(1.0, j));
    }
    return l;
}

const std::vector<double> kTernary{-1, 0, 1};
const std::vector<double> kBinary{-1, 1};

Vector projectWith(const Projection& p, const Vector& v, Index groups = 1) {
    Vector z(v.size());
    p.project(v, z, groups);
    return z;
}

bool closeTo(double got, double best) { return got <= best * (1 + 1e-5) + 1e-6; }

/// Every spec the tests sweep over.
const std::vector<std::string> kSpecs{"box",
                                      "box,lo=-0.5,hi=2",
                                      "binary",
                                      "binary:scaled",
                                      "binary:scaled,scale=one",
                                      "ternary",
                                      "ternary:twn",
                                      "ternary:twn,ratio=0.5",
                                      "ternary:twn,scale=one",
                                      "ternary:exact",
                                      "ternary:exact,scale=one",
                                      "ternary:topk,k=3",
                                      "ternary:topk,fraction=0.3",
                                      "ternary:topk,k=2,scale=one",
                                      "pow2,bits=1",
                                      "pow2,bits=2",
                                      "pow2,bits=3",
                                      "pow2,bits=3,rounds=5",
                                      "pow2,bits=3,solver=exact",
                                      "pow2,bits=4,scale=one"};

bool isAlternatingPow2(const Projection& p) {
    const auto* q = dynamic_cast<const PowerOfTwo*>(&p);
    return q && q->bits() >= 2 && q->scaleMode() == ScaleMode::Free &&
           q->solver() == PowerOfTwo::Solver::Alternate;
}

bool isScaled(const std::string& spec) {
    return spec.find("scale=one") == std::string::npos &&
           (spec.rfind("binary:scaled", 0) == 0 || spec.rfind("ternary:", 0) == 0 ||
            spec.rfind("pow2", 0) == 0);
}

}  // namespace

// ================================================================ brute force

BOOST_AUTO_TEST_SUITE(brute_force)

BOOST_DATA_TEST_CASE(binary_sets, bdata::xrange(1, 9) * bdata::xrange(0, 20), n, seed) {
    const Vector v = testVector(n, seed);
    BOOST_TEST(closeTo(sqErr(v, projectWith(BinarySign(), v)), bruteForce(v, kBinary, false)));
    BOOST_TEST(closeTo(sqErr(v, projectWith(BinaryScaled(), v)), bruteForce(v, kBinary, true)));
    BOOST_TEST(closeTo(sqErr(v, projectWith(BinaryScaled(ScaleMode::One), v)),
                       bruteForce(v, kBinary, false)));
}

BOOST_DATA_TEST_CASE(ternary_sets, bdata::xrange(1, 9) * bdata::xrange(0, 20), n, seed) {
    const Vector v = testVector(n, seed);
    const double bestFree = bruteForce(v, kTernary, true);
    const double bestFixed = bruteForce(v, kTernary, false);
    BOOST_TEST(closeTo(sqErr(v, projectWith(TernaryFixed(), v)), bestFixed));
    BOOST_TEST(closeTo(sqErr(v, projectWith(TernaryExact(), v)), bestFree));
    BOOST_TEST(closeTo(sqErr(v, projectWith(TernaryExact(ScaleMode::One), v)), bestFixed));
    // TWN is a rule, not the projection: it is a feasible point, never better than the optimum,
    // its scale is optimal for its own code, and the exact projection is never worse.
    const Vector twn = projectWith(TernaryTwn(), v);
    BOOST_TEST(sqErr(v, twn) >= bestFree * (1 - 1e-5) - 1e-6);
    BOOST_TEST(sqErr(v, projectWith(TernaryExact(), v)) <= sqErr(v, twn) * (1 + 1e-6) + 1e-7);
    const Vector q = twn.array().sign().matrix();
    if (q.squaredNorm() > 0) {
        const double aBest = v.cast<double>().dot(q.cast<double>()) / q.squaredNorm();
        BOOST_TEST(std::abs(twn.cwiseAbs().maxCoeff() - aBest) <= 1e-5 * (1 + aBest));
    }
    BOOST_TEST(sqErr(v, projectWith(TernaryTwn(0.7f, ScaleMode::One), v)) >=
               bestFixed * (1 - 1e-5) - 1e-6);
}

BOOST_DATA_TEST_CASE(topk_matches_brute_force_with_at_most_k_nonzeros,
                     bdata::xrange(1, 8) * bdata::xrange(0, 12), n, seed) {
    const Vector v = testVector(n, seed);
    for (Index k = 0; k <= n; ++k) {
        BOOST_TEST_CONTEXT("k = " << k) {
            const Vector z = projectWith(TernaryTopK::withK(k), v);
            BOOST_TEST((z.array() != 0).count() <= k);
            BOOST_TEST(closeTo(sqErr(v, z), bruteForce(v, kTernary, true, k)));
            const Vector z1 = projectWith(TernaryTopK::withK(k, ScaleMode::One), v);
            BOOST_TEST((z1.array() != 0).count() <= k);
            BOOST_TEST(closeTo(sqErr(v, z1), bruteForce(v, kTernary, false, k)));
        }
    }
}

BOOST_DATA_TEST_CASE(pow2_exact_solver_and_fixed_scale, bdata::xrange(1, 6) * bdata::xrange(0, 12),
                     n, seed) {
    const Vector v = testVector(n, seed);
    for (int bits = 1; bits <= 3; ++bits) {
        BOOST_TEST_CONTEXT("bits = " << bits) {
            const auto levels = pow2Levels(bits);
            const PowerOfTwo exact(bits, 20, ScaleMode::Free, PowerOfTwo::Solver::Exact);
            BOOST_TEST(closeTo(sqErr(v, projectWith(exact, v)), bruteForce(v, levels, true)));
            BOOST_TEST(closeTo(sqErr(v, projectWith(PowerOfTwo(bits, 20, ScaleMode::One), v)),
                               bruteForce(v, levels, false)));
        }
    }
}

// The alternating solver is a heuristic. What is asserted: it is never worse than the exact
// ternary point it starts from and never better than brute force. No constant factor to the
// optimum holds (see pow2_alternating_can_stop_at_the_ternary_point: optimum 0, alternation
// > 0), so the gap is reported as excess error relative to ||v||^2, not asserted.
BOOST_AUTO_TEST_CASE(pow2_alternating_gap) {
    for (int bits = 1; bits <= 3; ++bits) {
        const auto levels = pow2Levels(bits);
        const PowerOfTwo alt(bits);
        double worstExcess = 0, sumExcess = 0;
        int cases = 0, optimal = 0;
        for (Index n = 1; n <= 5; ++n)
            for (int seed = 0; seed < 40; ++seed) {
                const Vector v = testVector(n, seed);
                const double got = sqErr(v, projectWith(alt, v));
                const double best = bruteForce(v, levels, true);
                const double tern = sqErr(v, projectWith(TernaryExact(), v));
                BOOST_TEST(got <= tern * (1 + 1e-5) + 1e-6);
                BOOST_TEST(got >= best * (1 - 1e-5) - 1e-6);
                const double excess =
                    (got - best) / std::max(1e-30, v.cast<double>().squaredNorm());
                worstExcess = std::max(worstExcess, excess);
                sumExcess += excess;
                ++cases;
                optimal += closeTo(got, best);
            }
        BOOST_TEST_MESSAGE("pow2,bits=" << bits << " alternating vs brute force over " << cases
                                        << " vectors (n <= 5): optimal in " << optimal
                                        << ", excess error / ||v||^2: mean " << sumExcess / cases
                                        << ", worst " << worstExcess);
        if (bits == 1) BOOST_TEST(optimal == cases);  // bits = 1 is the ternary set
    }
}

BOOST_AUTO_TEST_CASE(pow2_alternating_can_stop_at_the_ternary_point) {
    Vector v(2);
    v << 0.5f, 1.0f;  // = 0.5 * (1, 2): in the set, so the projection is v itself
    // Ternary start a = 0.75, Q = (1, 1); v/a = (0.67, 1.33) rounds back to (1, 1): fixed point.
    BOOST_TEST(sqErr(v, projectWith(PowerOfTwo(3), v)) == 0.125,
               boost::test_tools::tolerance(1e-6));
    BOOST_TEST(sqErr(v, projectWith(PowerOfTwo(3, 20, ScaleMode::Free, PowerOfTwo::Solver::Exact),
                                    v)) <= 1e-12);
}

BOOST_AUTO_TEST_SUITE_END()

// ================================================================ properties

BOOST_AUTO_TEST_SUITE(properties)

BOOST_DATA_TEST_CASE(results_lie_in_the_set, bdata::xrange(0, 10), seed) {
    const Vector v = testVector(37, seed) * 1.7f;
    for (const auto& spec : kSpecs) {
        BOOST_TEST_CONTEXT(spec) {
            const auto p = makeProjection(spec);
            Vector z(v.size());
            const auto res = p->project(v, z);
            BOOST_REQUIRE(res.size() == 1u);
            const Scalar a = res[0].scale;
            BOOST_TEST(a >= 0);
            BOOST_TEST(res[0].nonzeros == (z.array() != 0).count());
            if (p->levels() == 0) {
                const auto* box = dynamic_cast<const Box*>(p.get());
                BOOST_REQUIRE(box);
                BOOST_TEST(z.minCoeff() >= box->lo());
                BOOST_TEST(z.maxCoeff() <= box->hi());
                continue;
            }
            if (!isScaled(spec)) BOOST_TEST(a == 1);
            std::vector<double> levels;
            if (p->levels() == 2) levels = kBinary;
            if (p->levels() == 3) levels = kTernary;
            if (spec.rfind("pow2", 0) == 0) levels = pow2Levels((p->levels() - 1) / 2);
            for (Index i = 0; i < z.size(); ++i) {
                bool member = false;
                for (double l : levels) member = member || z[i] == static_cast<Scalar>(a * l);
                BOOST_TEST(member, "z[" << i << "] = " << z[i] << " with a = " << a);
            }
        }
    }
}

// Idempotence holds for every exact projection and for TWN. The alternating pow2 heuristic
// (bits >= 2) is not idempotent: P(v) = a*Q is in the set, but re-projecting starts again from
// the ternary point of a*Q and can stop elsewhere; that is reported, not asserted.
BOOST_AUTO_TEST_CASE(idempotent) {
    int altCases = 0, altIdempotent = 0;
    for (int seed = 0; seed < 10; ++seed) {
        const Vector v = testVector(40, seed);
        for (const auto& spec : kSpecs) {
            BOOST_TEST_CONTEXT(spec << ", seed " << seed) {
                const auto p = makeProjection(spec);
                const Vector z = projectWith(*p, v);
                const Vector zz = projectWith(*p, z);
                const bool same = (zz - z).norm() <= 1e-5f * (1 + z.norm());
                if (isAlternatingPow2(*p)) {
                    ++altCases;
                    altIdempotent += same;
                } else {
                    BOOST_TEST(same);
                }
            }
        }
    }
    BOOST_TEST_MESSAGE("alternating pow2 (bits >= 2): P(P(v)) == P(v) in " << altIdempotent
                                                                           << " of " << altCases);
}

BOOST_DATA_TEST_CASE(positively_homogeneous_on_scaled_sets, bdata::xrange(0, 10), seed) {
    const Vector v = testVector(33, seed);
    for (const auto& spec : kSpecs) {
        if (!isScaled(spec)) continue;
        BOOST_TEST_CONTEXT(spec) {
            const auto p = makeProjection(spec);
            for (float c : {0.37f, 1.0f, 3.5f, 128.0f}) {
                const Vector zc = projectWith(*p, v * c);
                const Vector cz = projectWith(*p, v) * c;
                BOOST_TEST((zc - cz).norm() <= 1e-5f * (1 + cz.norm()), "c = " << c);
            }
        }
    }
}

BOOST_DATA_TEST_CASE(per_filter_equals_slices, bdata::xrange(0, 5), seed) {
    const Shape shape{6, 2, 3, 3};
    const Vector v = testVector(shape.size(), seed);
    for (const auto& spec : kSpecs) {
        BOOST_TEST_CONTEXT(spec) {
            const auto p = makeProjection(spec);
            Vector z(v.size());
            const auto res = p->project(v, z, shape, Granularity::PerFilter);
            BOOST_REQUIRE(res.size() == 6u);
            const Index m = v.size() / 6;
            for (Index g = 0; g < 6; ++g) {
                const Vector slice = v.segment(g * m, m);
                Vector zs(m);
                const auto rs = p->project(slice, zs);
                BOOST_TEST((z.segment(g * m, m) == zs));
                BOOST_TEST(res[static_cast<std::size_t>(g)].scale == rs[0].scale);
                BOOST_TEST(res[static_cast<std::size_t>(g)].nonzeros == rs[0].nonzeros);
            }
            Vector zt(v.size());
            p->project(v, zt, shape, Granularity::PerTensor);
            Vector zt1(v.size());
            p->project(v, zt1, 1);
            BOOST_TEST((zt == zt1));
        }
    }
}

BOOST_DATA_TEST_CASE(aliasing_z_equals_v, bdata::xrange(0, 5), seed) {
    const Vector v = testVector(24, seed);
    for (const auto& spec : kSpecs) {
        BOOST_TEST_CONTEXT(spec) {
            const auto p = makeProjection(spec);
            const Vector expected = projectWith(*p, v, 4);
            Vector w = v;
            p->project(w, w, 4);
            BOOST_TEST((w == expected));
        }
    }
}

BOOST_AUTO_TEST_CASE(all_zero_group_gives_zero_and_no_nan) {
    const Vector v = Vector::Zero(8);
    for (const auto& spec : kSpecs) {
        BOOST_TEST_CONTEXT(spec) {
            const auto p = makeProjection(spec);
            Vector z = Vector::Constant(8, 7.0f);
            const auto res = p->project(v, z);
            BOOST_TEST(z.allFinite());
            if (spec.rfind("binary", 0) == 0 && res[0].scale == 1) continue;  // sign(0) = +1
            BOOST_TEST(z.isZero(0));
            BOOST_TEST(res[0].nonzeros == 0);
            BOOST_TEST(res[0].scale == (isScaled(spec) ? 0.0f : 1.0f));
        }
    }
}

BOOST_AUTO_TEST_CASE(exact_ternary_never_worse_than_twn_and_gap_report) {
    double sumGap = 0, maxGap = 0;
    const int trials = 50;
    for (int seed = 0; seed < trials; ++seed) {
        const Vector v = testing::randomVector(1000, 7000u + static_cast<std::uint64_t>(seed));
        const double exact = sqErr(v, projectWith(TernaryExact(), v));
        const double twn = sqErr(v, projectWith(TernaryTwn(), v));
        BOOST_TEST(exact <= twn * (1 + 1e-6));
        const double gap = (twn - exact) / exact;
        sumGap += gap;
        maxGap = std::max(maxGap, gap);
    }
    BOOST_TEST_MESSAGE("TWN (ratio 0.7) vs exact ternary, Gaussian n = 1000, "
                       << trials << " vectors: mean relative excess error " << sumGap / trials
                       << ", max " << maxGap);
}

BOOST_AUTO_TEST_CASE(pow2_alternating_vs_exact_on_gaussian_report) {
    for (int bits = 2; bits <= 4; ++bits) {
        double sumGap = 0;
        const int trials = 20;
        for (int seed = 0; seed < trials; ++seed) {
            const Vector v = testing::randomVector(1000, 9000u + static_cast<std::uint64_t>(seed));
            const double alt = sqErr(v, projectWith(PowerOfTwo(bits), v));
            const double exact = sqErr(
                v,
                projectWith(PowerOfTwo(bits, 20, ScaleMode::Free, PowerOfTwo::Solver::Exact), v));
            BOOST_TEST(exact <= alt * (1 + 1e-6));
            sumGap += (alt - exact) / exact;
        }
        BOOST_TEST_MESSAGE("pow2,bits=" << bits
                                        << ": alternating vs exact sweep, Gaussian n = 1000: "
                                        << "mean relative excess error " << sumGap / trials);
    }
}

BOOST_AUTO_TEST_SUITE_END()

// ================================================================ individual sets

BOOST_AUTO_TEST_SUITE(sets)

BOOST_AUTO_TEST_CASE(box_clips) {
    Vector v(4);
    v << -3, -0.25f, 0.5f, 9;
    Vector z(4);
    Box(-1, 1).project(v, z);
    BOOST_TEST((z == (Vector(4) << -1, -0.25f, 0.5f, 1).finished()));
    BOOST_CHECK_EXCEPTION(Box(1, -1), std::invalid_argument, messageContains("lo <= hi"));
}

BOOST_AUTO_TEST_CASE(ternary_fixed_threshold_is_one_half) {
    Vector v(6);
    v << -0.6f, -0.5f, -0.4f, 0.4f, 0.5f, 3.0f;
    const Vector z = projectWith(TernaryFixed(), v);
    BOOST_TEST((z == (Vector(6) << -1, 0, 0, 0, 0, 1).finished()));
}

BOOST_AUTO_TEST_CASE(twn_rule_by_hand) {
    Vector v(4);
    v << 1.0f, -0.2f, 0.5f, -2.5f;  // mean|v| = 1.05, delta = 0.735
    Vector z(4);
    const auto res = TernaryTwn().project(v, z);
    BOOST_TEST(res[0].scale == 1.75f, boost::test_tools::tolerance(1e-6f));
    BOOST_TEST(res[0].nonzeros == 2);
    BOOST_TEST(z[0] == 1.75f, boost::test_tools::tolerance(1e-6f));
    BOOST_TEST(z[3] == -1.75f, boost::test_tools::tolerance(1e-6f));
    BOOST_TEST(z[1] == 0.0f);
    BOOST_TEST(z[2] == 0.0f);
}

BOOST_AUTO_TEST_CASE(twn_rule_on_a_large_group_matches_a_double_reference) {
    // several parallel chunks and a tail that fills no vector: the vectorised passes give the
    // rule's threshold, scale and codes (reference in double)
    for (Index n : {Index{100003}, Index{65536 + 7}, Index{13}}) {
        std::mt19937_64 rng(static_cast<std::uint64_t>(n));
        std::normal_distribution<float> d(0.0f, 0.05f);
        Vector v(n);
        for (Index i = 0; i < n; ++i) v[i] = d(rng);
        double sumAbs = 0;
        for (Index i = 0; i < n; ++i) sumAbs += std::fabs(double(v[i]));
        const double delta = 0.7 * sumAbs / double(n);
        double sumI = 0;
        Index countI = 0;
        for (Index i = 0; i < n; ++i)
            if (std::fabs(double(v[i])) > delta) {
                sumI += std::fabs(double(v[i]));
                ++countI;
            }
        const double a = sumI / double(countI);
        Vector z(n);
        const auto res = TernaryTwn().project(v, z);
        BOOST_TEST(res[0].nonzeros == countI);
        BOOST_TEST(res[0].scale == a, boost::test_tools::tolerance(1e-5));
        Index wrong = 0;
        for (Index i = 0; i < n; ++i) {
            const double want = std::fabs(double(v[i])) > delta ? (v[i] > 0 ? a : -a) : 0.0;
            if (std::fabs(z[i] - want) > 1e-5 * a) ++wrong;
        }
        BOOST_TEST(wrong == 0);
    }
}

BOOST_AUTO_TEST_CASE(exact_ternary_by_hand) {
    Vector v(3);
    v << 3.0f, -1.0f, 0.2f;  // gains: 9/1, 16/2 = 8, 17.64/3 = 5.88 -> k = 1
    Vector z(3);
    const auto res = TernaryExact().project(v, z);
    BOOST_TEST(res[0].scale == 3.0f);
    BOOST_TEST((z == (Vector(3) << 3, 0, 0).finished()));
}

// Large groups take the histogram search; it must agree with a plain sort-and-scan of
// S_k^2/k on every kind of data: Gaussian, uniform, heavy tails, a few huge outliers, heavy
// ties (values on a coarse grid), and a group that is mostly zeros.
BOOST_DATA_TEST_CASE(exact_ternary_large_groups_match_sort_and_scan, bdata::xrange(0, 6) * bdata::xrange(1, 4),
                     kind, seed) {
    const Index n = TernaryExact::kLargeGroup * (1 + seed) + 17 * seed;
    std::mt19937_64 rng(static_cast<std::uint64_t>(100 * kind + seed));
    std::normal_distribution<float> normal(0, 1);
    std::uniform_real_distribution<float> uni(-1, 1);
    Vector v(n);
    for (Index i = 0; i < n; ++i) {
        switch (kind) {
        case 0: v[i] = normal(rng); break;
        case 1: v[i] = uni(rng); break;
        case 2: v[i] = normal(rng) / std::max(1e-3f, std::abs(uni(rng))); break;  // heavy tails
        case 3: v[i] = normal(rng) * (i % 5000 == 0 ? 1000.0f : 1.0f); break;     // outliers
        case 4: v[i] = std::round(normal(rng) * 4) / 4; break;                     // ties
        default: v[i] = i % 50 == 0 ? normal(rng) : 0.0f; break;                   // mostly zero
        }
    }
    // oracle: sort |v| descending, k* = argmax S_k^2/k (smallest k on ties), a = S_k*/k*
    std::vector<double> mags(static_cast<size_t>(n));
    for (Index i = 0; i < n; ++i) mags[size_t(i)] = std::abs(v[i]);
    std::sort(mags.begin(), mags.end(), std::greater<>());
    double sum = 0, best = 0, bestSum = 0;
    Index bestK = 0;
    for (Index k = 1; k <= n; ++k) {
        sum += mags[size_t(k - 1)];
        if (sum * sum / double(k) > best * (1 + 1e-12)) {
            best = sum * sum / double(k);
            bestK = k;
            bestSum = sum;
        }
    }
    Vector z(n);
    const GroupResult r = TernaryExact().project(v, z)[0];
    const double err = sqErr(v, z), oracleErr = v.cast<double>().squaredNorm() - best;
    BOOST_TEST(err <= oracleErr * (1 + 1e-5) + 1e-6, "error " << err << " vs oracle " << oracleErr);
    BOOST_TEST(std::abs(r.nonzeros - bestK) <= std::max<Index>(1, bestK / 100000),
               "k " << r.nonzeros << " vs " << bestK);
    BOOST_TEST(r.scale == bestSum / double(bestK), boost::test_tools::tolerance(1e-5));
    BOOST_TEST((z.array() != 0).count() == r.nonzeros);
    // z is a*sign(v) on the largest magnitudes
    Scalar minKept = std::numeric_limits<Scalar>::max(), maxDropped = 0;
    for (Index i = 0; i < n; ++i) {
        if (z[i] != 0) {
            BOOST_TEST_REQUIRE(z[i] == (v[i] < 0 ? -r.scale : r.scale));
            minKept = std::min(minKept, std::abs(v[i]));
        } else {
            maxDropped = std::max(maxDropped, std::abs(v[i]));
        }
    }
    BOOST_TEST(minKept >= maxDropped);
    // in place (z aliases v), ties at the threshold included: the same result
    Vector w = v;
    const GroupResult rw = TernaryExact().project(w, w)[0];
    BOOST_TEST(rw.nonzeros == r.nonzeros);
    BOOST_TEST(rw.scale == r.scale);
    BOOST_TEST((w == z));
}

BOOST_AUTO_TEST_CASE(exact_ternary_large_group_of_zeros_and_per_filter) {
    const Index n = 2 * TernaryExact::kLargeGroup;
    Vector v = Vector::Zero(n), z(n);
    const GroupResult r = TernaryExact().project(v, z)[0];
    BOOST_TEST(r.nonzeros == 0);
    BOOST_TEST(z.isZero());
    // two large groups, one of them zero: each solved on its own
    v.head(n / 2) = testing::randomVector(n / 2, 9);
    const auto rs = TernaryExact().project(v, z, 2);
    BOOST_TEST(rs[0].nonzeros > 0);
    BOOST_TEST(rs[1].nonzeros == 0);
    BOOST_TEST(z.tail(n / 2).isZero());
}

BOOST_AUTO_TEST_CASE(topk_keeps_at_most_k_and_may_keep_fewer) {
    Vector v(2);
    v << 10.0f, 0.1f;
    Vector z(2);
    // Keeping both (a = 5.05) costs 48.6; keeping one costs 0.01: the projection keeps one.
    const auto res = TernaryTopK::withK(2).project(v, z);
    BOOST_TEST(res[0].nonzeros == 1);
    BOOST_TEST(z[0] == 10.0f);
    // On Gaussian data with a moderate budget the budget is used in full.
    const Vector g = testing::randomVector(1000, 5);
    Vector zg(1000);
    BOOST_TEST(TernaryTopK::withFraction(0.3f).project(g, zg)[0].nonzeros == 300);
    BOOST_TEST(TernaryTopK::withFraction(0.3f).budget(10) == 3);
    BOOST_TEST(TernaryTopK::withFraction(0.25f).budget(10) == 3);  // round half up
    BOOST_TEST(TernaryTopK::withFraction(0.0f).budget(10) == 0);
}

BOOST_AUTO_TEST_CASE(pow2_nearest_level_midpoints) {
    // levels {0, 1, 2, 4}: midpoints 0.5, 1.5, 3
    const std::vector<std::pair<float, float>> cases{{0.0f, 0},  {0.49f, 0}, {0.51f, 1}, {0.9f, 1},
                                                     {1.49f, 1}, {1.51f, 2}, {2.9f, 2},  {3.1f, 4},
                                                     {5.9f, 4},  {100.0f, 4}};
    for (const auto& [x, level] : cases)
        BOOST_TEST(PowerOfTwo::nearestLevel(x, 3) == level, "x = " << x);
    BOOST_TEST(PowerOfTwo::nearestLevel(5.9f, 4) == 4.0f);  // midpoint 6 between 4 and 8
    BOOST_TEST(PowerOfTwo::nearestLevel(6.1f, 4) == 8.0f);
    BOOST_TEST(PowerOfTwo::nearestLevel(0.9f, 1) == 1.0f);
    BOOST_TEST(PowerOfTwo::nearestLevel(9.0f, 1) == 1.0f);
}

BOOST_DATA_TEST_CASE(pow2_one_bit_is_exact_ternary, bdata::xrange(0, 10), seed) {
    const Vector v = testVector(50, seed);
    const Vector t = projectWith(TernaryExact(), v);
    BOOST_TEST((projectWith(PowerOfTwo(1), v) - t).norm() <= 1e-6f * (1 + t.norm()));
    BOOST_TEST((projectWith(PowerOfTwo(1, 20, ScaleMode::Free, PowerOfTwo::Solver::Exact), v) - t)
                   .norm() <= 1e-6f * (1 + t.norm()));
}

BOOST_AUTO_TEST_CASE(levels_reported) {
    BOOST_TEST(Box().levels() == 0);
    BOOST_TEST(BinarySign().levels() == 2);
    BOOST_TEST(TernaryExact().levels() == 3);
    BOOST_TEST(PowerOfTwo(3).levels() == 7);
}

BOOST_AUTO_TEST_SUITE_END()

// ================================================================ factory and errors

BOOST_AUTO_TEST_SUITE(factory)

BOOST_AUTO_TEST_CASE(specs_round_trip) {
    std::vector<std::string> specs = kSpecs;
    for (const auto& extra : {"ternary:twn,ratio=0.123456789", "box,lo=-0.1", "pow2",
                              "ternary:exact,scale=free", "pow2,bits=3,scale=one,rounds=7",
                              "binary:scaled,scale=one", "ternary:topk,fraction=1e-3"})
        specs.emplace_back(extra);
    for (const auto& spec : specs) {
        BOOST_TEST_CONTEXT(spec) {
            const auto p = makeProjection(spec);
            BOOST_TEST(makeProjection(p->name())->name() == p->name());
        }
    }
    BOOST_TEST(makeProjection("ternary:twn")->name() == "ternary:twn");
    BOOST_TEST(makeProjection("ternary:twn,ratio=0.5")->name() == "ternary:twn,ratio=0.5");
    BOOST_TEST(makeProjection("pow2")->name() == "pow2,bits=3");
    BOOST_TEST(makeProjection("ternary:topk,fraction=0.3")->name() == "ternary:topk,fraction=0.3");
    BOOST_TEST(makeProjection("ternary:exact,scale=one")->name() == "ternary:exact,scale=one");
    // every known base name builds (topk needs its budget)
    for (const auto& name : projectionNames())
        BOOST_CHECK_NO_THROW(makeProjection(name == "ternary:topk" ? name + ",k=1" : name));
}

BOOST_AUTO_TEST_CASE(unknown_names_and_options) {
    BOOST_CHECK_EXCEPTION(
        makeProjection("ternery:exact"), std::invalid_argument,
        messageContains("makeProjection(): unknown projection 'ternery:exact'; "
                        "known: box, binary, binary:scaled, ternary, ternary:twn, "
                        "ternary:exact, ternary:topk, pow2"));
    BOOST_CHECK_EXCEPTION(
        makeProjection("ternary:twn,foo=1"), std::invalid_argument,
        messageContains("unknown option 'foo' for 'ternary:twn'; known: ratio, scale"));
    BOOST_CHECK_EXCEPTION(makeProjection("ternary,scale=one"), std::invalid_argument,
                          messageContains("unknown option 'scale' for 'ternary'; known: none"));
    BOOST_CHECK_EXCEPTION(
        makeProjection("ternary:twn,ratio=abc"), std::invalid_argument,
        messageContains("option 'ratio' of 'ternary:twn' must be a number (got 'abc')"));
    BOOST_CHECK_EXCEPTION(makeProjection("ternary:twn,ratio=-1"), std::invalid_argument,
                          messageContains("ratio must be >= 0 (got -1)"));
    BOOST_CHECK_EXCEPTION(
        makeProjection("pow2,bits=2.5"), std::invalid_argument,
        messageContains("option 'bits' of 'pow2' must be an integer (got '2.5')"));
    BOOST_CHECK_EXCEPTION(makeProjection("pow2,bits=0"), std::invalid_argument,
                          messageContains("bits' of 'pow2' must be in [1, 16] (got 0)"));
    BOOST_CHECK_EXCEPTION(PowerOfTwo(0), std::invalid_argument,
                          messageContains("bits must be in [1, 16] (got 0)"));
    BOOST_CHECK_EXCEPTION(makeProjection("pow2,solver=fast"), std::invalid_argument,
                          messageContains("'solver' of 'pow2' must be 'alternate' or 'exact'"));
    BOOST_CHECK_EXCEPTION(
        makeProjection("ternary:exact,scale=two"), std::invalid_argument,
        messageContains("'scale' of 'ternary:exact' must be 'free' or 'one' (got 'two')"));
    BOOST_CHECK_EXCEPTION(makeProjection("ternary:topk"), std::invalid_argument,
                          messageContains("needs exactly one of k=<count> or fraction=<0..1>"));
    BOOST_CHECK_EXCEPTION(makeProjection("ternary:topk,k=2,fraction=0.5"), std::invalid_argument,
                          messageContains("needs exactly one of"));
    BOOST_CHECK_EXCEPTION(makeProjection("ternary:topk,fraction=1.5"), std::invalid_argument,
                          messageContains("fraction must be in [0, 1] (got 1.5)"));
    BOOST_CHECK_EXCEPTION(makeProjection("ternary:topk,k=-1"), std::invalid_argument,
                          messageContains("k must be >= 0 (got -1)"));
    BOOST_CHECK_EXCEPTION(makeProjection("ternary:twn,ratio=1,ratio=2"), std::invalid_argument,
                          messageContains("option 'ratio' given twice"));
    BOOST_CHECK_EXCEPTION(
        makeProjection("ternary:twn,ratio"), std::invalid_argument,
        messageContains("option 'ratio' of 'ternary:twn,ratio' must be key=value"));
}

BOOST_AUTO_TEST_CASE(project_argument_checks) {
    const TernaryExact p;
    Vector v = testing::randomVector(10, 1), z9(9), z10(10);
    BOOST_CHECK_EXCEPTION(p.project(v, z9), std::invalid_argument,
                          messageContains("Projection::project(): v has 10 elements, z has 9"));
    BOOST_CHECK_EXCEPTION(p.project(v, z10, 3), std::invalid_argument,
                          messageContains("groups (3) must divide the size (10)"));
    BOOST_CHECK_EXCEPTION(p.project(v, z10, 0), std::invalid_argument,
                          messageContains("groups must be >= 1 (got 0)"));
    Vector empty(0);
    BOOST_CHECK_EXCEPTION(p.project(empty, empty), std::invalid_argument,
                          messageContains("empty group"));
    BOOST_CHECK_EXCEPTION(p.project(v, z10, Shape{3, 3}, Granularity::PerFilter),
                          std::invalid_argument,
                          messageContains("v has 10 elements, shape [3, 3] has 9"));
    Vector bad = v;
    bad[4] = std::numeric_limits<float>::quiet_NaN();
    BOOST_CHECK_EXCEPTION(p.project(bad, z10), std::invalid_argument,
                          messageContains("v has a non-finite entry at index 4"));
    bad[4] = std::numeric_limits<float>::infinity();
    BOOST_CHECK_EXCEPTION(p.project(bad, z10), std::invalid_argument,
                          messageContains("non-finite entry at index 4"));
    // k > group size: thrown before anything is written
    z10.setConstant(5);
    BOOST_CHECK_EXCEPTION(
        TernaryTopK::withK(6).project(v, z10, 2), std::invalid_argument,
        messageContains("TernaryTopK::project(): k = 6 exceeds the group size 5"));
    BOOST_TEST((z10.array() == 5).all());
    BOOST_CHECK_NO_THROW(TernaryTopK::withK(5).project(v, z10, 2));
}

BOOST_AUTO_TEST_SUITE_END()

// Large groups take the radix-sort path: the result must equal a std::sort reference exactly.
BOOST_AUTO_TEST_CASE(exact_ternary_large_groups_match_sort_reference) {
    for (Index n : {4096, 10000, 100003}) {
        Vector v = tern::testing::randomVector(n, static_cast<std::uint64_t>(n));
        v.head(50).setZero();           // zeros and exact ties
        v.segment(50, 50).setConstant(0.75f);
        std::vector<float> mags(v.data(), v.data() + n);
        for (float& m : mags) m = std::abs(m);
        std::sort(mags.begin(), mags.end(), std::greater<>());
        double sum = 0, best = 0, bestSum = 0;
        Index bestK = 0;
        for (Index k = 1; k <= n; ++k) {
            sum += mags[static_cast<size_t>(k - 1)];
            if (sum * sum / double(k) > best) {
                best = sum * sum / double(k);
                bestK = k;
                bestSum = sum;
            }
        }
        Vector z(n);
        const auto r = tern::proj::makeProjection("ternary:exact")->project(v, z);
        BOOST_TEST(r[0].nonzeros == bestK);
        BOOST_TEST(r[0].scale == static_cast<float>(bestSum / double(bestK)));
    }
}
