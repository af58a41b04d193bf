#define BOOST_TEST_MODULE proj_gtc
#include <boost/test/data/monomorphic.hpp>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include "tern/core/state.hpp"
#include "tern/proj/gtc.hpp"
#include "tern/proj/quantizer.hpp"
#include "testing/helpers.hpp"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

using namespace tern;
using namespace tern::proj;
using tern::testing::messageContains;
namespace bdata = boost::unit_test::data;
namespace tt = boost::test_tools;

namespace {

/// The quantizer written out plainly, entry by entry: 0 where |w| <= eps * max|w|, else
/// sign(w) * 2^k with k = round(theta1 + theta2 * log2|w|) clamped to [-126, 127].
struct Reference {
    Vector wq;
    std::vector<int> exponents;  // of the nonzero outputs
};

Reference reference(const Vector& w, Scalar eps, Scalar theta1, Scalar theta2) {
    Reference r;
    r.wq = Vector::Zero(w.size());
    const Scalar thr = eps * w.cwiseAbs().maxCoeff();
    for (Index i = 0; i < w.size(); ++i) {
        if (std::abs(w[i]) <= thr) continue;
        const double u = std::log2(std::abs(static_cast<double>(w[i])));
        const double e = static_cast<double>(theta1) + static_cast<double>(theta2) * u;
        const double k = std::min(127.0, std::max(-126.0, std::round(e)));
        r.wq[i] = static_cast<Scalar>((w[i] < 0 ? -1.0 : 1.0) * std::pow(2.0, k));
        r.exponents.push_back(static_cast<int>(k));
    }
    return r;
}

/// Quantizer with the given theta (and eps).
GtcQuantizer withTheta(Scalar theta1, Scalar theta2, Scalar eps = GtcSettings{}.eps) {
    GtcSettings s;
    s.eps = eps;
    s.theta1 = theta1;
    s.theta2 = theta2;
    return GtcQuantizer(s);
}

/// Weights whose exponents e_i = theta1 + theta2 * log2|w_i| are the integers k[i] (up to the
/// float rounding of w): there round() is the identity and the STE gradient is the exact
/// gradient of the smooth surrogate sign(w) * 2^(theta1 + theta2 * log2|w|).
Vector withIntegerExponents(const std::vector<double>& k, double theta1, double theta2,
                            std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    Vector w(static_cast<Index>(k.size()));
    for (size_t i = 0; i < k.size(); ++i) {
        const double sign = (rng() & 1) ? 1.0 : -1.0;
        w[Index(i)] = static_cast<Scalar>(sign * std::exp2((k[i] - theta1) / theta2));
    }
    return w;
}

/// The smooth surrogate of w~_i (no rounding), in double.
double surrogate(double w, double theta1, double theta2) {
    return (w < 0 ? -1.0 : 1.0) * std::exp2(theta1 + theta2 * std::log2(std::abs(w)));
}

/// L = 0.5 * ||w~ - t||^2 over the surrogate (every entry is above the threshold).
double surrogateLoss(const Vector& w, const Vector& t, double theta1, double theta2) {
    double l = 0;
    for (Index i = 0; i < w.size(); ++i) {
        const double d = surrogate(w[i], theta1, theta2) - t[i];
        l += 0.5 * d * d;
    }
    return l;
}

/// The penalty's surrogate lambda * 2^(1 + log2(M - m + 1)) with M, m the unrounded max and
/// min exponents, in double.
double surrogatePenalty(const std::vector<double>& w, double theta1, double theta2,
                        double lambda) {
    double hi = -INFINITY, lo = INFINITY;
    for (const double x : w) {
        const double e = theta1 + theta2 * std::log2(std::abs(x));
        hi = std::max(hi, e);
        lo = std::min(lo, e);
    }
    return lambda * std::exp2(1 + std::log2(hi - lo + 1));
}

bool bitIdentical(Scalar a, Scalar b) { return std::memcmp(&a, &b, sizeof a) == 0; }

}  // namespace

// ================================================================ forward

BOOST_AUTO_TEST_SUITE(forward)

