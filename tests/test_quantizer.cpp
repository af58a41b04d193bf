#define BOOST_TEST_MODULE quantizer
#include <boost/test/data/monomorphic.hpp>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include "tern/proj/factory.hpp"
#include "tern/proj/quantizer.hpp"
#include "testing/helpers.hpp"

#include <cmath>

using namespace tern;
using namespace tern::proj;
using tern::testing::messageContains;
namespace bdata = boost::unit_test::data;

namespace {

/// Latent weights at least `margin` away from the TTQ thresholds +-t*max|W| of each group (and
/// from 0), so finite differences do not cross a region boundary.
Vector latentAwayFromThresholds(const Shape& shape, Granularity g, Scalar t, std::uint64_t seed,
                                Scalar margin = 0.05f) {
    Vector w = testing::randomVector(shape.size(), seed);
    const Index groups = shape.groups(g), m = w.size() / groups;
    for (Index k = 0; k < groups; ++k) {
        auto seg = w.segment(k * m, m);
        const Scalar delta = t * seg.cwiseAbs().maxCoeff();
        for (Index i = 0; i < m; ++i) {
            const Scalar a = std::abs(seg[i]);
            if (std::abs(a - delta) < margin)
                seg[i] = std::copysign(a < delta ? delta - margin : delta + margin, seg[i]);
        }
    }
    return w;
}

/// L(wq) = sum c_i wq_i + 0.5 sum wq_i^2 (in double), and dL/dwq = c + wq.
double loss(const Vector& c, const Vector& wq) {
    return c.cast<double>().dot(wq.cast<double>()) + 0.5 * wq.cast<double>().squaredNorm();
}

}  // namespace

// ================================================================ STE

BOOST_AUTO_TEST_SUITE(ste)

BOOST_AUTO_TEST_CASE(forward_is_the_projection) {
    const Shape shape{4, 3, 2};
    const Vector latent = testing::randomVector(shape.size(), 3);
    for (const auto g : {Granularity::PerTensor, Granularity::PerFilter}) {
        std::shared_ptr<const Projection> p = makeProjection("ternary:exact");
        auto q = makeSte(p, g);
        Vector wq(latent.size()), expected(latent.size());
        q->forward(latent, wq, shape);
        p->project(latent, expected, shape, g);
        BOOST_TEST((wq == expected));
        BOOST_TEST(q->trainable() == nullptr);
    }
}

BOOST_AUTO_TEST_CASE(backward_clips_outside_the_box) {
    Vector latent(5), dWq(5), dLatent(5);
    latent << -1.5f, -1.0f, 0.2f, 1.0f, 1.01f;
    dWq << 1, 2, 3, 4, 5;
    auto q = makeSte(makeProjection("binary:scaled"), Granularity::PerTensor);
    q->backward(latent, dWq, dLatent);
    BOOST_TEST((dLatent == (Vector(5) << 0, 2, 3, 4, 0).finished()));
    auto half = makeSte(makeProjection("binary:scaled"), Granularity::PerTensor, 0.5f);
    half->backward(latent, dWq, dLatent);
    BOOST_TEST((dLatent == (Vector(5) << 0, 0, 3, 0, 0).finished()));
    auto plain = makeSte(makeProjection("binary:scaled"), Granularity::PerTensor, std::nullopt);
    plain->backward(latent, dWq, dLatent);
    BOOST_TEST((dLatent == dWq));
    // in place
    Vector g = dWq;
    q->backward(latent, g, g);
    BOOST_TEST((g == (Vector(5) << 0, 2, 3, 4, 0).finished()));
}

BOOST_AUTO_TEST_CASE(argument_checks) {
    BOOST_CHECK_EXCEPTION(makeSte(nullptr, Granularity::PerTensor), std::invalid_argument,
                          messageContains("projection is null"));
    BOOST_CHECK_EXCEPTION(makeSte(makeProjection("ternary"), Granularity::PerTensor, 0.0f),
                          std::invalid_argument, messageContains("clip must be > 0 (got 0)"));
    auto q = makeSte(makeProjection("ternary"), Granularity::PerTensor);
    Vector a(4), b(3), c(4);
    BOOST_CHECK_EXCEPTION(q->backward(a, b, c), std::invalid_argument,
                          messageContains("latent has 4 elements, dWq has 3"));
    Vector wq(4);
    a.setOnes();
    BOOST_CHECK_EXCEPTION(q->forward(a, wq, Shape{5}), std::invalid_argument,
                          messageContains("v has 4 elements, shape [5] has 5"));
}

