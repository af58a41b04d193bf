// Partial quantization with a rising fraction: RPR (random partition, frozen constrained
// entries) and incremental ternarization (largest magnitudes first, TTQ scales re-initialised
// from the newly quantized part); bestScale against a fine grid; exact save/load.
#define BOOST_TEST_MODULE optim_partial
#include <boost/test/unit_test.hpp>

#include "testing/helpers.hpp"
#include "tern/core/error.hpp"
#include "tern/optim/partial.hpp"
#include "tern/optim/problems/least_squares.hpp"
#include "tern/proj/quantizer.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

using namespace tern;
using namespace tern::optim;
using problems::LeastSquares;
using tern::testing::messageContains;

namespace {

LeastSquares problem(Index n, std::uint64_t seed, Index rowsPerBatch = 20) {
    LeastSquares p = testing::plantedTernaryLsq(4 * n, n, seed, 0.05f, rowsPerBatch);
    p.x().value = testing::randomVector(n, seed + 7, 0.5f);
    return p;
}

InnerSettings plainSgd() {
    SgdSettings s;
    s.momentum = 0.9;
    s.weightDecay = 0;
    return s;
}

TrainSettings loop(Index epochs, double lr) {
    TrainSettings t;
    t.maxEpochs = epochs;
    t.lr = LrSchedule::constant(lr);
    t.seed = 3;
    return t;
}

std::unique_ptr<Rpr> makeRpr(RprSettings s, Index epochs = 6, double lr = 0.01,
                             const std::string& set = "ternary:exact") {
    return std::make_unique<Rpr>(proj::makeProjection(set), Granularity::PerTensor, s, plainSgd(),
                                 loop(epochs, lr));
}

std::unique_ptr<Incremental> makeInc(IncrementalSettings s, Index epochs = 6, double lr = 0.01) {
    return std::make_unique<Incremental>([] { return proj::makeTtq(0.05f, Granularity::PerTensor); },
                                         Granularity::PerTensor, s, plainSgd(), loop(epochs, lr));
}

Index count(const std::vector<std::uint8_t>& m) { return std::count(m.begin(), m.end(), 1); }

bool bitEqual(const Vector& a, const Vector& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(Scalar) * a.size()) == 0;
}