// Random normal tensors with zeros, entries below and exactly at the threshold, exact powers of
// two of both signs; several theta (the paper's example, S-shapes, a steep slope, a negative
// one) and eps (the default, 0, a large one).
BOOST_DATA_TEST_CASE(matches_reference,
                     bdata::xrange(0, 5) * bdata::xrange(0, 6) *
                         bdata::make({0.0078125f, 0.0f, 0.2f}),
                     seed, thetaCase, eps) {
    const Scalar thetas[6][2] = {{0, 1}, {-1, -3.5f}, {-1.99f, 0.05f}, {2.45f, 0.03f},
                                 {0.5f, 2.3f}, {0.37f, -0.8f}};
    const Scalar theta1 = thetas[thetaCase][0], theta2 = thetas[thetaCase][1];
    const Shape shape{4, 3, 5};
    Vector w = testing::randomVector(shape.size(), 500u + static_cast<std::uint64_t>(seed));
    const Scalar maxAbs = std::max(w.cwiseAbs().maxCoeff(), 3.0f);  // above the entries set below
    w[0] = 0;
    w[1] = -0.5f * eps * maxAbs;   // below the threshold
    w[2] = 0.25f * eps * maxAbs;   // below the threshold
    w[3] = eps * maxAbs;           // exactly at it: zero
    w[4] = 0.5f;                   // exact powers of two
    w[5] = -0.25f;
    w[6] = 1.0f;
    w[7] = -2.0f;
    w[8] = 0.0625f;
    w[9] = -maxAbs;                // the largest |w|, negative
    GtcQuantizer q = withTheta(theta1, theta2, eps);
    Vector wq(shape.size());
    q.forward(w, wq, shape);
    const Reference r = reference(w, eps, theta1, theta2);
    BOOST_TEST((wq == r.wq));
    BOOST_TEST(wq[0] == 0);
    BOOST_TEST(q.threshold() == eps * maxAbs);
    if (eps > 0) {
        BOOST_TEST(wq[1] == 0);
        BOOST_TEST(wq[2] == 0);
        BOOST_TEST(wq[3] == 0);
    }
    for (Index i = 0; i < wq.size(); ++i)
        if (wq[i] != 0) {
            BOOST_TEST((wq[i] < 0) == (w[i] < 0));  // the sign is kept
            int ex = 0;
            BOOST_TEST(std::frexp(std::abs(wq[i]), &ex) == 0.5f);  // a power of two
        }
    // bits over the reference's exponents
    const GtcBits b = q.bits();
    BOOST_REQUIRE(!r.exponents.empty());
    const int hi = *std::max_element(r.exponents.begin(), r.exponents.end());
    const int lo = *std::min_element(r.exponents.begin(), r.exponents.end());
    BOOST_TEST(b.maxExponent == hi);
    BOOST_TEST(b.minExponent == lo);
    BOOST_TEST(b.nonzeros == static_cast<Index>(r.exponents.size()));
    BOOST_TEST(b.bits == 1 + static_cast<int>(std::ceil(std::log2(double(hi - lo + 1)))));
    BOOST_TEST(b.cost == std::exp2(b.bits));
}

BOOST_AUTO_TEST_CASE(identity_start_keeps_powers_of_two) {
    // theta = (0, 1): w~ = sign(w) * 2^round(log2|w|); exact powers of two map to themselves
    Vector w(8), wq(8);
    w << 1, -1, 0.5f, -0.125f, 4, -8, 0x1p-3f, 0x1p+3f;  // all above 2^-7 * 8
    GtcQuantizer q;
    BOOST_TEST(q.theta1() == 0.0f);
    BOOST_TEST(q.theta2() == 1.0f);
    q.forward(w, wq, Shape{8});
    BOOST_TEST((wq == w));
    // nearest in log domain: log2(3) = 1.58 -> 2^2; log2(0.7) = -0.51 -> 2^-1; log2(1.4) = 0.49
    Vector v(3), vq(3);
    v << 3, -0.7f, 1.4f;
    q.forward(v, vq, Shape{3});
    BOOST_TEST((vq == (Vector(3) << 4, -0.5f, 1).finished()));
}

// The paper's example 1 and 2 (seed 004, section 2): theta = (-1, -3.5).
BOOST_AUTO_TEST_CASE(paper_example) {
    Vector w(8), wq(8);
    w << 2.5f, 1, 1.3f, 0.75f, 1, -2.5f, -1.2f, -0.9f;
    GtcQuantizer q = withTheta(-1, -3.5f);
    q.forward(w, wq, Shape{2, 4});
    Vector expected(8);
    expected << 0x1p-6f, 0x1p-1f, 0x1p-2f, 1, 0x1p-1f, -0x1p-6f, -0x1p-2f, -1;
    BOOST_TEST((wq == expected));
    const GtcBits b = q.bits();
    BOOST_TEST(b.maxExponent == 0);
    BOOST_TEST(b.minExponent == -6);
    BOOST_TEST(b.bits == 4);  // 1 + ceil(log2(7))
    BOOST_TEST(b.cost == 16.0);
}

BOOST_AUTO_TEST_CASE(exponents_are_clamped_to_the_float_range) {
    Vector w(3), wq(3);
    w << 4, -0.25f, 1;  // log2|w| = 2, -2, 0: e = 200, -200, 0
    GtcQuantizer q = withTheta(0, 100);
    q.forward(w, wq, Shape{3});
    BOOST_TEST((wq == (Vector(3) << 0x1p127f, -0x1p-126f, 1).finished()));
    BOOST_TEST(wq.allFinite());
    BOOST_TEST(q.bits().maxExponent == 127);
    BOOST_TEST(q.bits().minExponent == -126);
    // the clamped entries get no gradient; the unclamped one does
    Vector g(3), d(3);
    g << 1, 1, 1;
    q.backward(w, g, d);
    BOOST_TEST(d[0] == 0.0f);
    BOOST_TEST(d[1] == 0.0f);
    BOOST_TEST(d[2] == 100.0f, tt::tolerance(1e-6f));  // theta2 * 2^0 / 1
    BOOST_TEST(q.trainable()->at("theta1").grad[0] == std::log(2.0f), tt::tolerance(1e-6f));
}