BOOST_AUTO_TEST_SUITE_END()

// ================================================================ TTQ

BOOST_AUTO_TEST_SUITE(ttq)

BOOST_AUTO_TEST_CASE(init_and_forward_by_hand) {
    Vector latent(6);
    latent << 1.0f, -0.5f, 0.02f, 0.6f, -0.04f, -0.3f;  // max 1, t = 0.05: delta = 0.05
    TtqQuantizer q;                                     // t = 0.05, per tensor
    BOOST_TEST(!q.initialized());
    BOOST_TEST(q.trainable()->size() == 0);
    Vector wq(6);
    q.forward(latent, wq, Shape{6});
    BOOST_REQUIRE(q.initialized());
    const Vector& wp = q.trainable()->at("wp").value;
    const Vector& wn = q.trainable()->at("wn").value;
    BOOST_TEST(wp.size() == 1);
    BOOST_TEST(wp[0] == 0.8f, boost::test_tools::tolerance(1e-6f));  // mean(1, 0.6)
    BOOST_TEST(wn[0] == 0.4f, boost::test_tools::tolerance(1e-6f));  // mean(0.5, 0.3)
    BOOST_TEST(q.thresholds()[0] == 0.05f, boost::test_tools::tolerance(1e-6f));
    const Vector expected = (Vector(6) << wp[0], -wn[0], 0, wp[0], 0, -wn[0]).finished();
    BOOST_TEST((wq == expected));
    BOOST_TEST(!q.trainable()->at("wp").constrained);
    BOOST_TEST(!q.trainable()->at("wp").decay);
}

BOOST_AUTO_TEST_CASE(init_fallbacks_for_empty_regions) {
    TtqQuantizer q(0.05f, Granularity::PerFilter);
    Vector latent(6), wq(6);
    latent << -1.0f, -0.5f, -0.25f,  // filter 0: no positive region -> wp = mean|W|
        0, 0, 0;                     // filter 1: all zero -> 1
    q.forward(latent, wq, Shape{2, 3});
    const Vector& wp = q.trainable()->at("wp").value;
    const Vector& wn = q.trainable()->at("wn").value;
    BOOST_TEST(wp[0] == 1.75f / 3, boost::test_tools::tolerance(1e-6f));
    BOOST_TEST(wn[0] == 1.75f / 3, boost::test_tools::tolerance(1e-6f));
    BOOST_TEST(wp[1] == 1.0f);
    BOOST_TEST(wn[1] == 1.0f);
    BOOST_TEST(wq.tail(3).isZero(0));
    BOOST_TEST(wq.allFinite());
}