/// Runs epochs [0, epochs) through the step/endEpoch interface.
void runEpochs(Optimizer& opt, Objective& f, Index from, Index to) {
    for (Index e = from; e < to; ++e) {
        opt.setLearningRate(opt.trainSettings().lr.lr(e));
        f.shuffle(opt.rng());
        for (Index b = 0; b < f.numBatches(); ++b) opt.step(f, b);
        opt.endEpoch(f, e);
    }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(rpr)

BOOST_AUTO_TEST_CASE(partition_has_the_fraction_and_frozen_entries_keep_their_latent) {
    LeastSquares f = problem(400, 11);
    RprSettings s;
    s.fractions = {0.6, 1.0};
    s.stageEpochs = 2;
    auto opt = makeRpr(s);
    opt->begin(f);
    const auto& mask = opt->mask(0);
    const double frac = static_cast<double>(count(mask)) / 400.0;
    BOOST_TEST(std::abs(frac - 0.6) < 0.1, "constrained fraction " << frac);
    BOOST_TEST(opt->fraction() == 0.6);
    // The training point: constrained entries hold P_C(latent), the others the latent.
    const Vector latent0 = opt->latent(0);
    Vector proj0(400);
    proj::makeProjection("ternary:exact")->project(latent0, proj0, 1);
    for (Index i = 0; i < 400; ++i)
        BOOST_TEST(f.x().value[i] == (mask[size_t(i)] ? proj0[i] : latent0[i]));
    // One epoch of steps: constrained latents do not move, relaxed ones do.
    const std::vector<std::uint8_t> mask0 = mask;
    opt->setLearningRate(0.01);
    for (Index b = 0; b < f.numBatches(); ++b) opt->step(f, b);
    Index moved = 0;
    for (Index i = 0; i < 400; ++i) {
        if (mask0[size_t(i)]) BOOST_TEST(opt->latent(0)[i] == latent0[i]);
        else moved += opt->latent(0)[i] != latent0[i];
    }
    BOOST_TEST(moved > 100);
    // A new random partition every epoch; the stage changes after stageEpochs.
    opt->endEpoch(f, 0);
    BOOST_TEST(opt->stage() == 0);
    BOOST_TEST((opt->mask(0) != mask0));
    opt->endEpoch(f, 1);
    BOOST_TEST(opt->stage() == 1);
    BOOST_TEST(count(opt->mask(0)) == 400);
}

BOOST_AUTO_TEST_CASE(recovers_the_planted_code_and_deploys_into_the_set) {
    LeastSquares f = problem(12, 5, 8);
    const Vector planted = testing::plantedTernaryCode(48, 12, 5);
    RprSettings s;
    s.fractions = {0.5, 0.75, 1.0};
    s.stageEpochs = 20;
    auto opt = makeRpr(s, 80, 0.005);
    const TrainReport r = opt->optimize(f);
    BOOST_TEST(r.epochs == 80);
    BOOST_TEST(r.history.back().freezeFraction == 1.0);
    const Vector& x = f.x().value;  // deployed: P_C(latent)
    std::set<Scalar> values(x.data(), x.data() + x.size());
    BOOST_TEST(values.size() <= 3u);
    const Scalar a = x.cwiseAbs().maxCoeff();
    for (Index i = 0; i < 12; ++i)
        BOOST_TEST(std::round(x[i] / a) == std::round(planted[i] / 0.8f), "entry " << i);
}

BOOST_AUTO_TEST_CASE(rescale_fits_a_fixed_scale_set) {
    // Latent weights far from the unit levels: rescaling divides each group by its best scale.
    LeastSquares f = problem(200, 2);
    f.x().value *= 0.05f;
    RprSettings s;
    s.rescale = true;
    auto opt = makeRpr(s, 1, 0.01, "ternary");
    const Scalar best = proj::bestScale(*proj::makeProjection("ternary"), f.x().value);
    const Vector before = f.x().value;
    opt->begin(f);
    BOOST_TEST((opt->latent(0) - before / best).cwiseAbs().maxCoeff() < 1e-5f);
    // After the rescale the fixed levels are used: P(latent) has nonzeros
    Vector z(200);
    proj::makeProjection("ternary")->project(opt->latent(0), z, 1);
    BOOST_TEST((z.array() != 0).count() > 50);
    // RPR needs a projection
    BOOST_CHECK_EXCEPTION(Rpr(nullptr, Granularity::PerTensor), std::invalid_argument,
                          messageContains("projection must not be null"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(incremental)

BOOST_AUTO_TEST_CASE(quantizes_the_largest_magnitudes_and_reinitialises_scales) {
    LeastSquares f = problem(101, 4);
    IncrementalSettings s;
    s.stageEpochs = 1;
    auto opt = makeInc(s, 3);
    opt->begin(f);
    const Vector w = opt->latent(0);
    // stage 0: exactly ceil(0.5 * 101) = 51 entries, the largest |w|
    const auto& m0 = opt->mask(0);
    BOOST_TEST_REQUIRE(count(m0) == 51);
    Scalar minIn = 1e30f, maxOut = 0;
    for (Index i = 0; i < 101; ++i)
        (m0[size_t(i)] ? minIn : maxOut) = m0[size_t(i)] ? std::min(minIn, std::abs(w[i]))
                                                          : std::max(maxOut, std::abs(w[i]));
    BOOST_TEST(minIn >= maxOut);
    // Wp / Wn: mean |w| of the selected positive / negative entries beyond delta
    const Scalar delta = 0.05f * w.cwiseAbs().maxCoeff();
    double sp = 0, sn = 0;
    int np = 0, nn = 0;
    for (Index i = 0; i < 101; ++i) {
        if (!m0[size_t(i)]) continue;
        if (w[i] > delta) sp += w[i], ++np;
        if (w[i] < -delta) sn -= w[i], ++nn;
    }
    ParameterSet* t = opt->quantizer(0).trainable();
    BOOST_TEST(t->at("wp").value[0] == sp / np, boost::test_tools::tolerance(1e-5));
    BOOST_TEST(t->at("wn").value[0] == sn / nn, boost::test_tools::tolerance(1e-5));
    // Training point: quantized entries hold TTQ's values, the others the latent
    for (Index i = 0; i < 101; ++i) {
        const Scalar v = f.x().value[i];
        if (!m0[size_t(i)]) BOOST_TEST(v == w[i]);
        else BOOST_TEST((v == t->at("wp").value[0] || v == -t->at("wn").value[0] || v == 0));
    }
    // Train one epoch, move to stage 1: 76 entries; scales re-initialised from the new ones
    runEpochs(*opt, f, 0, 1);
    const auto& m1 = opt->mask(0);
    BOOST_TEST(count(m1) == 76);
    BOOST_TEST(opt->stage() == 1);
    runEpochs(*opt, f, 1, 2);
    BOOST_TEST(count(opt->mask(0)) == 101);
}

BOOST_AUTO_TEST_CASE(float_entries_get_the_plain_gradient_and_quantized_ones_ttq_rule) {
    LeastSquares f = problem(60, 9, 0);  // one batch
    IncrementalSettings s;
    SgdSettings plain;
    plain.momentum = 0;
    plain.weightDecay = 0;
    Incremental opt([] { return proj::makeTtq(0.05f, Granularity::PerTensor); },
                    Granularity::PerTensor, s, plain, loop(1, 0.1));
    opt.begin(f);
    const Vector w = opt.latent(0);
    const auto mask = opt.mask(0);
    ParameterSet* t = opt.quantizer(0).trainable();
    const Scalar wp = t->at("wp").value[0], wn = t->at("wn").value[0];
    const Scalar delta = 0.05f * w.cwiseAbs().maxCoeff();
    // gradient at the training point
    f.evaluateWithGradient(0, Pass::Probe);
    const Vector g = f.x().grad;
    opt.setLearningRate(0.1);
    opt.step(f, 0);
    double gp = 0, gn = 0;
    for (Index i = 0; i < 60; ++i) {
        Scalar expected = g[i];
        if (mask[size_t(i)] && w[i] > delta) expected = wp * g[i], gp += g[i];
        if (mask[size_t(i)] && w[i] < -delta) expected = wn * g[i], gn -= g[i];
        BOOST_TEST(opt.latent(0)[i] == w[i] - 0.1f * expected, boost::test_tools::tolerance(1e-5f));
    }
    // scale gradients from the quantized entries only
    BOOST_TEST(t->at("wp").value[0] == std::max(0.0, wp - 0.1 * gp), boost::test_tools::tolerance(1e-4));
    BOOST_TEST(t->at("wn").value[0] == std::max(0.0, wn - 0.1 * gn), boost::test_tools::tolerance(1e-4));
}

BOOST_AUTO_TEST_CASE(deploy_quantizes_everything_and_restore_brings_back_the_mix) {
    LeastSquares f = problem(50, 6);
    auto opt = makeInc(IncrementalSettings{});
    opt->begin(f);
    const Vector mixed = f.x().value;
    opt->deploy(f);
    std::set<Scalar> values(f.x().value.data(), f.x().value.data() + 50);
    BOOST_TEST(values.size() <= 3u);
    opt->restore(f);
    BOOST_TEST(bitEqual(f.x().value, mixed));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_CASE(save_then_load_continues_bit_exactly) {
    for (const bool random : {true, false}) {
        RprSettings rs;
        IncrementalSettings is;
        rs.stageEpochs = is.stageEpochs = 1;
        auto make = [&]() -> std::unique_ptr<StagedQuantization> {
            if (random) return makeRpr(rs, 8);
            return makeInc(is, 8);
        };
        // one batch: the objective keeps no shuffle order of its own to carry over
        LeastSquares a = problem(80, 8, 0);
        auto straight = make();
        straight->begin(a);
        runEpochs(*straight, a, 0, 8);

        LeastSquares b = problem(80, 8, 0);
        auto first = make();
        first->begin(b);
        runEpochs(*first, b, 0, 3);
        MemoryState state;
        first->save(state);

        LeastSquares c = problem(80, 8, 0);
        auto second = make();
        second->begin(c);
        second->load(state);
        BOOST_TEST(state.attrDouble("optim", "fraction") == first->fraction());
        BOOST_TEST((second->mask(0) == first->mask(0)));
        runEpochs(*second, c, 3, 8);
        BOOST_TEST(bitEqual(second->latent(0), straight->latent(0)), (random ? "rpr" : "inc"));
        BOOST_TEST((second->mask(0) == straight->mask(0)));
        BOOST_TEST(bitEqual(c.x().value, a.x().value));
    }
}

BOOST_AUTO_TEST_CASE(settings_are_validated) {
    auto bad = [](auto edit, const char* needle) {
        RprSettings r;
        IncrementalSettings i;
        edit(r.fractions, r.stageEpochs);
        edit(i.fractions, i.stageEpochs);
        BOOST_CHECK_EXCEPTION(r.validate(), std::invalid_argument, messageContains(needle));
        BOOST_CHECK_EXCEPTION(i.validate(), std::invalid_argument, messageContains(needle));
    };
    using F = std::vector<double>;
    bad([](F& f, Index&) { f.clear(); }, "fractions must not be empty");
    bad([](F& f, Index&) { f = {0.0, 1.0}; }, "(0, 1]");
    bad([](F& f, Index&) { f = {0.5, 1.5}; }, "(0, 1]");
    bad([](F& f, Index&) { f = {0.9, 0.5}; }, "non-decreasing");
    bad([](F&, Index& e) { e = 0; }, "stageEpochs");
    IncrementalSettings i;
    i.trainableLr = 0;
    BOOST_CHECK_EXCEPTION(i.validate(), std::invalid_argument, messageContains("trainableLr"));
    RprSettings r;
    r.fractions = {0.9, 0.5};
    BOOST_CHECK_EXCEPTION(Rpr(proj::makeProjection("ternary"), Granularity::PerTensor, r),
                          std::invalid_argument, messageContains("RprSettings::validate()"));
    BOOST_CHECK_EXCEPTION(Incremental(QuantizerFactory{}, Granularity::PerTensor, {}),
                          std::invalid_argument, messageContains("factory"));
}

BOOST_AUTO_TEST_CASE(best_scale_matches_a_fine_grid) {
    for (const char* set : {"ternary", "binary", "pow2,bits=2,scale=one"}) {
        const auto p = proj::makeProjection(set);
        for (std::uint64_t seed = 1; seed <= 5; ++seed) {
            const Vector w = testing::randomVector(300, seed, 0.1f);
            auto err = [&](double s) {
                Vector z(w.size());
                p->project(w / static_cast<Scalar>(s), z, 1);
                return (w - static_cast<Scalar>(s) * z).squaredNorm();
            };
            const double hi = w.cwiseAbs().maxCoeff();
            double bestGrid = 1e30;
            for (int k = 1; k <= 20000; ++k) bestGrid = std::min<double>(bestGrid, err(hi * k / 20000));
            const double got = err(proj::bestScale(*p, w));
            BOOST_TEST(got <= bestGrid * (1 + 1e-4) + 1e-9, set << " seed " << seed << ": " << got
                                                                << " vs grid " << bestGrid);
        }
    }
    BOOST_TEST(proj::bestScale(*proj::makeProjection("binary"), Vector::Zero(5)) == 1.0f);
}