BOOST_AUTO_TEST_CASE(aliasing_and_per_call_threshold) {
    Vector w = testing::randomVector(40, 77), wq(40);
    GtcQuantizer q = withTheta(0.3f, 0.6f);
    q.forward(w, wq, Shape{40});
    Vector inPlace = w;
    q.forward(inPlace, inPlace, Shape{40});  // wq may alias latent
    BOOST_TEST((inPlace == wq));
    // the threshold follows the latent of each call
    q.forward(w * 4, wq, Shape{40});
    BOOST_TEST(q.threshold() == GtcSettings{}.eps * (w * 4).cwiseAbs().maxCoeff());
}

BOOST_AUTO_TEST_SUITE_END()

// ================================================================ bits

BOOST_AUTO_TEST_SUITE(bits)

BOOST_AUTO_TEST_CASE(by_hand) {
    GtcQuantizer q;  // theta = (0, 1): exponents are log2 of exact powers of two
    Vector wq;
    const auto run = [&](std::vector<float> values) {
        Vector w = Eigen::Map<const Vector>(values.data(), Index(values.size()));
        wq.resize(w.size());
        q.forward(w, wq, Shape{w.size()});
        return q.bits();
    };
    // exponents {-3, -1, 0}: M - m + 1 = 4 -> bits 3 -> cost 8
    GtcBits b = run({0.125f, -0.5f, 1.0f});
    BOOST_TEST(b.maxExponent == 0);
    BOOST_TEST(b.minExponent == -3);
    BOOST_TEST(b.bits == 3);
    BOOST_TEST(b.cost == 8.0);
    BOOST_TEST(b.nonzeros == 3);
    // a single exponent -> bits 1 -> cost 2
    b = run({0.5f, -0.5f, 0.5f});
    BOOST_TEST(b.maxExponent == -1);
    BOOST_TEST(b.minExponent == -1);
    BOOST_TEST(b.bits == 1);
    BOOST_TEST(b.cost == 2.0);
    // M - m + 1 = 2, 3, 5, 7, 8 -> bits 2, 3, 4, 4, 4 (the last: log2(0.0079) = -6.98 -> -7,
    // just above the threshold 2^-7)
    BOOST_TEST(run({1.0f, 0.5f}).bits == 2);
    BOOST_TEST(run({1.0f, -0.25f}).bits == 3);
    BOOST_TEST(run({1.0f, 0.0625f}).bits == 4);
    BOOST_TEST(run({2.0f, -0x1p-5f}).bits == 4);
    b = run({1.0f, 0.0079f});
    BOOST_TEST(b.minExponent == -7);
    BOOST_TEST(b.bits == 4);
    // M - m + 1 = 9 (only without the threshold at theta = (0, 1)) -> bits 5 -> cost 32
    GtcQuantizer q0 = withTheta(0, 1, 0);
    Vector w9(2), wq9(2);
    w9 << 2.0f, 0x1p-7f;
    q0.forward(w9, wq9, Shape{2});
    BOOST_TEST(q0.bits().maxExponent - q0.bits().minExponent + 1 == 9);
    BOOST_TEST(q0.bits().bits == 5);
    BOOST_TEST(q0.bits().cost == 32.0);
}

BOOST_AUTO_TEST_CASE(zeros_never_enter_the_range) {
    GtcQuantizer q;  // eps = 2^-7
    Vector w(7), wq(7);
    // exact zeros and weights below 2^-7 * max|w| = 2^-7 (log2 would be -10 and -20)
    w << 0, 1, 0x1p-10f, -0.5f, 0, -0x1p-20f, 0.0078125f;  // the last is exactly at the threshold
    q.forward(w, wq, Shape{7});
    BOOST_TEST((wq == (Vector(7) << 0, 1, 0, -0.5f, 0, 0, 0).finished()));
    const GtcBits b = q.bits();
    BOOST_TEST(b.nonzeros == 2);
    BOOST_TEST(b.maxExponent == 0);
    BOOST_TEST(b.minExponent == -1);
    BOOST_TEST(b.bits == 2);
    // eps = 0 keeps every nonzero weight, still not the exact zeros
    GtcQuantizer all = withTheta(0, 1, 0);
    all.forward(w, wq, Shape{7});
    BOOST_TEST(all.bits().nonzeros == 5);
    BOOST_TEST(all.bits().minExponent == -20);
    BOOST_TEST(all.bits().bits == 1 + 5);  // M - m + 1 = 21
    BOOST_TEST(wq[0] == 0.0f);
    BOOST_TEST(wq[4] == 0.0f);
    // an all-zero block: no exponent, bits 1, cost 2; the penalty adds nothing
    Vector z = Vector::Zero(4), zq(4), d = Vector::Ones(4);
    q.forward(z, zq, Shape{4});
    BOOST_TEST(zq.isZero(0));
    BOOST_TEST(q.bits().nonzeros == 0);
    BOOST_TEST(q.bits().bits == 1);
    BOOST_TEST(q.bits().cost == 2.0);
    q.trainable()->at("theta2").grad[0] = 5;
    q.addBitPenaltyGradient(1.0, d);
    BOOST_TEST(q.trainable()->at("theta2").grad[0] == 5.0f);
    BOOST_TEST((d == Vector::Ones(4)));
}