// Wp, Wn are real parameters: their gradients are checked against central differences of L.
// The latent gradient is a pseudo-gradient: wq is piecewise constant in the latent weights
// (the finite difference is 0 away from the thresholds, checked too), and TTQ defines
// dL/dW_i = s_i * dL/dwq_i with s_i = Wp, 1, Wn by region; dL/dwq is checked by differences.
BOOST_DATA_TEST_CASE(gradients_vs_central_differences,
                     bdata::make({0, 1}) * bdata::make({0.05f, 0.3f}) * bdata::xrange(0, 4),
                     perFilter, tf, seed) {
    const Granularity gran = perFilter ? Granularity::PerFilter : Granularity::PerTensor;
    const Shape shape{3, 2, 4};
    const Vector latent =
        latentAwayFromThresholds(shape, gran, tf, 100u + static_cast<std::uint64_t>(seed));
    const Vector c = testing::randomVector(shape.size(), 200u + static_cast<std::uint64_t>(seed));
    TtqQuantizer q(tf, gran);
    Vector wq(shape.size());
    q.forward(latent, wq, shape);
    // perturb the scales away from their (symmetric-ish) init so Wp != Wn != 1
    ParameterBlock& wp = q.trainable()->at("wp");
    ParameterBlock& wn = q.trainable()->at("wn");
    wp.value *= 1.3f;
    wn.value *= 0.7f;
    q.forward(latent, wq, shape);
    const Vector dWq = c + wq;
    Vector dLatent(shape.size());
    q.backward(latent, dWq, dLatent);

    const double h = 1e-2;
    const auto lossAt = [&]() {
        Vector w(shape.size());
        q.forward(latent, w, shape);
        return loss(c, w);
    };
    for (ParameterBlock* b : {&wp, &wn})
        for (Index g = 0; g < b->value.size(); ++g) {
            const Scalar keep = b->value[g];
            b->value[g] = keep + static_cast<Scalar>(h);
            const double lp = lossAt();
            b->value[g] = keep - static_cast<Scalar>(h);
            const double lm = lossAt();
            b->value[g] = keep;
            const double fd = (lp - lm) / (2 * h);
            BOOST_TEST(b->grad[g] == fd, boost::test_tools::tolerance(1e-3)
                                             << b->name << "[" << g << "]");
        }

    const Index m = shape.size() / shape.groups(gran);
    for (Index i = 0; i < shape.size(); ++i) {
        const Index g = i / m;
        // dL/dwq_i by central differences on wq
        Vector w = wq;
        w[i] += static_cast<Scalar>(h);
        const double lp = loss(c, w);
        w[i] -= static_cast<Scalar>(2 * h);
        const double lm = loss(c, w);
        const double dLdwq = (lp - lm) / (2 * h);
        const Scalar delta = q.thresholds()[g];
        const double s = latent[i] > delta ? wp.value[g] : (latent[i] < -delta ? wn.value[g] : 1.0);
        BOOST_TEST(dLatent[i] == s * dLdwq, boost::test_tools::tolerance(1e-3));
        // the forward map is flat in the latent weight here
        if (std::abs(latent[i]) < latent.segment(g * m, m).cwiseAbs().maxCoeff()) {
            Vector lat = latent;
            lat[i] += 1e-3f;
            Vector w2(shape.size());
            q.forward(lat, w2, shape);
            BOOST_TEST((w2 == wq));
        }
    }
    q.forward(latent, wq, shape);  // leave thresholds as they were
}

BOOST_AUTO_TEST_CASE(gradient_regions_by_hand) {
    Vector latent(4), wq(4), dLatent(4);
    latent << 0.9f, -0.8f, 0.01f, 1.0f;  // delta = 0.05
    TtqQuantizer q;
    q.forward(latent, wq, Shape{4});
    ParameterBlock& wp = q.trainable()->at("wp");
    ParameterBlock& wn = q.trainable()->at("wn");
    wp.value[0] = 2;
    wn.value[0] = 3;
    q.forward(latent, wq, Shape{4});
    Vector g(4);
    g << 1, 10, 100, 1000;
    q.backward(latent, g, dLatent);
    BOOST_TEST((dLatent == (Vector(4) << 2, 30, 100, 2000).finished()));
    BOOST_TEST(wp.grad[0] == 1001.0f);
    BOOST_TEST(wn.grad[0] == -10.0f);
}

BOOST_AUTO_TEST_CASE(save_and_load_state) {
    const Shape shape{2, 5};
    const Vector latent = testing::randomVector(shape.size(), 9);
    TtqQuantizer a(0.1f, Granularity::PerFilter);
    Vector wqA(shape.size());
    a.forward(latent, wqA, shape);
    a.trainable()->at("wp").value << 0.25f, 0.5f;
    a.trainable()->at("wn").value << 0.75f, 1.5f;
    a.forward(latent, wqA, shape);
    MemoryState st;
    a.saveState(st, "quant/conv1");
    TtqQuantizer b(0.1f, Granularity::PerFilter);
    b.loadState(st, "quant/conv1");
    BOOST_TEST((b.trainable()->at("wp").value == a.trainable()->at("wp").value));
    BOOST_TEST((b.trainable()->at("wn").value == a.trainable()->at("wn").value));
    Vector wqB(shape.size());
    b.forward(latent, wqB, shape);  // loaded scales are kept, not re-initialised
    BOOST_TEST((wqB == wqA));
    TtqQuantizer c(0.1f, Granularity::PerTensor);
    c.forward(latent, wqB, shape);
    BOOST_CHECK_EXCEPTION(c.loadState(st, "quant/conv1"), std::invalid_argument,
                          messageContains("stored scales have shape [2]"));
}