// Relative to max|w|, the start theta = (0, 1) spans fewer than log2(1/eps) = 7 octaves: at most
// 8 exponents, 4 bits, whatever the layer's scale.
BOOST_DATA_TEST_CASE(identity_start_is_at_most_4_bits,
                     bdata::xrange(0, 6) * bdata::make({1e-3f, 1.0f, 300.0f}), seed, scale) {
    const Vector w = testing::randomVector(5000, 900u + static_cast<std::uint64_t>(seed), scale);
    Vector wq(w.size());
    GtcQuantizer q;
    q.forward(w, wq, Shape{w.size()});
    const GtcBits b = q.bits();
    BOOST_TEST(b.maxExponent - b.minExponent <= 7);
    BOOST_TEST(b.bits <= 4);
    // a few percent of a Gaussian block falls to zero
    const double zeros = 1.0 - double(b.nonzeros) / double(w.size());
    BOOST_TEST(zeros < 0.05);
}

BOOST_AUTO_TEST_SUITE_END()

// ================================================================ gradients

BOOST_AUTO_TEST_SUITE(gradients)

// L = 0.5 * ||w~ - t||^2. Where the exponents are integers, round() is the identity and the
// STE gradients must equal the exact gradients of the smooth surrogate: checked by central
// differences of the surrogate in theta1, theta2 and every w_i.
BOOST_DATA_TEST_CASE(match_central_differences_of_the_surrogate,
                     bdata::xrange(0, 4) * bdata::xrange(0, 4), seed, thetaCase) {
    const double thetas[4][2] = {{0, 1}, {0.3, 0.8}, {-1, -2.5}, {1.5, 0.25}};
    const double theta1 = static_cast<Scalar>(thetas[thetaCase][0]);
    const double theta2 = static_cast<Scalar>(thetas[thetaCase][1]);
    std::mt19937_64 rng(300u + static_cast<std::uint64_t>(seed));
    std::uniform_int_distribution<int> kDist(-4, 2);
    std::vector<double> k(24);
    for (double& x : k) x = kDist(rng);
    const Vector w = withIntegerExponents(k, theta1, theta2, rng());
    GtcQuantizer q = withTheta(static_cast<Scalar>(theta1), static_cast<Scalar>(theta2), 0);
    Vector wq(w.size()), d(w.size());
    q.forward(w, wq, Shape{w.size()});
    // targets 20-90% away from w~ (either side), so that no dL/dw_i is near 0
    std::uniform_real_distribution<float> away(0.2f, 0.9f);
    Vector t(w.size());
    for (Index i = 0; i < w.size(); ++i)
        t[i] = wq[i] * (1 + ((rng() & 1) ? away(rng) : -away(rng)));
    q.backward(w, wq - t, d);
    const double g1 = q.trainable()->at("theta1").grad[0];
    const double g2 = q.trainable()->at("theta2").grad[0];

    const double h = 1e-5;
    const double fd1 = (surrogateLoss(w, t, theta1 + h, theta2) -
                        surrogateLoss(w, t, theta1 - h, theta2)) / (2 * h);
    const double fd2 = (surrogateLoss(w, t, theta1, theta2 + h) -
                        surrogateLoss(w, t, theta1, theta2 - h)) / (2 * h);
    BOOST_TEST(g1 == fd1, tt::tolerance(1e-4));
    BOOST_TEST(g2 == fd2, tt::tolerance(1e-4));
    for (Index i = 0; i < w.size(); ++i) {
        // dL/dw_i: only the i-th term depends on w_i; step relative to |w_i|, in double
        const double hw = 1e-6 * std::abs(static_cast<double>(w[i]));
        const auto li = [&](double wi) {
            const double dd = surrogate(wi, theta1, theta2) - t[i];
            return 0.5 * dd * dd;
        };
        const double fd = (li(w[i] + hw) - li(w[i] - hw)) / (2 * hw);
        BOOST_TEST(d[i] == fd, tt::tolerance(1e-4) << "w[" << i << "] = " << w[i]);
    }
}

// At any point (exponents rounded), the STE gradients in terms of the forward output:
// dL/dtheta1 = ln2 * sum g_i w~_i, dL/dtheta2 = ln2 * sum g_i w~_i log2|w_i|,
// dL/dw_i = g_i * theta2 * w~_i / w_i; identity in the zero region.
BOOST_DATA_TEST_CASE(ste_in_terms_of_the_output, bdata::xrange(0, 6), seed) {
    const Vector w = testing::randomVector(300, 600u + static_cast<std::uint64_t>(seed));
    const Vector g = testing::randomVector(300, 700u + static_cast<std::uint64_t>(seed));
    const Scalar theta1 = -0.4f + 0.3f * static_cast<Scalar>(seed);
    const Scalar theta2 = seed % 2 ? -0.7f : 1.3f;
    GtcQuantizer q = withTheta(theta1, theta2, 0.05f);
    Vector wq(w.size()), d(w.size());
    q.forward(w, wq, Shape{w.size()});
    Vector gAliased = g;
    q.backward(w, gAliased, gAliased);  // dLatent may alias dWq
    q.backward(w, g, d);
    BOOST_TEST((gAliased == d));
    double s1 = 0, s2 = 0;
    Index zeros = 0;
    for (Index i = 0; i < w.size(); ++i) {
        if (wq[i] == 0) {
            BOOST_TEST(d[i] == g[i]);
            ++zeros;
            continue;
        }
        s1 += double(g[i]) * wq[i];
        s2 += double(g[i]) * wq[i] * std::log2(std::abs(double(w[i])));
        BOOST_TEST(d[i] == double(g[i]) * theta2 * wq[i] / w[i], tt::tolerance(1e-5));
    }
    BOOST_TEST(zeros > 0);
    BOOST_TEST(q.trainable()->at("theta1").grad[0] == std::log(2.0) * s1, tt::tolerance(1e-4));
    BOOST_TEST(q.trainable()->at("theta2").grad[0] == std::log(2.0) * s2, tt::tolerance(1e-4));
}

BOOST_AUTO_TEST_CASE(by_hand) {
    Vector w(3), wq(3), g(3), d(3);
    w << 2, -0.5f, 0.001f;  // thr = 2^-7 * 2: the last is zeroed
    GtcQuantizer q;
    q.forward(w, wq, Shape{3});
    BOOST_TEST((wq == (Vector(3) << 2, -0.5f, 0).finished()));
    g << 1, 3, 7;
    q.backward(w, g, d);
    // theta2 = 1, w~ = w: dL/dw = g (and identity in the zero region)
    BOOST_TEST((d == g));
    const float ln2 = std::log(2.0f);
    // ln2 * (1 * 2 + 3 * -0.5) = 0.5 ln2;  ln2 * (1 * 2 * 1 + 3 * -0.5 * -1) = 3.5 ln2
    BOOST_TEST(q.trainable()->at("theta1").grad[0] == 0.5f * ln2, tt::tolerance(1e-6f));
    BOOST_TEST(q.trainable()->at("theta2").grad[0] == 3.5f * ln2, tt::tolerance(1e-6f));
    // backward overwrites the grads
    q.backward(w, Vector::Zero(3), d);
    BOOST_TEST(q.trainable()->at("theta1").grad[0] == 0.0f);
    BOOST_TEST(q.trainable()->at("theta2").grad[0] == 0.0f);
}

BOOST_AUTO_TEST_SUITE_END()

// ================================================================ bit penalty

BOOST_AUTO_TEST_SUITE(penalty)