BOOST_AUTO_TEST_CASE(argument_checks) {
    BOOST_CHECK_EXCEPTION(TtqQuantizer(1.0f), std::invalid_argument,
                          messageContains("thresholdFraction must be in [0, 1) (got 1)"));
    BOOST_CHECK_EXCEPTION(TtqQuantizer(-0.1f), std::invalid_argument,
                          messageContains("thresholdFraction must be in [0, 1)"));
    TtqQuantizer q;
    Vector latent = testing::randomVector(6, 1), wq(6), d(6);
    BOOST_CHECK_EXCEPTION(q.backward(latent, d, d), std::invalid_argument,
                          messageContains("called before forward()"));
    BOOST_CHECK_EXCEPTION(q.forward(latent, wq, Shape{7}), std::invalid_argument,
                          messageContains("latent has 6 elements, shape [7] has 7"));
    q.forward(latent, wq, Shape{6});
    TtqQuantizer f(0.05f, Granularity::PerFilter);
    f.forward(latent, wq, Shape{2, 3});
    BOOST_CHECK_EXCEPTION(f.forward(latent, wq, Shape{3, 2}), std::invalid_argument,
                          messageContains("gives 3 groups, but the scales were made for 2"));
    Vector bad = latent;
    bad[2] = NAN;
    BOOST_CHECK_EXCEPTION(q.forward(bad, wq, Shape{6}), std::invalid_argument,
                          messageContains("non-finite entry at index 2"));
}

BOOST_AUTO_TEST_SUITE_END()

// ================================================================ factory

BOOST_AUTO_TEST_SUITE(factory)

BOOST_AUTO_TEST_CASE(specs_round_trip) {
    for (const std::string spec :
         {"ste:ternary:twn", "ste:ternary:twn,ratio=0.5", "ste:binary:scaled,clip=none",
          "ste:pow2,bits=3,granularity=filter,clip=2.5", "ste:ternary:topk,fraction=0.3,scale=one",
          "ttq", "ttq,t=0.1", "ttq,t=0.05,granularity=filter"}) {
        BOOST_TEST_CONTEXT(spec) {
            const auto q = makeQuantizer(spec);
            BOOST_TEST(makeQuantizer(q->name())->name() == q->name());
        }
    }
    BOOST_TEST(makeQuantizer("ste:ternary:twn")->name() == "ste:ternary:twn");
    BOOST_TEST(makeQuantizer("ttq,t=0.05")->name() == "ttq");
    const auto q = makeQuantizer("ste:ternary:exact,granularity=filter,clip=none");
    const auto* ste = dynamic_cast<const SteQuantizer*>(q.get());
    BOOST_REQUIRE(ste);
    BOOST_TEST((ste->granularity() == Granularity::PerFilter));
    BOOST_TEST(!ste->clip().has_value());
    BOOST_TEST(ste->projection().name() == "ternary:exact");
    const auto t = makeQuantizer("ttq,t=0.2,granularity=filter");
    const auto* ttq = dynamic_cast<const TtqQuantizer*>(t.get());
    BOOST_REQUIRE(ttq);
    BOOST_TEST(ttq->thresholdFraction() == 0.2f);
    BOOST_TEST((ttq->granularity() == Granularity::PerFilter));
}

BOOST_AUTO_TEST_CASE(unknown_names_and_options) {
    BOOST_CHECK_EXCEPTION(
        makeQuantizer("dorefa"), std::invalid_argument,
        messageContains("unknown quantizer 'dorefa'; known: ste:<projection spec>, ttq"));
    BOOST_CHECK_EXCEPTION(makeQuantizer("ste:ternery"), std::invalid_argument,
                          messageContains("unknown projection 'ternery'"));
    BOOST_CHECK_EXCEPTION(makeQuantizer("ste:ternary,clip=abc"), std::invalid_argument,
                          messageContains("option 'clip'"));
    BOOST_CHECK_EXCEPTION(
        makeQuantizer("ste:ternary,granularity=row"), std::invalid_argument,
        messageContains("'granularity' must be 'tensor' or 'filter' (got 'row')"));
    BOOST_CHECK_EXCEPTION(
        makeQuantizer("ttq,threshold=0.1"), std::invalid_argument,
        messageContains("unknown option 'threshold' for 'ttq'; known: t, granularity"));
    BOOST_CHECK_EXCEPTION(makeQuantizer("ttq,t=1.5"), std::invalid_argument,
                          messageContains("thresholdFraction must be in [0, 1) (got 1.5)"));
}

BOOST_AUTO_TEST_SUITE_END()