// P = lambda * 2^bits. With integer extreme exponents and M - m + 1 a power of two, ceil and
// round are the identity and the STE gradient must equal the gradient of the surrogate
// lambda * 2^(1 + log2(M - m + 1)) with M, m unrounded: central differences in theta1,
// theta2 and every w_i (nonzero only at the argmax and argmin).
BOOST_DATA_TEST_CASE(matches_central_differences_of_the_surrogate,
                     bdata::xrange(0, 4) * bdata::make({0, 1, 2}), seed, thetaCase) {
    const double thetas[3][2] = {{0, 1}, {-0.6, 1.7}, {0.8, -0.9}};
    const double theta1 = static_cast<Scalar>(thetas[thetaCase][0]);
    const double theta2 = static_cast<Scalar>(thetas[thetaCase][1]);
    const double lambda = 0.3;
    std::mt19937_64 rng(800u + static_cast<std::uint64_t>(seed));
    // one entry at exponent 1 (M), one at -2 (m): M - m + 1 = 4; the rest strictly inside
    const int span = seed % 2 ? 7 : 3;  // M - m + 1 = 4 or 8
    std::uniform_real_distribution<double> inside(-span + 1.1, 0.9);
    std::vector<double> e(16);
    for (double& x : e) x = inside(rng);
    e[3] = 1;
    e[11] = 1 - span;
    const Vector w = withIntegerExponents(e, theta1, theta2, rng());
    GtcQuantizer q = withTheta(static_cast<Scalar>(theta1), static_cast<Scalar>(theta2), 0);
    Vector wq(w.size());
    q.forward(w, wq, Shape{w.size()});
    const GtcBits b = q.bits();
    BOOST_TEST(b.maxExponent == 1);
    BOOST_TEST(b.minExponent == 1 - span);
    BOOST_TEST(b.cost == 2.0 * (span + 1));
    // the penalty adds to what is there
    q.trainable()->at("theta1").grad[0] = 0.25f;
    q.trainable()->at("theta2").grad[0] = -0.5f;
    Vector d = Vector::Constant(w.size(), 0.125f);
    q.addBitPenaltyGradient(lambda, d);
    const double g1 = q.trainable()->at("theta1").grad[0] - 0.25;
    const double g2 = q.trainable()->at("theta2").grad[0] + 0.5;

    std::vector<double> wd(w.data(), w.data() + w.size());
    const double h = 1e-5;
    const double fd1 = (surrogatePenalty(wd, theta1 + h, theta2, lambda) -
                        surrogatePenalty(wd, theta1 - h, theta2, lambda)) / (2 * h);
    const double fd2 = (surrogatePenalty(wd, theta1, theta2 + h, lambda) -
                        surrogatePenalty(wd, theta1, theta2 - h, lambda)) / (2 * h);
    // shifting every exponent keeps the range: both are 0
    BOOST_TEST(std::abs(g1) < 1e-6);
    BOOST_TEST(std::abs(fd1) < 1e-6);
    BOOST_TEST(g2 == fd2, tt::tolerance(1e-4));
    BOOST_TEST(std::abs(g2) > 0.1);
    for (Index i = 0; i < w.size(); ++i) {
        const double hw = 1e-6 * std::abs(wd[size_t(i)]);
        std::vector<double> p = wd, m = wd;
        p[size_t(i)] += hw;
        m[size_t(i)] -= hw;
        const double fd = (surrogatePenalty(p, theta1, theta2, lambda) -
                           surrogatePenalty(m, theta1, theta2, lambda)) / (2 * hw);
        const double got = double(d[i]) - 0.125;
        if (i == 3 || i == 11)
            BOOST_TEST(got == fd, tt::tolerance(1e-4) << "w[" << i << "]");
        else
            BOOST_TEST(std::abs(got) < 1e-6);  // FD is 0 here as well
        BOOST_TEST((std::abs(fd) < 1e-6) == (i != 3 && i != 11));
    }
}

// M - m + 1 = 3 is not a power of two: bits = 1 + ceil(log2 3) = 3, and through ceil by
// identity dP/dM = lambda * 2^bits / (M - m + 1) = 8 lambda / 3.
BOOST_AUTO_TEST_CASE(by_hand) {
    Vector w(4), wq(4), d = Vector::Zero(4);
    w << 0.5f, -1, 0.3f, -0.25f;  // exponents -1, 0, round(-1.74) = -2, -2
    GtcQuantizer q;
    q.forward(w, wq, Shape{4});
    BOOST_TEST(q.bits().bits == 3);
    BOOST_TEST(q.bits().cost == 8.0);
    q.backward(w, Vector::Zero(4), d);
    q.addBitPenaltyGradient(2.0);  // without dLatent: theta only
    const double c = 2.0 * 8 / 3;
    // argmax e at w = -1 (log2 = 0), argmin at w = -0.25 (log2 = -2)
    BOOST_TEST(q.trainable()->at("theta1").grad[0] == 0.0f);
    BOOST_TEST(q.trainable()->at("theta2").grad[0] == c * (0 - (-2)), tt::tolerance(1e-6));
    q.addBitPenaltyGradient(2.0, d);
    BOOST_TEST(q.trainable()->at("theta2").grad[0] == 2 * c * 2, tt::tolerance(1e-6));
    // de/dw = theta2 / (w ln 2): at w = -1: -1/ln2; at w = -0.25: -4/ln2 (subtracted)
    const double ln2 = std::log(2.0);
    BOOST_TEST(d[1] == c * (-1 / ln2), tt::tolerance(1e-6));
    BOOST_TEST(d[3] == -c * (-4 / ln2), tt::tolerance(1e-6));
    BOOST_TEST(d[0] == 0.0f);
    BOOST_TEST(d[2] == 0.0f);
    // lambda = 0 adds nothing; a negative lambda is rejected
    q.addBitPenaltyGradient(0.0, d);
    BOOST_TEST(q.trainable()->at("theta2").grad[0] == 2 * c * 2, tt::tolerance(1e-6));
    BOOST_CHECK_EXCEPTION(q.addBitPenaltyGradient(-1.0), std::invalid_argument,
                          messageContains("lambda must be >= 0 (got -1)"));
    Vector small(3);
    BOOST_CHECK_EXCEPTION(q.addBitPenaltyGradient(1.0, small), std::invalid_argument,
                          messageContains("dLatent has 3 elements, the last forward() had 4"));
}

// The generic Quantizer interface an optimizer uses (optim::Ste with SteSettings::bitPenalty):
// penalty() is the bit cost, addPenaltyGradient() the bit penalty's gradient, bitsPerWeight()
// the bits, and theta is not kept >= 0. Other quantizers have none of it.
BOOST_AUTO_TEST_CASE(through_the_quantizer_interface) {
    Vector w(4), wq(4), d1 = Vector::Zero(4), d2 = Vector::Zero(4);
    w << 0.5f, -1, 0.3f, -0.25f;  // 3 bits, as above
    GtcQuantizer gtc;
    Quantizer& q = gtc;
    q.forward(w, wq, Shape{4});
    BOOST_TEST(q.hasPenalty());
    BOOST_TEST(!q.trainablesNonNegative());
    BOOST_TEST(q.penalty() == 8.0);
    BOOST_TEST(q.bitsPerWeight() == 3.0);
    q.backward(w, Vector::Zero(4), d1);
    q.addPenaltyGradient(2.0, d1);
    const Scalar t2 = q.trainable()->at("theta2").grad[0];
    GtcQuantizer ref;
    ref.forward(w, wq, Shape{4});
    ref.backward(w, Vector::Zero(4), d2);
    ref.addBitPenaltyGradient(2.0, d2);
    BOOST_TEST(t2 == ref.trainable()->at("theta2").grad[0]);
    BOOST_TEST(t2 != 0.0f);
    BOOST_TEST(d1 == d2);
    BOOST_CHECK_EXCEPTION(GtcQuantizer().penalty(), std::invalid_argument,
                          messageContains("called before forward()"));

    TtqQuantizer ttq;
    ttq.forward(w, wq, Shape{4});
    BOOST_TEST(!ttq.hasPenalty());
    BOOST_TEST(ttq.trainablesNonNegative());
    BOOST_TEST(ttq.penalty() == 0.0);
    BOOST_TEST(std::isnan(ttq.bitsPerWeight()));
    Vector d3 = Vector::Zero(4);
    ttq.addPenaltyGradient(2.0, d3);
    BOOST_TEST(d3.isZero());
}

BOOST_AUTO_TEST_SUITE_END()

// ================================================================ state, checks, factory

BOOST_AUTO_TEST_SUITE(state)

BOOST_AUTO_TEST_CASE(trainable_theta) {
    GtcQuantizer q;
    ParameterSet* t = q.trainable();
    BOOST_REQUIRE(t);
    BOOST_TEST(t->size() == 2);
    for (const char* name : {"theta1", "theta2"}) {
        const ParameterBlock& b = t->at(name);
        BOOST_TEST(b.value.size() == 1);
        BOOST_TEST(!b.constrained);
        BOOST_TEST(!b.decay);
    }
    BOOST_TEST(t->at("theta1").value[0] == 0.0f);
    BOOST_TEST(t->at("theta2").value[0] == 1.0f);
    // the values forward() uses are the trainables'
    Vector w(2), wq(2);
    w << 1, 0.5f;
    t->at("theta1").value[0] = 2;
    q.forward(w, wq, Shape{2});
    BOOST_TEST((wq == (Vector(2) << 4, 2).finished()));
}

BOOST_AUTO_TEST_CASE(save_and_load_round_trip_bit_exactly) {
    GtcSettings s;
    s.eps = 0.01f;
    GtcQuantizer a(s);
    a.trainable()->at("theta1").value[0] = std::nextafter(-1.37f, 0.0f);
    a.trainable()->at("theta2").value[0] = 0.1f + 1e-8f;
    MemoryState st;
    a.saveState(st, "quant/conv1");
    GtcQuantizer b(s);
    b.loadState(st, "quant/conv1");
    BOOST_TEST(bitIdentical(b.theta1(), a.theta1()));
    BOOST_TEST(bitIdentical(b.theta2(), a.theta2()));
    const Vector w = testing::randomVector(50, 4);
    Vector wa(50), wb(50);
    a.forward(w, wa, Shape{50});
    b.forward(w, wb, Shape{50});
    BOOST_TEST((wa == wb));
    // another eps is refused
    GtcQuantizer c;
    BOOST_CHECK_EXCEPTION(
        c.loadState(st, "quant/conv1"), std::invalid_argument,
        messageContains("stored eps 0.01 differs from this quantizer's 0.0078125"));
    // a stored NaN is refused, naming theta
    MemoryState bad;
    a.trainable()->at("theta2").value[0] = NAN;
    a.saveState(bad, "q");
    BOOST_CHECK_EXCEPTION(b.loadState(bad, "q"), std::invalid_argument,
                          messageContains("GtcQuantizer::loadState(): theta2 is not finite"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(checks)

BOOST_AUTO_TEST_CASE(nan_theta_names_theta) {
    Vector w = testing::randomVector(6, 1), wq(6);
    GtcQuantizer q;
    q.trainable()->at("theta1").value[0] = NAN;
    BOOST_CHECK_EXCEPTION(
        q.forward(w, wq, Shape{6}), std::invalid_argument,
        messageContains("GtcQuantizer::forward(): theta1 is not finite (got nan)"));
    q.trainable()->at("theta1").value[0] = 0;
    q.trainable()->at("theta2").value[0] = INFINITY;
    BOOST_CHECK_EXCEPTION(q.forward(w, wq, Shape{6}), std::invalid_argument,
                          messageContains("theta2 is not finite (got inf)"));
}

BOOST_AUTO_TEST_CASE(settings_and_arguments) {
    GtcSettings s;
    s.eps = 1;
    BOOST_CHECK_EXCEPTION(
        GtcQuantizer{s}, std::invalid_argument,
        messageContains("GtcSettings::validate(): eps must be in [0, 1) (got 1)"));
    s.eps = -0.1f;
    BOOST_CHECK_EXCEPTION(GtcQuantizer{s}, std::invalid_argument,
                          messageContains("eps must be in [0, 1)"));
    s = GtcSettings{};
    s.theta1 = NAN;
    BOOST_CHECK_EXCEPTION(GtcQuantizer{s}, std::invalid_argument,
                          messageContains("GtcSettings::validate(): theta1 must be finite"));
    s = GtcSettings{};
    s.theta2 = -INFINITY;
    BOOST_CHECK_EXCEPTION(GtcQuantizer{s}, std::invalid_argument,
                          messageContains("theta2 must be finite"));

    GtcQuantizer q;
    Vector w = testing::randomVector(6, 1), wq(6), d(6), five(5);
    BOOST_CHECK_EXCEPTION(q.backward(w, d, d), std::invalid_argument,
                          messageContains("GtcQuantizer::backward(): called before forward()"));
    BOOST_CHECK_EXCEPTION(q.bits(), std::invalid_argument,
                          messageContains("GtcQuantizer::bits(): called before forward()"));
    BOOST_CHECK_EXCEPTION(q.addBitPenaltyGradient(1.0), std::invalid_argument,
                          messageContains("called before forward()"));
    BOOST_CHECK_EXCEPTION(q.forward(w, wq, Shape{7}), std::invalid_argument,
                          messageContains("latent has 6 elements, shape [7] has 7"));
    BOOST_CHECK_EXCEPTION(q.forward(w, five, Shape{6}), std::invalid_argument,
                          messageContains("latent has 6 elements, wq has 5"));
    Vector bad = w;
    bad[2] = NAN;
    BOOST_CHECK_EXCEPTION(q.forward(bad, wq, Shape{6}), std::invalid_argument,
                          messageContains("latent has a non-finite entry at index 2"));
    Vector empty(0);
    BOOST_CHECK_EXCEPTION(q.forward(empty, empty, Shape{0}), std::invalid_argument,
                          messageContains("empty block"));
    q.forward(w, wq, Shape{6});
    BOOST_CHECK_EXCEPTION(q.backward(five, five, five), std::invalid_argument,
                          messageContains("latent has 5 elements, the last forward() had 6"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(factory)

BOOST_AUTO_TEST_CASE(specs_round_trip) {
    for (const std::string spec : {"gtc", "gtc,eps=0.05", "gtc,eps=0,theta1=-1,theta2=0.5",
                                   "gtc,theta2=-3.5"}) {
        BOOST_TEST_CONTEXT(spec) {
            const auto q = makeQuantizer(spec);
            BOOST_TEST(q->name() == spec);
            BOOST_TEST(makeQuantizer(q->name())->name() == q->name());
        }
    }
    BOOST_TEST(makeQuantizer("gtc,eps=0.0078125,theta1=0,theta2=1")->name() == "gtc");
    const auto q = makeQuantizer("gtc,eps=0.1,theta1=-2,theta2=0.25");
    auto* gtc = dynamic_cast<GtcQuantizer*>(q.get());
    BOOST_REQUIRE(gtc);
    BOOST_TEST(gtc->settings().eps == 0.1f);
    BOOST_TEST(gtc->theta1() == -2.0f);
    BOOST_TEST(gtc->theta2() == 0.25f);
    BOOST_TEST(!gtc->freeScale());
    BOOST_TEST(gtc->levels() == 509);
    BOOST_TEST(makeGtc()->name() == "gtc");
}

BOOST_AUTO_TEST_CASE(unknown_options_and_values) {
    BOOST_CHECK_EXCEPTION(
        makeQuantizer("gtc,t=0.1"), std::invalid_argument,
        messageContains("unknown option 't' for 'gtc'; known: eps, theta1, theta2"));
    BOOST_CHECK_EXCEPTION(makeQuantizer("gtc,eps=1.5"), std::invalid_argument,
                          messageContains("eps must be in [0, 1) (got 1.5)"));
    BOOST_CHECK_EXCEPTION(makeQuantizer("gtc,theta2=abc"), std::invalid_argument,
                          messageContains("option 'theta2' of 'gtc' must be a number"));
    BOOST_CHECK_EXCEPTION(makeQuantizer("gtx"), std::invalid_argument,
                          messageContains("known: ste:<projection spec>, ttq, gtc"));
}

BOOST_AUTO_TEST_SUITE_END()
