// Inner updates, schedules, settings, the optimization loop (statuses, callbacks), deploy/restore,
// exact resume, STE and the ADMM bookkeeping (rho*U continuity, passes).
#define BOOST_TEST_MODULE optim
#include <boost/test/data/monomorphic.hpp>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include "testing/helpers.hpp"
#include "testing/source_rules.hpp"
#include "tern/optim/admm.hpp"
#include "tern/optim/callbacks.hpp"
#include "tern/optim/distill.hpp"
#include "tern/optim/methods.hpp"
#include "tern/optim/partial.hpp"
#include "tern/optim/problems/least_squares.hpp"
#include "tern/optim/projected_sgd.hpp"
#include "tern/optim/ste.hpp"
#include "tern/proj/quantizer.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <tuple>
#include <limits>
#include <set>
#include <sstream>

namespace bdata = boost::unit_test::data;
using namespace tern;
using namespace tern::optim;

namespace {

/// Planted ternary least squares starting from a random x.
problems::LeastSquares plantedProblem(Index m, Index n, std::uint64_t seed, Index rowsPerBatch = 0,
                                      float noise = 0.05f) {
    problems::LeastSquares p = testing::plantedTernaryLsq(m, n, seed, noise, rowsPerBatch);
    p.x().value = testing::randomVector(n, seed + 1000, 0.3f);
    return p;
}

std::shared_ptr<const proj::Projection> ternary() { return proj::makeProjection("ternary:exact"); }

SgdSettings plainSgd(double momentum = 0) {
    SgdSettings s;
    s.momentum = momentum;
    s.weightDecay = 0;
    return s;
}

TrainSettings train(Index epochs, double lr, std::uint64_t seed = 1) {
    TrainSettings t;
    t.maxEpochs = epochs;
    t.lr = LrSchedule::constant(lr);
    t.seed = seed;
    return t;
}

/// Two blocks: x (constrained) with f = 0.5||x - cx||^2 and u (unconstrained) with
/// 0.5||u - cu||^2; records the passes it is evaluated with.
class TwoBlock final : public Objective {
public:
    TwoBlock() {
        x_ = &params_.add("x", Shape{4}, true);
        u_ = &params_.add("u", Shape{3}, false);
        cx_ = Vector::LinSpaced(4, -1, 1);
        cu_ = Vector::Constant(3, 2);
    }
    ParameterSet& parameters() override { return params_; }
    Index numBatches() const override { return 1; }
    double evaluateWithGradient(Index, Pass pass) override {
        passes.push_back(pass);
        x_->grad = x_->value - cx_;
        u_->grad = u_->value - cu_;
        return 0.5 * (x_->grad.squaredNorm() + u_->grad.squaredNorm());
    }
    std::vector<Pass> passes;
    ParameterBlock* x_;
    ParameterBlock* u_;
    Vector cx_, cu_;

private:
    ParameterSet params_;
};

/// A straight-through quantizer over a projection with a clipped-identity backward.
class TestSte final : public proj::Quantizer {
public:
    explicit TestSte(std::shared_ptr<const proj::Projection> p) : p_(std::move(p)) {}
    std::string name() const override { return "test-ste"; }
    int levels() const override { return p_->levels(); }
    bool freeScale() const override { return p_->freeScale(); }
    void forward(CVecRef latent, VecRef wq, const Shape& shape) override {
        p_->project(latent, wq, shape, Granularity::PerTensor);
    }
    void backward(CVecRef latent, CVecRef dWq, VecRef dLatent) override {
        dLatent = (latent.array().abs() <= 1).select(dWq, Vector::Zero(dWq.size()));
    }

private:
    std::shared_ptr<const proj::Projection> p_;
};

bool bitEqual(const Vector& a, const Vector& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(Scalar) * a.size()) == 0;
}

}  // namespace

// ============================================================== inner updates

BOOST_AUTO_TEST_SUITE(inner_update)

BOOST_AUTO_TEST_CASE(sgd_momentum_and_decay_by_hand) {
    SgdSettings s;
    s.momentum = 0.9;
    s.weightDecay = 0.1;
    InnerUpdate u(s);
    u.reset({2});
    Vector w(2);
    w << 1, -2;
    Vector g(2);
    g << 0.5f, 0.25f;
    // g' = g + wd w = (0.6, 0.05); v = g'; w = w - 0.1 v = (0.94, -2.005)
    u.apply(0, w, g, 0.1, true);
    BOOST_TEST(w[0] == 0.94f, boost::test_tools::tolerance(1e-6f));
    BOOST_TEST(w[1] == -2.005f, boost::test_tools::tolerance(1e-6f));
    // g' = (0.1, 0.1) + 0.1 w = (0.194, -0.1005); v = 0.9 (0.6, 0.05) + g' = (0.734, -0.0555)
    g << 0.1f, 0.1f;
    u.apply(0, w, g, 0.1, true);
    BOOST_TEST(w[0] == 0.94f - 0.0734f, boost::test_tools::tolerance(1e-5f));
    BOOST_TEST(w[1] == -2.005f + 0.00555f, boost::test_tools::tolerance(1e-5f));
    BOOST_TEST(u.velocity(0)[0] == 0.734f, boost::test_tools::tolerance(1e-5f));
}

BOOST_AUTO_TEST_CASE(weight_decay_only_where_decay_is_true) {
    SgdSettings s;
    s.momentum = 0;
    s.weightDecay = 0.5;
    InnerUpdate u(s);
    u.reset({1, 1});
    Vector a = Vector::Constant(1, 2), b = Vector::Constant(1, 2), g = Vector::Constant(1, 1);
    u.apply(0, a, g, 0.1, true);   // 2 - 0.1 (1 + 0.5*2) = 1.8
    u.apply(1, b, g, 0.1, false);  // 2 - 0.1 = 1.9
    BOOST_TEST(a[0] == 1.8f, boost::test_tools::tolerance(1e-6f));
    BOOST_TEST(b[0] == 1.9f, boost::test_tools::tolerance(1e-6f));
}

BOOST_AUTO_TEST_CASE(nesterov_by_hand) {
    SgdSettings s;
    s.momentum = 0.5;
    s.weightDecay = 0;
    s.nesterov = true;
    InnerUpdate u(s);
    u.reset({1});
    Vector w = Vector::Constant(1, 1), g = Vector::Constant(1, 2);
    // v = 2; d = g + mu v = 3; w = 1 - 0.1*3
    u.apply(0, w, g, 0.1, true);
    BOOST_TEST(w[0] == 0.7f, boost::test_tools::tolerance(1e-6f));
}

BOOST_AUTO_TEST_CASE(adam_first_steps_by_hand) {
    AdamSettings a;
    a.eps = 1e-8;
    InnerUpdate u(a);
    u.reset({2});
    Vector w = Vector::Zero(2), g(2);
    g << 3, -0.01f;
    // first step: mhat = g, shat = g^2, d = g/|g| = sign(g)
    u.apply(0, w, g, 0.1, true);
    BOOST_TEST(w[0] == -0.1f, boost::test_tools::tolerance(1e-5f));
    BOOST_TEST(w[1] == 0.1f, boost::test_tools::tolerance(1e-4f));
    // second step with g2: m = 0.9*0.1*g + 0.1*g2 ... checked against the formula in double
    Vector g2(2);
    g2 << 1, 1;
    const double m = 0.9 * 0.1 * 3 + 0.1 * 1, s = 0.999 * 0.001 * 9 + 0.001 * 1;
    const double d = (m / (1 - 0.81)) / (std::sqrt(s / (1 - 0.999 * 0.999)) + 1e-8);
    u.apply(0, w, g2, 0.1, true);
    BOOST_TEST(w[0] == static_cast<float>(-0.1 - 0.1 * d), boost::test_tools::tolerance(1e-5f));
}

BOOST_AUTO_TEST_CASE(sgd_converges_on_unconstrained_least_squares) {
    auto p = plantedProblem(40, 8, 3);
    const Vector xls = p.solve();
    Sgd opt(plainSgd(0.9), train(300, 0.1));
    const TrainReport r = opt.optimize(p);
    BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(Status::MaxEpochs));
    BOOST_TEST((p.x().value - xls).norm() < 1e-4f);
}

BOOST_AUTO_TEST_CASE(minibatch_sgd_converges_with_cosine_schedule) {
    auto p = plantedProblem(80, 6, 4, /*rowsPerBatch=*/10);
    const Vector xls = p.solve();
    TrainSettings t = train(200, 0.05);
    t.lr = LrSchedule::cosine(0.05, 200);
    Sgd opt(plainSgd(0.9), t);
    opt.optimize(p);
    BOOST_TEST((p.x().value - xls).norm() < 1e-2f);
}

BOOST_AUTO_TEST_CASE(adam_converges_on_unconstrained_least_squares) {
    auto p = plantedProblem(40, 8, 5);
    const Vector xls = p.solve();
    TrainSettings t = train(1500, 0.02);
    t.lr = LrSchedule::cosine(0.02, 1500);
    Sgd opt(AdamSettings{}, t);
    opt.optimize(p);
    BOOST_TEST((p.x().value - xls).norm() < 1e-3f);
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================== schedules

BOOST_AUTO_TEST_SUITE(lr_schedule)

BOOST_AUTO_TEST_CASE(constant_multistep_cosine) {
    BOOST_TEST(LrSchedule::constant(0.3).lr(100) == 0.3);
    const LrSchedule s = LrSchedule::multiStep(0.01, {15, 25}, 0.1);
    BOOST_TEST(s.lr(0) == 0.01, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(s.lr(14) == 0.01, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(s.lr(15) == 0.001, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(s.lr(25) == 0.0001, boost::test_tools::tolerance(1e-12));
    const LrSchedule c = LrSchedule::cosine(0.1, 10, 0.01);
    BOOST_TEST(c.lr(0) == 0.1, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(c.lr(5) == 0.055, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(c.lr(10) == 0.01, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(c.lr(20) == 0.01, boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(parse_round_trips) {
    for (const std::string spec : {"constant:0.5", "step:0.01:15,25:0.1", "cosine:0.1:30:0"})
        BOOST_TEST(LrSchedule::parse(spec).str() == spec);
    BOOST_TEST(LrSchedule::parse("0.25").lr(3) == 0.25);
    BOOST_CHECK_EXCEPTION(LrSchedule::parse("linear:0.1"), std::invalid_argument,
                          testing::messageContains("cannot parse 'linear:0.1'"));
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================== settings validation

namespace {
struct Rule {
    std::string expected;  // substring naming the field
    std::function<void()> make;
};

std::vector<Rule> validationRules() {
    auto sgd = [](auto mutate) {
        return [mutate] {
            SgdSettings s;
            mutate(s);
            s.validate();
        };
    };
    auto adam = [](auto mutate) {
        return [mutate] {
            AdamSettings s;
            mutate(s);
            s.validate();
        };
    };
    auto rpr = [](auto mutate) {
        return [mutate] {
            RprSettings s;
            mutate(s.fractions, s.stageEpochs);
            Rpr r(ternary(), Granularity::PerTensor, s);  // the constructor validates
        };
    };
    auto inc = [](auto mutate) {
        return [mutate] {
            IncrementalSettings s;
            mutate(s.fractions, s.stageEpochs);
            Incremental i([] { return std::make_unique<TestSte>(ternary()); },
                          Granularity::PerTensor, s);
        };
    };
    using Fractions = std::vector<double>;
    auto admm = [](auto mutate) {
        return [mutate] {
            AdmmSettings s;
            mutate(s);
            Admm a(ternary(), Granularity::PerTensor, s);  // the constructor validates
        };
    };
    return {
        {"SgdSettings::validate(): momentum must be in [0, 1) (got -0.1)",
         sgd([](SgdSettings& s) { s.momentum = -0.1; })},
        {"momentum must be in [0, 1) (got 1)", sgd([](SgdSettings& s) { s.momentum = 1; })},
        {"weightDecay must be >= 0 (got -1)", sgd([](SgdSettings& s) { s.weightDecay = -1; })},
        {"nesterov needs momentum > 0", sgd([](SgdSettings& s) {
             s.momentum = 0;
             s.nesterov = true;
         })},
        {"AdamSettings::validate(): beta1 must be in [0, 1)",
         adam([](AdamSettings& s) { s.beta1 = 1; })},
        {"beta2 must be in [0, 1)", adam([](AdamSettings& s) { s.beta2 = -0.5; })},
        {"eps must be > 0 (got 0)", adam([](AdamSettings& s) { s.eps = 0; })},
        {"AdamSettings::validate(): weightDecay must be >= 0",
         adam([](AdamSettings& s) { s.weightDecay = -0.1; })},
        {"TrainSettings::validate(): maxEpochs must be >= 0 (got -1)",
         [] {
             TrainSettings t;
             t.maxEpochs = -1;
             Sgd s({}, t);
         }},
        {"LrSchedule::validate(): lr must be > 0 (got -0.1)", [] { LrSchedule::constant(-0.1); }},
        {"gamma must be > 0 (got 0)", [] { LrSchedule::multiStep(0.1, {3}, 0); }},
        {"milestones must be increasing (got 5 then 3)",
         [] { LrSchedule::multiStep(0.1, {5, 3}); }},
        {"milestones must be >= 0 (got -2)", [] { LrSchedule::multiStep(0.1, {-2}); }},
        {"totalEpochs must be >= 1 (got 0)", [] { LrSchedule::cosine(0.1, 0); }},
        {"lrMin must be in [0, lr] (got 0.5)", [] { LrSchedule::cosine(0.1, 10, 0.5); }},
        {"AdmmSettings::validate(): rho must be > 0 (got -0.001)",
         admm([](AdmmSettings& s) { s.rho = -0.001; })},
        {"rhoGrowth must be >= 1 (got 0.5)", admm([](AdmmSettings& s) { s.rhoGrowth = 0.5; })},
        {"rhoMax must be >= rho", admm([](AdmmSettings& s) { s.rhoMax = 1e-6; })},
        {"rhoList must not be empty", admm([](AdmmSettings& s) {
             s.rhoSchedule = RhoSchedule::Explicit;
         })},
        {"rhoList entries must be > 0 (got 0)", admm([](AdmmSettings& s) {
             s.rhoSchedule = RhoSchedule::Explicit;
             s.rhoList = {1, 0};
         })},
        {"outerEvery must be >= 1 (got 0)", admm([](AdmmSettings& s) { s.outerEvery = 0; })},
        {"outerEverySteps must be >= 0 (got -1)",
         admm([](AdmmSettings& s) { s.outerEverySteps = -1; })},
        {"epsAbs must be >= 0 (got -1)", admm([](AdmmSettings& s) { s.epsAbs = -1; })},
        {"epsRel must be >= 0 (got -1)", admm([](AdmmSettings& s) { s.epsRel = -1; })},
        {"maxOuter must be >= 0 (got -3)", admm([](AdmmSettings& s) { s.maxOuter = -3; })},
        {"AdmmSettings::validate(): coupling must be in (0, 1) (got 1)",
         admm([](AdmmSettings& s) { s.coupling = 1; })},
        {"AdmmSettings::validate(): couplingGrowth must be >= 1, or 0 for auto (got 0.5)",
         admm([](AdmmSettings& s) { s.couplingGrowth = 0.5; })},
        {"AdmmSettings::validate(): couplingMax must be in [coupling, 1) (got 0.01)",
         admm([](AdmmSettings& s) { s.couplingMax = 0.01; })},
        {"AdmmSettings::validate(): finalEpochs must be >= 0 (got -1)",
         admm([](AdmmSettings& s) { s.finalEpochs = -1; })},
        {"AdmmSettings::validate(): dualStep must be in [0, 1.618) (got 2)",
         admm([](AdmmSettings& s) { s.dualStep = 2; })},
        {"AdmmSettings::validate(): lossAt projection needs the plain W-step",
         admm([](AdmmSettings& s) { s.lossAt = LossAt::Projection; })},
        {"SteSettings::validate(): latentClip must be >= 0 (got -1)",
         [] {
             SteSettings s;
             s.latentClip = -1;
             Ste ste([] { return std::make_unique<TestSte>(ternary()); }, s);
         }},
        {"BlockSets::BlockSets(): the default projection must not be null",
         [] { BlockSets s(nullptr); }},
        {"MethodConfig::validate(): projection entry 'fc1=ternary:exact'",
         [] {
             MethodConfig c;
             c.method = "ttq";
             c.projection = "fc1=ternary:exact";
             c.validate();
         }},
        {"Admm::Admm(): projection must not be null",
         [] { Admm a(nullptr, Granularity::PerTensor); }},
        {"Ste::Ste(): quantizer factory must not be empty", [] { Ste s(QuantizerFactory{}); }},
        {"Optimizer::setLearningRate(): lr must be > 0 (got 0)",
         [] { Sgd().setLearningRate(0); }},
        {"EarlyStop::EarlyStop(): patience must be >= 1 (got 0)", [] { EarlyStop e(0); }},
        {"TimeLimit::TimeLimit(): seconds must be > 0 (got -1)", [] { TimeLimit t(-1); }},
        {"EarlyStop::EarlyStop(): minDelta must be >= 0 (got -1)", [] { EarlyStop e(3, -1); }},
        {"PrintProgress::PrintProgress(): every must be >= 1 (got 0)",
         [] {
             std::ostringstream o;
             PrintProgress p(o, 0);
         }},
        {"SteSettings::validate(): trainableLr must be >= 0 (got -1)",
         [] {
             SteSettings s;
             s.trainableLr = -1;
             Ste ste([] { return std::make_unique<TestSte>(ternary()); }, s);
         }},
        {"SteSettings::validate(): bitPenalty must be >= 0 (got -0.1)",
         [] {
             SteSettings s;
             s.bitPenalty = -0.1;
             Ste ste([] { return proj::makeGtc(); }, s);
         }},
        {"Ste::Ste(): bitPenalty > 0 needs a quantizer with a bit penalty (gtc); 'ttq' has none",
         [] {
             SteSettings s;
             s.bitPenalty = 0.1;
             Ste ste([] { return proj::makeTtq(0.05f); }, s);
         }},
        {"MethodConfig::validate(): granularity must be tensor for gtc",
         [] {
             MethodConfig m;
             m.method = "gtc";
             m.granularity = Granularity::PerFilter;
             m.validate();
         }},
        {"MethodConfig::validate(): gtcThetaLr must be >= 0 (got -1)",
         [] {
             MethodConfig m;
             m.method = "gtc";
             m.gtcThetaLr = -1;
             m.validate();
         }},
        {"MethodConfig::validate(): gtcDistillWeight must be >= 0 (got -1)",
         [] {
             MethodConfig m;
             m.method = "gtc";
             m.gtcDistillWeight = -1;
             m.validate();
         }},
        {"MethodConfig::validate(): gtcDistillTemperature must be > 0 (got 0)",
         [] {
             MethodConfig m;
             m.method = "gtc";
             m.gtcDistillTemperature = 0;
             m.validate();
         }},
        {"SteSettings::validate(): bitPenaltyEvery must be >= 0 (got -1)",
         [] {
             SteSettings s;
             s.bitPenaltyEvery = -1;
             Ste ste([] { return proj::makeGtc(); }, s);
         }},
        {"SteSettings::validate(): bitPenaltyDecay must be in (0, 1] (got 2)",
         [] {
             SteSettings s;
             s.bitPenaltyDecay = 2;
             Ste ste([] { return proj::makeGtc(); }, s);
         }},
        {"SteSettings::validate(): distillWeight must be >= 0 (got -1)",
         [] {
             SteSettings s;
             s.jointTeacher = true;
             s.distillWeight = -1;
             Ste ste([] { return proj::makeGtc(); }, s);
         }},
        {"SteSettings::validate(): distillTemperature must be > 0 (got 0)",
         [] {
             SteSettings s;
             s.distillTemperature = 0;
             Ste ste([] { return proj::makeGtc(); }, s);
         }},
        {"SteSettings::validate(): distillWeight 0.5 needs jointTeacher",
         [] {
             SteSettings s;
             s.distillWeight = 0.5;
             Ste ste([] { return proj::makeGtc(); }, s);
         }},
        {"softCrossEntropy(): needs n, k >= 1 (got n = 0, k = 3)",
         [] {
             const float x[3] = {0, 0, 0};
             softCrossEntropy(x, x, 0, 3, 1.0, 1.0, nullptr, nullptr);
         }},
        {"softCrossEntropy(): temperature must be > 0 (got 0)",
         [] {
             const float x[3] = {0, 0, 0};
             softCrossEntropy(x, x, 1, 3, 0.0, 1.0, nullptr, nullptr);
         }},
        {"ProjectedSgd::ProjectedSgd(): projection must not be null",
         [] { ProjectedSgd p(nullptr, Granularity::PerTensor); }},
        {"RprSettings::validate(): fractions must not be empty",
         rpr([](Fractions& f, Index&) { f.clear(); })},
        {"RprSettings::validate(): fractions must be in (0, 1] (got 1.5)",
         rpr([](Fractions& f, Index&) { f = {0.5, 1.5}; })},
        {"RprSettings::validate(): fractions must be non-decreasing (got ",
         rpr([](Fractions& f, Index&) { f = {0.9, 0.5}; })},
        {"RprSettings::validate(): stageEpochs must be > 0 (got 0)",
         rpr([](Fractions&, Index& e) { e = 0; })},
        {"IncrementalSettings::validate(): fractions must not be empty",
         inc([](Fractions& f, Index&) { f.clear(); })},
        {"IncrementalSettings::validate(): fractions must be in (0, 1] (got 0)",
         inc([](Fractions& f, Index&) { f = {0.0, 1.0}; })},
        {"IncrementalSettings::validate(): fractions must be non-decreasing (got ",
         inc([](Fractions& f, Index&) { f = {0.9, 0.5}; })},
        {"IncrementalSettings::validate(): stageEpochs must be > 0 (got 0)",
         inc([](Fractions&, Index& e) { e = 0; })},
        {"IncrementalSettings::validate(): trainableLr must be > 0 (got 0)",
         [] {
             IncrementalSettings s;
             s.trainableLr = 0;
             Incremental i([] { return std::make_unique<TestSte>(ternary()); },
                           Granularity::PerTensor, s);
         }},
        {"Incremental::Incremental(): quantizer factory must not be empty",
         [] { Incremental i(QuantizerFactory{}, Granularity::PerTensor); }},
        {"Ste::Ste(): quantizer factory returned nullptr",
         [] { Ste s([] { return std::unique_ptr<proj::Quantizer>(); }); }},
        {"Rpr::Rpr(): projection must not be null", [] { Rpr r(nullptr, Granularity::PerTensor); }},
        {"LeastSquares::LeastSquares(): A must be non-empty (got 0 x 3)",
         [] { problems::LeastSquares f(Eigen::MatrixXf(0, 3), Vector(0)); }},
        {"b has 2 elements, A's rows has 3",
         [] { problems::LeastSquares f(Eigen::MatrixXf::Ones(3, 2), Vector::Ones(2)); }},
        {"A has a non-finite entry",
         [] {
             Eigen::MatrixXf A = Eigen::MatrixXf::Ones(3, 2);
             A(1, 1) = std::numeric_limits<float>::quiet_NaN();
             problems::LeastSquares f(A, Vector::Ones(3));
         }},
        {"b has a non-finite entry at index 1",
         [] {
             Vector b = Vector::Ones(3);
             b[1] = std::numeric_limits<float>::infinity();
             problems::LeastSquares f(Eigen::MatrixXf::Ones(3, 2), b);
         }},
        {"rowsPerBatch must be >= 0 (got -1)",
         [] { problems::LeastSquares f(Eigen::MatrixXf::Ones(3, 2), Vector::Ones(3), -1); }},
    };
}
}  // namespace

BOOST_AUTO_TEST_SUITE(settings)

BOOST_DATA_TEST_CASE(validate_names_the_field, bdata::xrange(validationRules().size()), i) {
    const std::vector<Rule> rules = validationRules();
    BOOST_TEST_INFO("rule: " << rules[i].expected);
    BOOST_CHECK_EXCEPTION(rules[i].make(), std::invalid_argument,
                          testing::messageContains(rules[i].expected));
}

/// Checks whose `where` is a function's parameter (so not a settings validate() or a
/// constructor), by the start of their call.
const char* const kUnattributed[] = {
    // LatentBlocks (src/optim/latent_blocks.cpp), the component of Ste, Rpr and Incremental:
    // messages name its owner at run time; the owners' rules above cover its constructor checks
    "fail(where, \"quantizer factory must not be empty\")",
    "fail(where, \"quantizer factory returned nullptr\")",
    "fail(where, \"the quantizer factory returned nullptr\")",
    "requireFinite(blocks[i]->value, where.c_str()",
    "fail(where, \"state '\" + prefix + \"' has quantizer '\"",  // load()
    // validateSchedule() of RprSettings and IncrementalSettings (both covered above)
    "fail(w, \"fractions must not be empty\")",
    "fail(w, TERN_MSG(\"fractions must be in (0, 1]",
    "fail(w, \"fractions must be non-decreasing",
    "requirePositive(static_cast<double>(stageEpochs), w, \"stageEpochs\")",
};

/// Every check of a settings validate() or a constructor in the optim sources (found by reading
/// them, tests/testing/source_rules.hpp) has a rule in validationRules() that throws its
/// message: a check added without a rule fails here, naming its file and line.
BOOST_AUTO_TEST_CASE(every_rule_is_covered) {
    std::vector<std::string> thrown;
    for (const Rule& r : validationRules()) try {
            r.make();
        } catch (const std::invalid_argument& e) {
            thrown.push_back(e.what());
        }
    const std::string src(TERN_SOURCE_DIR);
    const auto checks = testing::sourceRules({src + "/src/optim", src + "/include/tern/optim"});
    std::size_t validations = 0;
    bool sawRho = false;
    for (const testing::SourceRule& c : checks) {
        BOOST_TEST_CONTEXT(c.file << ":" << c.line << ": " << c.call) {
            if (c.where.empty()) {  // might be a validation: known ones only
                const bool known = std::any_of(
                    std::begin(kUnattributed), std::end(kUnattributed),
                    [&](const char* start) { return c.call.rfind(start, 0) == 0; });
                BOOST_TEST(known, "cannot tell the function of this check: write its `where` as a "
                                  "literal or a const char* declared before it, or add it to "
                                  "kUnattributed if it checks no settings");
                continue;
            }
            if (!testing::isValidation(c.where)) continue;
            ++validations;
            sawRho |= c.where == "AdmmSettings::validate()" && c.text == "rho must be > 0";
            BOOST_TEST(!c.text.empty(), "the message of a validation must start with a literal "
                                        "naming the field");
            const std::string prefix = c.where + ": " + c.text;
            const bool covered =
                std::any_of(thrown.begin(), thrown.end(),
                            [&](const std::string& m) { return m.rfind(prefix, 0) == 0; });
            BOOST_TEST(covered, "no rule in validationRules() throws \"" << prefix << "...\"");
        }
    }
    // the sources were found and read: a scanner that finds nothing would cover everything
    BOOST_TEST(validations >= 35u);  // 39 when written
    BOOST_TEST(sawRho);
}

BOOST_AUTO_TEST_CASE(source_rules_reads_the_checks) {
    const std::string code = R"src(
void AdmmSettings::validate() const {
    const char* where = "AdmmSettings::validate()";
    requirePositive(rho, where, "rho");  // fail(where, "not this")
    if (rhoGrowth < 1)
        fail(where, TERN_MSG("rhoGrowth must be >= 1 (got " << rhoGrowth << ")"));
    /* fail("X::validate()", "nor this") */ const int n = 1'000;
    if (rng.fail()) log("fail("in a string", "x")");
    requireInRange(static_cast<double>(k), 0, f(1, 2), "Foo::Foo()", "k");
}
void Foo::load() { fail("Foo::load()", "state '" + prefix + "' is bad"); fail(w, msg); }
Foo::Foo(int every) {
    if (every < 1) throw std::invalid_argument(TERN_MSG("Foo::Foo(): every must be >= 1"));
})src";
    const auto r = testing::sourceRulesInText(code, "x.cpp");
    BOOST_REQUIRE_EQUAL(r.size(), 6u);
    BOOST_TEST(r[0].where == "AdmmSettings::validate()");
    BOOST_TEST(r[0].text == "rho must be > 0");
    BOOST_TEST(r[0].line == 4);
    BOOST_TEST(r[1].text == "rhoGrowth must be >= 1 (got ");
    BOOST_TEST(r[1].line == 6);
    BOOST_TEST(r[2].where == "Foo::Foo()");
    BOOST_TEST(r[2].text == "k must be in [");
    BOOST_TEST(r[3].where == "Foo::load()");
    BOOST_TEST(r[3].text == "state '");
    BOOST_TEST(r[4].where.empty());  // fail(w, msg): neither is a literal
    BOOST_TEST(r[4].text.empty());
    BOOST_TEST(r[4].call.rfind("fail(w, msg);", 0) == 0);
    BOOST_TEST(r[5].where == "Foo::Foo()");
    BOOST_TEST(r[5].text == "every must be >= 1");
    BOOST_TEST(testing::isValidation("AdmmSettings::validate()"));
    BOOST_TEST(testing::isValidation("EarlyStop::EarlyStop()"));
    BOOST_TEST(!testing::isValidation("Foo::load()"));
    BOOST_TEST(!testing::isValidation("Optimizer::setLearningRate()"));
}

BOOST_AUTO_TEST_CASE(defaults_are_valid) {
    BOOST_CHECK_NO_THROW(SgdSettings{}.validate());
    BOOST_CHECK_NO_THROW(AdamSettings{}.validate());
    BOOST_CHECK_NO_THROW(AdmmSettings{}.validate());
    BOOST_CHECK_NO_THROW(TrainSettings{}.validate());
    BOOST_CHECK_NO_THROW(SteSettings{}.validate());
}

BOOST_AUTO_TEST_CASE(make_optimizer_by_name) {
    // Every registered method and alias builds its optimizer, whose name() is what a checkpoint
    // stores, and whose levels()/freeScale() come from its projection or quantizer.
    const std::map<std::string, std::tuple<std::string, int, bool>> expected{
        {"fp", {"sgd", 0, false}},    {"bc", {"ste", 2, false}},   {"bwn", {"ste", 2, true}},
        {"twn", {"ste", 3, true}},    {"ttq", {"ste", 3, true}},   {"admm", {"admm", 3, true}},
        {"pgd", {"pgd", 3, true}},    {"rpr", {"rpr", 3, true}},   {"inc", {"inc", 3, true}},
        {"gtc", {"ste", 509, false}}};  // 0 and +-2^k, k in [-126, 127]; bits() counts the used
    BOOST_TEST(methodNames() == (std::vector<std::string>{"fp", "bc", "bwn", "twn", "ttq", "gtc",
                                                          "admm", "pgd", "rpr", "inc"}));
    for (const MethodInfo& info : methods()) {
        BOOST_TEST_INFO("method " << info.name);
        BOOST_REQUIRE(expected.count(info.name) == 1u);
        const auto& [optName, levels, freeScale] = expected.at(info.name);
        for (const std::string& name : [&] {
                 std::vector<std::string> all{info.name};
                 all.insert(all.end(), info.aliases.begin(), info.aliases.end());
                 return all;
             }()) {
            MethodConfig m;
            m.method = name;
            BOOST_CHECK_NO_THROW(m.validate());
            const auto opt = makeOptimizer(m);
            BOOST_TEST(opt->name() == optName);
            BOOST_TEST(opt->levels() == levels);
            BOOST_TEST(opt->freeScale() == freeScale);
            BOOST_TEST(&findMethod(name) == &info);
        }
    }
    MethodConfig m;
    m.method = "adm";
    BOOST_CHECK_EXCEPTION(makeOptimizer(m), std::invalid_argument,
                          testing::messageContains("unknown method 'adm'; known: fp, bc, bwn, "));
    m.method = "admm";
    m.projection = "ternery:exact";
    BOOST_CHECK_EXCEPTION(m.validate(), std::invalid_argument, testing::messageContains("ternery"));
    // levels and scale follow the projection, not the method's name
    m.projection = "pow2,bits=2,scale=one";
    BOOST_TEST(makeOptimizer(m)->levels() == 5);
    BOOST_TEST(!makeOptimizer(m)->freeScale());
    // one set of ranges: the settings struct's own
    m.projection = "";
    m.admm.rhoMax = m.admm.rho / 2;
    BOOST_CHECK_EXCEPTION(m.validate(), std::invalid_argument,
                          testing::messageContains("AdmmSettings::validate(): rhoMax"));
    m = MethodConfig{};
    m.method = "ttq";
    m.ttqThreshold = 1;
    BOOST_CHECK_EXCEPTION(m.validate(), std::invalid_argument,
                          testing::messageContains("thresholdFraction"));
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================== the loop

BOOST_AUTO_TEST_SUITE(loop)

BOOST_AUTO_TEST_CASE(max_epochs) {
    auto p = plantedProblem(30, 5, 1);
    ProjectedSgd opt(ternary(), Granularity::PerTensor, plainSgd(), train(7, 0.1));
    const TrainReport r = opt.optimize(p);
    BOOST_TEST(statusName(r.status) == "max-epochs");
    BOOST_TEST(r.epochs == 7);
    BOOST_TEST(r.steps == 7);
    BOOST_TEST(r.history.size() == 7u);
    BOOST_TEST(r.finalLoss == r.history.back().loss);
    BOOST_TEST(std::isnan(r.history.back().primalRes));
}

BOOST_AUTO_TEST_CASE(admm_converges_with_tolerances) {
    auto p = plantedProblem(40, 6, 2);
    AdmmSettings a;
    a.rho = 0.05;
    a.rhoGrowth = 1.2;
    a.rhoMax = 2;  // the W-step needs lr * (L + rho) < 2
    a.epsAbs = 1e-4;
    a.epsRel = 1e-3;
    Admm opt(ternary(), Granularity::PerTensor, a, plainSgd(0.5), train(2000, 0.2));
    const TrainReport r = opt.optimize(p);
    BOOST_TEST(statusName(r.status) == "converged");
    BOOST_TEST(r.epochs < 2000);
    BOOST_TEST(opt.converged());
    BOOST_TEST(r.history.back().primalRes <= 1e-4 * std::sqrt(6.0) + 1e-3 * p.x().value.norm());
}

BOOST_AUTO_TEST_CASE(admm_max_outer_ends_the_run) {
    auto p = plantedProblem(40, 6, 2);
    AdmmSettings a;
    a.maxOuter = 4;
    a.outerEvery = 2;
    Admm opt(ternary(), Granularity::PerTensor, a, plainSgd(), train(100, 0.1));
    const TrainReport r = opt.optimize(p);
    BOOST_TEST(statusName(r.status) == "max-epochs");
    BOOST_TEST(r.epochs == 8);
    BOOST_TEST(opt.outerIterations() == 4);
}

BOOST_DATA_TEST_CASE(huge_lr_diverges_without_throwing,
                     bdata::make({"sgd", "pgd", "admm", "admm-no-eg", "ste"}), method) {
    auto p = plantedProblem(30, 5, 3);
    const std::string m = method;
    std::unique_ptr<Optimizer> opt;
    if (m == "sgd") opt = std::make_unique<Sgd>(plainSgd(0.9), train(50, 1e6));
    if (m == "pgd")
        opt = std::make_unique<ProjectedSgd>(ternary(), Granularity::PerTensor,
                                             plainSgd(0.9), train(50, 1e6));
    if (m == "admm" || m == "admm-no-eg") {
        AdmmSettings a;
        a.extragradient = m == "admm";
        opt = std::make_unique<Admm>(ternary(), Granularity::PerTensor, a, plainSgd(0.9),
                                     train(50, 1e6));
    }
    if (m == "ste")
        opt = std::make_unique<Ste>(  // identity backward: nothing stops the latent
            [] { return proj::makeSte(ternary(), Granularity::PerTensor, std::nullopt); },
            SteSettings{}, plainSgd(0.9), train(50, 1e6));
    TrainReport r;
    BOOST_CHECK_NO_THROW(r = opt->optimize(p));
    BOOST_TEST(statusName(r.status) == "diverged");
    BOOST_TEST(opt->diverged());
    BOOST_TEST(r.epochs < 50);
}

BOOST_AUTO_TEST_CASE(callbacks_stop_the_run) {
    auto p = plantedProblem(30, 5, 4);
    Admm opt(ternary(), Granularity::PerTensor, {}, plainSgd(), train(50, 0.1));
    int seen = 0;
    auto stopAt3 = std::make_shared<OnEpoch>([&](const Optimizer&, Objective&, const EpochStats& s) {
        ++seen;
        return s.epoch == 2;
    });
    const TrainReport r = opt.optimize(p, {stopAt3});
    BOOST_TEST(statusName(r.status) == "stopped");
    BOOST_TEST(r.epochs == 3);
    BOOST_TEST(seen == 3);
    // deployed at the end: x = G
    BOOST_TEST(bitEqual(p.x().value, opt.G(0)));
}

BOOST_AUTO_TEST_CASE(step_hook_stops_mid_epoch) {
    auto p = plantedProblem(40, 5, 4, /*rowsPerBatch=*/10);
    class StopAfter final : public Callback {
    public:
        bool stepTaken(Optimizer&, Objective&, Index step, double) override {
            return step >= 6;
        }
    };
    Sgd opt(plainSgd(), train(10, 0.01));
    const TrainReport r = opt.optimize(p, {std::make_shared<StopAfter>()});
    BOOST_TEST(statusName(r.status) == "stopped");
    BOOST_TEST(r.steps == 6);
    BOOST_TEST(r.epochs == 1);
}

BOOST_AUTO_TEST_CASE(early_stop_after_patience) {
    // a flat loss: PGD with a tiny step rounds back to (nearly) the same point every time
    auto p = plantedProblem(30, 5, 5);
    ProjectedSgd opt(ternary(), Granularity::PerTensor, plainSgd(), train(100, 1e-7));
    auto early = std::make_shared<EarlyStop>(3, 1e-3);
    const TrainReport r = opt.optimize(p, {early});
    BOOST_TEST(statusName(r.status) == "stopped");
    BOOST_TEST(r.epochs == 4);  // best at epoch 0, then 3 without improvement
    BOOST_TEST(early->best() == r.history.front().loss);
}

BOOST_AUTO_TEST_CASE(time_limit_stops) {
    auto p = plantedProblem(30, 5, 5);
    Sgd opt(plainSgd(), train(1000000, 1e-3));
    const TrainReport r = opt.optimize(p, {std::make_shared<TimeLimit>(0.05)});
    BOOST_TEST(statusName(r.status) == "stopped");
    BOOST_TEST(r.epochs < 1000000);
}

BOOST_AUTO_TEST_CASE(print_progress_and_csv_log) {
    auto p = plantedProblem(30, 5, 6);
    const std::string dir = testing::tempDir("optim-csv");
    const std::string csv = dir + "/log.csv";
    std::ostringstream out;
    Admm opt(ternary(), Granularity::PerTensor, {}, plainSgd(), train(4, 0.1));
    opt.optimize(p, {std::make_shared<PrintProgress>(out, 2), std::make_shared<CsvLog>(csv)});
    const std::string text = out.str();
    BOOST_TEST(text.find("admm epoch 2/4 loss") != std::string::npos);
    BOOST_TEST(text.find("admm epoch 4/4") != std::string::npos);
    BOOST_TEST(text.find("epoch 3/4") == std::string::npos);
    BOOST_TEST(text.find("rho") != std::string::npos);
    BOOST_TEST(text.find("finished: max-epochs") != std::string::npos);
    std::ifstream in(csv);
    std::string line;
    int lines = 0;
    std::getline(in, line);
    BOOST_TEST(line == "epoch,loss,lr,seconds,primal_res,dual_res,rho,flip_ratio,sparsity");
    while (std::getline(in, line)) ++lines;
    BOOST_TEST(lines == 4);
    std::filesystem::remove_all(dir);
    BOOST_CHECK_EXCEPTION(CsvLog("/nonexistent-dir/x.csv"), std::runtime_error,
                          testing::messageContains("/nonexistent-dir/x.csv"));
}

BOOST_AUTO_TEST_CASE(external_loop_with_own_schedule) {
    auto p = plantedProblem(40, 5, 7, 10);
    Admm opt(ternary(), Granularity::PerTensor, {}, plainSgd(0.9), train(1, 0.1));
    opt.begin(p);
    for (Index e = 0; e < 3; ++e) {
        opt.setLearningRate(0.1 / static_cast<double>(e + 1));
        p.shuffle(opt.rng());
        for (Index b = 0; b < p.numBatches(); ++b) BOOST_TEST(std::isfinite(opt.step(p, b)));
        const EpochStats s = opt.endEpoch(p, e);
        BOOST_TEST(s.lr == 0.1 / static_cast<double>(e + 1));
        BOOST_TEST(s.epoch == e);
        {
            ScopedDeploy d(opt, p);
            BOOST_TEST(bitEqual(p.x().value, opt.G(0)));
        }
        BOOST_TEST(bitEqual(p.x().value, opt.W(0)));
    }
    BOOST_TEST(opt.epoch() == 3);
    BOOST_TEST(opt.steps() == 12);
    BOOST_CHECK_EXCEPTION(opt.step(p, 4), std::invalid_argument,
                          testing::messageContains("batch must be in [0, 4) (got 4)"));
    problems::LeastSquares other = plantedProblem(40, 5, 7, 10);
    BOOST_CHECK_EXCEPTION(opt.step(other, 0), std::invalid_argument,
                          testing::messageContains("call begin(f)"));
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================== ADMM bookkeeping

BOOST_AUTO_TEST_SUITE(admm_state)

BOOST_AUTO_TEST_CASE(begin_sets_G_to_projection_and_U_to_zero) {
    auto p = plantedProblem(30, 6, 8);
    const Vector w0 = p.x().value;
    Admm opt(ternary(), Granularity::PerTensor);
    opt.begin(p);
    Vector expected(6);
    ternary()->project(w0, expected);
    BOOST_TEST(bitEqual(opt.G(0), expected));
    BOOST_TEST(opt.U(0).isZero());
    BOOST_TEST(opt.rho() == AdmmSettings{}.rho);
}

BOOST_AUTO_TEST_CASE(rescale_brings_small_weights_to_a_fixed_scale_set) {
    // Weights far below the levels {-1, 0, 1}: without the rescale G = P(W) is all zero.
    auto p = plantedProblem(30, 40, 8);
    p.x().value *= 0.01f;
    const Vector w0 = p.x().value;
    const std::shared_ptr<const proj::Projection> fixed = proj::makeProjection("ternary");
    Admm plain(fixed, Granularity::PerTensor);
    plain.begin(p);
    BOOST_TEST(plain.G(0).isZero());
    p.x().value = w0;
    AdmmSettings a;
    a.rescale = true;
    Admm scaled(fixed, Granularity::PerTensor, a);
    scaled.begin(p);
    const Scalar s = proj::bestScale(*fixed, w0);
    BOOST_TEST((p.x().value - w0 / s).cwiseAbs().maxCoeff() < 1e-5f);  // W /= s
    BOOST_TEST((scaled.G(0).array() != 0).count() > 10);
    BOOST_TEST(scaled.G(0).cwiseAbs().maxCoeff() == 1.0f);
}

BOOST_AUTO_TEST_CASE(pgd_rescale_brings_small_weights_to_a_fixed_scale_set) {
    // Same start as above: projected SGD without the rescale starts (and stays) at W = 0.
    auto p = plantedProblem(30, 40, 8);
    p.x().value *= 0.01f;
    const Vector w0 = p.x().value;
    const std::shared_ptr<const proj::Projection> fixed = proj::makeProjection("ternary");
    ProjectedSgd plain(fixed, Granularity::PerTensor, plainSgd(), train(1, 1e-3));
    plain.begin(p);
    BOOST_TEST(p.x().value.isZero());
    p.x().value = w0;
    PgdSettings s;
    s.rescale = true;
    ProjectedSgd scaled(fixed, Granularity::PerTensor, plainSgd(), train(1, 1e-3), s);
    scaled.begin(p);
    Vector expected(w0.size());
    fixed->project(w0 / proj::bestScale(*fixed, w0), expected);
    BOOST_TEST(bitEqual(p.x().value, expected));  // W = P(W / s)
    BOOST_TEST((p.x().value.array() != 0).count() > 10);
}

BOOST_AUTO_TEST_CASE(rescale_to_levels_per_filter_scales_each_filter) {
    // two filters at very different scales: each is divided by its own best scale
    Vector w = testing::randomVector(2 * 50, 4);
    w.head(50) *= 0.001f;
    w.tail(50) *= 30.0f;
    const Vector w0 = w;
    const auto fixed = proj::makeProjection("ternary");
    proj::rescaleToLevels(*fixed, w, Shape{2, 50}, Granularity::PerFilter);
    for (Index f = 0; f < 2; ++f) {
        const Scalar s = proj::bestScale(*fixed, w0.segment(f * 50, 50));
        BOOST_TEST((w.segment(f * 50, 50) - w0.segment(f * 50, 50) / s).cwiseAbs().maxCoeff() < 1e-5f);
        Vector z(50);
        fixed->project(w.segment(f * 50, 50), z);
        BOOST_TEST((z.array() != 0).count() > 10);
    }
    BOOST_CHECK_THROW(proj::rescaleToLevels(*fixed, w, Shape{3, 50}, Granularity::PerFilter),
                      std::invalid_argument);
}

BOOST_DATA_TEST_CASE(rho_times_U_is_continuous, bdata::make({0, 1, 2}), schedule) {
    auto p = plantedProblem(30, 6, 9);
    AdmmSettings a;
    a.rho = 0.01;
    a.rhoGrowth = 1.5;
    a.rhoMax = 0.05;
    if (schedule == 1) a.rhoSchedule = RhoSchedule::Constant;
    if (schedule == 2) {
        a.rhoSchedule = RhoSchedule::Explicit;
        a.rhoList = {0.01, 0.03, 0.02, 0.5};
    }
    Admm opt(ternary(), Granularity::PerTensor, a, plainSgd(), train(1, 0.1));
    opt.begin(p);
    for (int k = 0; k < 6; ++k) {
        for (int s = 0; s < 3; ++s) opt.step(p, 0);
        const double rhoOld = opt.rho();
        const Vector Uold = opt.U(0), W = opt.W(0);
        opt.outerIteration();
        const double rhoNew = opt.rho();
        // rho_new U_new = rho_old (U_old + W - G_new): the unscaled multiplier does not jump
        const Eigen::VectorXd yNew = rhoNew * opt.U(0).cast<double>();
        const Eigen::VectorXd yOld = rhoOld * (Uold + W - opt.G(0)).cast<double>();
        BOOST_TEST((yNew - yOld).norm() <= 1e-6 * (1 + yOld.norm()));
        double expected = rhoOld;
        if (schedule == 0) expected = std::min(rhoOld * 1.5, 0.05);
        if (schedule == 2) expected = std::min(a.rhoList[std::min<size_t>(k + 1, 3)], 0.05);
        BOOST_TEST(rhoNew == expected, boost::test_tools::tolerance(1e-12));
    }
}

BOOST_AUTO_TEST_CASE(residuals_and_counters) {
    auto p = plantedProblem(30, 6, 10);
    Admm opt(ternary(), Granularity::PerTensor, {}, plainSgd(), train(1, 0.1));
    opt.begin(p);
    BOOST_TEST(std::isnan(opt.primalResidual()));
    opt.step(p, 0);
    opt.outerIteration();
    BOOST_TEST(opt.primalResidual() == (opt.W(0) - opt.G(0)).norm(),
               boost::test_tools::tolerance(1e-5));
    BOOST_TEST(opt.outerIterations() == 1);
    BOOST_TEST(opt.flipRatio() >= 0.0);
    BOOST_TEST(opt.flipRatio() <= 1.0);
    const double zeros = static_cast<double>((opt.G(0).array() == 0).count()) / 6.0;
    BOOST_TEST(opt.sparsity() == zeros);
}

BOOST_AUTO_TEST_CASE(extragradient_passes_probe_then_commit) {
    TwoBlock f;
    Admm eg(ternary(), Granularity::PerTensor, {}, plainSgd(), train(2, 0.1));
    eg.optimize(f);
    BOOST_TEST(f.passes.size() == 4u);
    BOOST_TEST((f.passes[0] == Pass::Probe && f.passes[1] == Pass::Commit));
    TwoBlock g;
    AdmmSettings a;
    a.extragradient = false;
    Admm plain(ternary(), Granularity::PerTensor, a, plainSgd(), train(2, 0.1));
    plain.optimize(g);
    BOOST_TEST(g.passes.size() == 2u);
    BOOST_TEST((g.passes[0] == Pass::Commit && g.passes[1] == Pass::Commit));
}

BOOST_AUTO_TEST_CASE(extragradient_step_by_hand) {
    // f = 0.5||x - c||^2: g(W) = W - c + rho(W - G + U)
    TwoBlock f;
    f.x_->value << 0.3f, -0.2f, 0.9f, 0.1f;
    const Vector W0 = f.x_->value, u0 = f.u_->value;
    AdmmSettings a;
    a.rho = 0.5;
    Admm opt(ternary(), Granularity::PerTensor, a, plainSgd(), train(1, 0.1));
    opt.begin(f);
    const Vector G = opt.G(0);
    opt.step(f, 0);
    const float lr = 0.1f, rho = 0.5f;
    const Vector g1 = W0 - f.cx_ + rho * (W0 - G);
    const Vector Wp = W0 - lr * g1;
    const Vector g2 = Wp - f.cx_ + rho * (Wp - G);
    const Vector W1 = W0 - lr * g2;
    BOOST_TEST((f.x_->value - W1).norm() < 1e-6f);
    // the unconstrained block takes one plain step (momentum 0)
    BOOST_TEST((f.u_->value - (u0 - lr * (u0 - f.cu_))).norm() < 1e-6f);
}

BOOST_AUTO_TEST_CASE(loss_at_projection_step_by_hand) {
    // f = 0.5||x - c||^2, the gradient taken at Z = P(W + U): g = Z - c + rho (W - G + U)
    TwoBlock f;
    f.x_->value << 0.3f, -0.2f, 0.9f, 0.1f;
    const Vector W0 = f.x_->value;
    AdmmSettings a;
    a.rho = 0.5;
    a.extragradient = false;
    a.lossAt = LossAt::Projection;
    Admm opt(ternary(), Granularity::PerTensor, a, plainSgd(), train(1, 0.1));
    opt.begin(f);
    const float lr = 0.1f, rho = 0.5f;
    // step 1: U = 0, Z = P(W0) = G
    const Vector G0 = opt.G(0);
    opt.step(f, 0);
    const Vector W1 = W0 - lr * (G0 - f.cx_ + rho * (W0 - G0));
    BOOST_TEST((f.x_->value - W1).norm() < 1e-6f);  // the training point W is back in value
    BOOST_TEST(f.passes.size() == 1u);
    BOOST_TEST((f.passes[0] == Pass::Commit));
    // step 2 after an outer iteration: U != 0, Z = P(W1 + U) differs from G
    opt.outerIteration();
    const Vector G1 = opt.G(0), U1 = opt.U(0);
    BOOST_TEST(U1.norm() > 0);
    Vector Z(4);
    ternary()->project(W1 + U1, Z);
    BOOST_TEST(!bitEqual(Z, G1));
    opt.step(f, 0);
    const auto rho1 = static_cast<float>(opt.rho());  // grown after the outer iteration
    const Vector W2 = W1 - lr * (Z - f.cx_ + rho1 * (W1 - G1 + U1));
    BOOST_TEST((f.x_->value - W2).norm() < 1e-6f);
}

BOOST_AUTO_TEST_CASE(dual_step_scales_the_U_step) {
    // U += gamma0 (lr / lr0) (W - G): gamma0 = 0.5, lr 0.1 in epoch 0 and 0.01 from epoch 1
    for (const bool followsLr : {false, true}) {
        TwoBlock f;
        f.x_->value << 0.3f, -0.2f, 0.9f, 0.1f;
        AdmmSettings a;
        a.rhoSchedule = RhoSchedule::Constant;  // U is not rescaled by a rho change
        a.dualStep = 0.5;
        a.dualFollowsLr = followsLr;
        a.extragradient = false;
        TrainSettings t = train(2, 0.1);
        t.lr = LrSchedule::multiStep(0.1, {1}, 0.1);
        Admm opt(ternary(), Granularity::PerTensor, a, plainSgd(), t);
        std::vector<Vector> W, G, U;
        opt.optimize(f, {std::make_shared<OnEpoch>([&](const Optimizer&, Objective&, const EpochStats&) {
            W.push_back(opt.W(0));
            G.push_back(opt.G(0));
            U.push_back(opt.U(0));
            return false;
        })});
        BOOST_REQUIRE(U.size() == 2u);
        BOOST_TEST((U[0] - 0.5f * (W[0] - G[0])).norm() < 1e-6f);
        const float gamma1 = followsLr ? 0.05f : 0.5f;  // epoch 1 runs at lr 0.01
        BOOST_TEST((U[1] - (U[0] + gamma1 * (W[1] - G[1]))).norm() < 1e-6f);
    }
    // gamma0 = 0: no multiplier, G = P(W) (the quadratic penalty method)
    TwoBlock f;
    AdmmSettings a;
    a.dualStep = 0;
    Admm opt(ternary(), Granularity::PerTensor, a, plainSgd(), train(3, 0.1));
    opt.optimize(f);
    BOOST_TEST(opt.U(0).isZero());
}

BOOST_AUTO_TEST_CASE(loss_at_names_round_trip) {
    for (LossAt l : {LossAt::W, LossAt::Projection})
        BOOST_TEST((AdmmSettings::parseLossAt(lossAtName(l)) == l));
    BOOST_CHECK_EXCEPTION(AdmmSettings::parseLossAt("g"), std::invalid_argument,
                          testing::messageContains("unknown loss point 'g'; known: w, projection"));
}

BOOST_AUTO_TEST_CASE(loss_at_projection_evaluates_on_the_set) {
    // the objective sees only points of C (three values at most) while W stays float
    struct OnSet final : public Objective {
        OnSet() { x = &params.add("x", Shape{8}, true); }
        ParameterSet& parameters() override { return params; }
        Index numBatches() const override { return 2; }
        double evaluateWithGradient(Index, Pass) override {
            std::set<float> values(x->value.data(), x->value.data() + x->value.size());
            maxValues = std::max(maxValues, values.size());
            x->grad = x->value - Vector::LinSpaced(8, -1.3f, 0.7f);
            return 0.5 * x->grad.squaredNorm();
        }
        ParameterSet params;
        ParameterBlock* x = nullptr;
        size_t maxValues = 0;
    } f;
    f.x->value = testing::randomVector(8, 3, 0.5f);
    AdmmSettings a;
    a.extragradient = false;
    a.lossAt = LossAt::Projection;
    a.rho = 0.1;
    Admm opt(ternary(), Granularity::PerTensor, a, plainSgd(0.5), train(5, 0.1));
    opt.optimize(f);
    BOOST_TEST(f.maxValues <= 3u);
    opt.restore(f);
    std::set<float> w(f.x->value.data(), f.x->value.data() + f.x->value.size());
    BOOST_TEST(w.size() > 3u);  // W itself is not on the set
}

BOOST_AUTO_TEST_CASE(rescaled_start_is_preconditioned) {
    // alpha = 1: begin() divides W by s = bestScale(W); the W-step then multiplies the loss
    // gradient by 1/s^2: g = (W - c) / s^2 + rho (W - G + U)
    std::shared_ptr<const proj::Projection> one = proj::makeProjection("ternary:exact,scale=one");
    TwoBlock f;
    f.x_->value << 0.03f, -0.02f, 0.09f, 0.01f;
    const Vector W0 = f.x_->value;
    const float s = proj::bestScale(*one, W0);
    AdmmSettings a;
    a.rho = 0.5;
    a.rescale = true;
    a.extragradient = false;
    Admm opt(one, Granularity::PerTensor, a, plainSgd(), train(1, 0.1));
    opt.begin(f);
    BOOST_TEST((f.x_->value - W0 / s).norm() < 1e-6f);
    BOOST_TEST(opt.describe().find("gradient x 1/s^2") != std::string::npos);
    const Vector W = f.x_->value, G = opt.G(0);
    opt.step(f, 0);
    const Vector W1 = W - 0.1f * ((W - f.cx_) / (s * s) + 0.5f * (W - G));
    BOOST_TEST((f.x_->value - W1).norm() < 1e-5f * W1.norm());

    // without preconditioning: the plain gradient
    TwoBlock h;
    h.x_->value = W0;
    a.precondition = false;
    Admm plain(one, Granularity::PerTensor, a, plainSgd(), train(1, 0.1));
    plain.begin(h);
    plain.step(h, 0);
    BOOST_TEST((h.x_->value - (W - 0.1f * ((W - h.cx_) + 0.5f * (W - G)))).norm() < 1e-5f);

    // the metric travels with the state: a run begun elsewhere (another s) continues exactly
    a.precondition = true;
    TwoBlock r1, r2;
    r1.x_->value = W0;
    r2.x_->value = 3 * W0 + Vector::Constant(4, 0.05f);
    Admm first(one, Granularity::PerTensor, a, plainSgd(), train(3, 0.1));
    first.begin(r1);
    first.step(r1, 0);
    MemoryState state;
    first.save(state, "optim");
    Admm second(one, Granularity::PerTensor, a, plainSgd(), train(3, 0.1));
    second.begin(r2);
    second.load(state, "optim");
    r2.x_->value = r1.x_->value;
    r2.u_->value = r1.u_->value;
    first.step(r1, 0);
    second.step(r2, 0);
    BOOST_TEST(bitEqual(r1.x_->value, r2.x_->value));

    // projected SGD: V = W - lr (W - c) / s^2, W = P(V)
    TwoBlock q;
    q.x_->value = W0;
    PgdSettings ps;
    ps.rescale = true;
    ProjectedSgd pgd(one, Granularity::PerTensor, plainSgd(), train(1, 0.1), ps);
    pgd.begin(q);
    const Vector P0 = q.x_->value;  // P(W0 / s)
    pgd.step(q, 0);
    Vector expect(4);
    one->project(Vector(P0 - 0.1f * (P0 - q.cx_) / (s * s)), expect, Shape{4}, Granularity::PerTensor);
    BOOST_TEST(bitEqual(q.x_->value, expect));
}

BOOST_AUTO_TEST_CASE(deploy_restore_swap) {
    auto p = plantedProblem(30, 6, 11);
    Admm opt(ternary(), Granularity::PerTensor, {}, plainSgd(), train(5, 0.1));
    opt.optimize(p);
    BOOST_TEST(opt.deployed());
    BOOST_TEST(bitEqual(p.x().value, opt.G(0)));
    const Vector W = opt.W(0);
    opt.restore(p);
    BOOST_TEST(bitEqual(p.x().value, W));
    opt.restore(p);  // idempotent
    BOOST_TEST(bitEqual(p.x().value, W));
    opt.deploy(p);
    opt.deploy(p);
    BOOST_TEST(bitEqual(p.x().value, opt.G(0)));
}

BOOST_AUTO_TEST_CASE(weight_decay_spares_the_constrained_W_unless_asked) {
    auto run = [](double wd, bool decayConstrained) {
        auto p = plantedProblem(30, 6, 13);
        p.x().decay = true;  // a weight that decay would act on
        AdmmSettings a;
        a.rho = 0.05;
        a.decayConstrained = decayConstrained;
        SgdSettings s = plainSgd();
        s.weightDecay = wd;
        Admm opt(ternary(), Granularity::PerTensor, a, s, train(4, 0.05));
        opt.optimize(p);
        return Vector(opt.W(0));
    };
    BOOST_TEST(bitEqual(run(0.0, false), run(0.5, false)));  // decay has no effect on W
    BOOST_TEST(!bitEqual(run(0.0, true), run(0.5, true)));   // unless asked
}

BOOST_AUTO_TEST_CASE(coupling_schedule_follows_the_learning_rate) {
    auto p = plantedProblem(40, 5, 14, 10);  // 4 batches per epoch
    AdmmSettings a;
    a.rhoSchedule = RhoSchedule::Coupling;
    a.coupling = 0.2;
    a.couplingGrowth = 1.5;
    a.couplingMax = 0.5;
    SgdSettings s = plainSgd();
    s.momentum = 0.5;
    TrainSettings t = train(6, 0.05);
    t.lr = LrSchedule::multiStep(0.05, {3}, 0.1);
    Admm opt(ternary(), Granularity::PerTensor, a, s, t);
    // rho = (1 - mu) / lr (1 - (1 - coupling)^(1/S)), S = 4 steps per outer iteration
    auto expected = [](double coupling, double lr) {
        return 0.5 / lr * (1 - std::pow(1 - coupling, 0.25));
    };
    std::vector<double> rho, coupling;
    const TrainReport r = opt.optimize(p, {std::make_shared<OnEpoch>(
                                              [&](const Optimizer&, Objective&, const EpochStats& e) {
                                                  rho.push_back(e.rho);
                                                  coupling.push_back(opt.coupling());
                                                  return false;
                                              })});
    BOOST_TEST(r.epochs == 6);
    // after outer iteration k the coupling is min(0.2 * 1.5^k, 0.5); rho is set for the lr of
    // that moment (the drop at epoch 3 raises rho tenfold at the first step of epoch 3)
    const std::vector<double> c{0.3, 0.45, 0.5, 0.5, 0.5, 0.5};
    for (size_t e = 0; e < 6; ++e) {
        BOOST_TEST(coupling[e] == c[e], boost::test_tools::tolerance(1e-12));
        const double lr = e < 3 ? 0.05 : 0.005;
        BOOST_TEST(rho[e] == expected(c[e], lr), boost::test_tools::tolerance(1e-9));
    }
    // the pull per outer iteration is the same before and after the drop
    BOOST_TEST(rho[3] == 10 * rho[2], boost::test_tools::tolerance(1e-9));

    // an lr drop leaves the scaled dual U alone (ADMM on f / 10 with the same rho): U after the
    // outer iteration that ends epoch 2 equals U after the first step of epoch 3
    struct Watch final : Callback {
        explicit Watch(const Admm& a) : a_(a) {}
        bool stepTaken(Optimizer& o, Objective&, Index, double) override {
            if (o.epoch() == 3 && o.stepsInEpoch() == 1) afterFirstStep = a_.U(0);
            return false;
        }
        bool endEpoch(Optimizer&, Objective&, const EpochStats& e) override {
            if (e.epoch == 2) endOfEpoch2 = a_.U(0);
            return false;
        }
        const Admm& a_;
        Vector endOfEpoch2, afterFirstStep;
    };
    auto q = plantedProblem(40, 5, 14, 10);
    Admm again(ternary(), Granularity::PerTensor, a, s, t);
    auto watch = std::make_shared<Watch>(again);
    again.optimize(q, {watch});
    BOOST_TEST(watch->endOfEpoch2.size() == 5);
    BOOST_TEST(watch->endOfEpoch2.norm() > 0);
    BOOST_TEST(bitEqual(watch->endOfEpoch2, watch->afterFirstStep));

    // couplingFollowsLr = false: rho from the initial lr, blind to the drop
    a.couplingFollowsLr = false;
    auto q2 = plantedProblem(40, 5, 14, 10);
    Admm initial(ternary(), Granularity::PerTensor, a, s, t);
    std::vector<double> rho0;
    initial.optimize(q2, {std::make_shared<OnEpoch>([&](const Optimizer&, Objective&, const EpochStats& e) {
        rho0.push_back(e.rho);
        return false;
    })});
    BOOST_TEST(rho0.size() == 6u);
    for (size_t e = 0; e < rho0.size(); ++e)
        BOOST_TEST(rho0[e] == expected(c[e], 0.05), boost::test_tools::tolerance(1e-9));
    BOOST_TEST(initial.describe().find("rho from the initial lr") != std::string::npos);

    // couplingGrowth 0 (auto): couplingMax at the last outer iteration before the last lr drop
    // (epoch 4 of lr steps {2, 4}: K = 4 outer iterations, growth (0.5 / 0.2)^(1/3))
    a.couplingFollowsLr = true;
    a.couplingGrowth = 0;
    TrainSettings t2 = train(6, 0.05);
    t2.lr = LrSchedule::multiStep(0.05, {2, 4}, 0.1);
    auto q3 = plantedProblem(40, 5, 14, 10);
    Admm autoGrowth(ternary(), Granularity::PerTensor, a, s, t2);
    std::vector<double> kappa;
    autoGrowth.optimize(q3, {std::make_shared<OnEpoch>([&](const Optimizer&, Objective&, const EpochStats&) {
        kappa.push_back(autoGrowth.coupling());
        return false;
    })});
    const double g = std::pow(0.5 / 0.2, 1.0 / 3);
    const std::vector<double> want{0.2 * g, 0.2 * g * g, 0.5, 0.5, 0.5, 0.5};
    BOOST_TEST(kappa.size() == want.size());
    for (size_t e = 0; e < want.size() && e < kappa.size(); ++e)
        BOOST_TEST(kappa[e] == want[e], boost::test_tools::tolerance(1e-9));
}

BOOST_AUTO_TEST_CASE(final_phase_freezes_the_codes_and_trains_the_scale) {
    auto p = plantedProblem(40, 8, 15, 10);
    AdmmSettings a;
    a.rho = 0.05;
    a.finalEpochs = 3;
    Admm opt(ternary(), Granularity::PerTensor, a, plainSgd(), train(8, 0.02));
    std::vector<Vector> G;
    std::vector<double> flips;
    opt.optimize(p, {std::make_shared<OnEpoch>([&](const Optimizer&, Objective&, const EpochStats& e) {
        G.push_back(opt.G(0));
        flips.push_back(e.flipRatio);
        return false;
    })});
    BOOST_TEST(opt.finalPhase());
    BOOST_REQUIRE(G.size() == 8u);
    auto code = [](const Vector& x) {
        return Vector(x.unaryExpr([](Scalar v) { return Scalar((v > 0) - (v < 0)); }));
    };
    for (size_t e = 5; e < 8; ++e) {  // the final epochs: the same code, a new scale
        BOOST_TEST(bitEqual(code(G[e]), code(G[4])));
        BOOST_TEST(flips[e] == 0.0);
    }
    BOOST_TEST(!bitEqual(G[7], G[4]));  // the scale trained
    // the final phase trains the scale of the frozen code: the objective at G falls
    BOOST_TEST(p.objective(G[7]) < p.objective(G[4]));
    BOOST_TEST(bitEqual(p.x().value, G[7]));  // deployed at G
    // the values of G are {-a, 0, a}: three at most
    std::set<float> values(G[7].data(), G[7].data() + G[7].size());
    BOOST_TEST(values.size() <= 3u);
}

BOOST_AUTO_TEST_CASE(outer_every_steps) {
    auto p = plantedProblem(40, 5, 12, 10);
    AdmmSettings a;
    a.outerEverySteps = 2;
    Admm opt(ternary(), Granularity::PerTensor, a, plainSgd(), train(3, 0.05));
    opt.optimize(p);
    BOOST_TEST(opt.outerIterations() == 6);  // 3 epochs x 4 steps / 2
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================== STE

BOOST_AUTO_TEST_SUITE(ste)

BOOST_AUTO_TEST_CASE(box_clip_keeps_latent_in_range_and_deploy_swaps) {
    auto p = plantedProblem(30, 6, 13);
    p.x().value *= 5;  // start outside the box
    SteSettings s;
    s.latentClip = 1;
    Ste opt([] { return std::make_unique<TestSte>(proj::makeProjection("binary:scaled")); }, s,
            plainSgd(0.9), train(20, 2.0));
    int checked = 0;
    auto inBox = std::make_shared<OnEpoch>([&](const Optimizer& o, Objective&, const EpochStats&) {
        const auto& ste = dynamic_cast<const Ste&>(o);
        BOOST_TEST(ste.latent(0).cwiseAbs().maxCoeff() <= 1.0f);
        ++checked;
        return false;
    });
    opt.optimize(p, {inBox});
    BOOST_TEST(checked == 20);
    const Vector latent = opt.latent(0);
    BOOST_TEST(latent.cwiseAbs().maxCoeff() <= 1.0f);
    // deployed: value = Q(latent), two levels +-a
    Vector q(6);
    proj::makeProjection("binary:scaled")->project(latent, q);
    BOOST_TEST(bitEqual(p.x().value, q));
    opt.restore(p);
    BOOST_TEST(bitEqual(p.x().value, latent));
    {
        ScopedDeploy d(opt, p);
        BOOST_TEST(bitEqual(p.x().value, q));
    }
    BOOST_TEST(bitEqual(p.x().value, latent));
}

BOOST_AUTO_TEST_CASE(ttq_trainables_get_their_own_update) {
    auto p = plantedProblem(30, 6, 14);
    Ste opt([] { return proj::makeTtq(0.05f); }, {}, plainSgd(0.9), train(30, 0.05));
    opt.begin(p);
    ParameterSet* t = opt.quantizer(0).trainable();
    BOOST_REQUIRE(t != nullptr);
    const Vector wp0 = t->at("wp").value;
    const TrainReport r = opt.optimize(p);
    BOOST_TEST(statusName(r.status) == "max-epochs");
    BOOST_TEST(!bitEqual(t->at("wp").value, wp0));
    BOOST_TEST(r.history.back().loss < r.history.front().loss);
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================== exact resume

namespace {
struct Snapshot {
    Vector x;
    std::vector<EpochStats> history;
};

/// Runs `epochs` epochs straight (split = 0), or stops after `split` steps (a callback), saves,
/// loads into a fresh optimizer and objective and runs the rest. With 4 batches per epoch,
/// split = 8 stops at an epoch boundary and split = 6 in the middle of the second epoch.
Snapshot run(const std::function<std::unique_ptr<Optimizer>(Index)>& make, Index epochs,
             Index split, Index rowsPerBatch) {
    Snapshot out;
    auto p = plantedProblem(40, 6, 21, rowsPerBatch);
    std::unique_ptr<Optimizer> opt = make(epochs);
    if (split == 0) {
        out.history = opt->optimize(p).history;
        out.x = p.x().value;
        return out;
    }
    class StopAt final : public Callback {
    public:
        explicit StopAt(Index n) : n_(n) {}
        bool stepTaken(Optimizer&, Objective&, Index step, double) override {
            return step == n_;
        }

    private:
        Index n_;
    };
    const TrainReport r1 = opt->optimize(p, {std::make_shared<StopAt>(split)});
    BOOST_TEST(statusName(r1.status) == "stopped");
    BOOST_TEST(opt->steps() == split);
    out.history = r1.history;
    MemoryState state;
    opt->save(state, "optim");
    p.saveState(state, "problem");

    auto q = plantedProblem(40, 6, 21, rowsPerBatch);
    q.x().value.setConstant(123);  // overwritten by load()
    std::unique_ptr<Optimizer> fresh = make(epochs);
    fresh->begin(q);
    fresh->load(state, "optim");
    q.loadState(state, "problem");
    BOOST_TEST(fresh->steps() == split);
    const TrainReport r2 = fresh->optimize(q);
    out.history.insert(out.history.end(), r2.history.begin(), r2.history.end());
    out.x = q.x().value;
    return out;
}

/// Equal, with NaN == NaN.
bool same(double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); }
}  // namespace

BOOST_AUTO_TEST_SUITE(resume)

BOOST_DATA_TEST_CASE(save_load_continues_bit_identically,
                     bdata::make({"admm", "admm-no-eg", "admm-coupling-final", "admm-in-final",
                                  "pgd", "ste", "ttq", "gtc", "gtc-adam", "sgd-adam"}) *
                         bdata::make({8, 6}),
                     method, split) {
    const std::string m = method;
    auto make = [m](Index epochs) -> std::unique_ptr<Optimizer> {
        TrainSettings t = train(epochs, 0.05, 77);
        t.lr = LrSchedule::multiStep(0.05, {3}, 0.5);
        SgdSettings s;  // momentum 0.9, weight decay on (x has decay off, but the rule runs)
        if (m.rfind("admm", 0) == 0) {
            AdmmSettings a;
            a.rho = 0.01;
            a.extragradient = m == "admm";
            if (m == "admm-coupling-final") {  // split 8 and 6 are before the final epochs
                a.rhoSchedule = RhoSchedule::Coupling;
                a.finalEpochs = 3;
            }
            if (m == "admm-in-final") a.finalEpochs = 5;  // split 8 and 6 are inside it
            return std::make_unique<Admm>(ternary(), Granularity::PerTensor, a, s, t);
        }
        if (m == "pgd") return std::make_unique<ProjectedSgd>(ternary(), Granularity::PerTensor, s, t);
        if (m == "ste")
            return std::make_unique<Ste>([] { return proj::makeSte(ternary(), Granularity::PerTensor); },
                                         SteSettings{1.0}, s, t);
        if (m == "ttq") return std::make_unique<Ste>([] { return proj::makeTtq(0.05f); }, SteSettings{}, s, t);
        if (m.rfind("gtc", 0) == 0) {  // theta trained, bit penalty on
            SteSettings ste;
            ste.bitPenalty = 0.01;
            InnerSettings inner = s;
            if (m == "gtc-adam") inner = AdamSettings{};
            return std::make_unique<Ste>([] { return proj::makeGtc(); }, ste, inner, t);
        }
        return std::make_unique<Sgd>(AdamSettings{}, t);
    };
    const Snapshot straight = run(make, 6, 0, 10);
    const Snapshot resumed = run(make, 6, split, 10);
    BOOST_TEST(bitEqual(straight.x, resumed.x));
    BOOST_REQUIRE(straight.history.size() == 6u);
    BOOST_REQUIRE(resumed.history.size() == 6u);
    for (size_t e = 0; e < 6; ++e) {
        const EpochStats &a = straight.history[e], &b = resumed.history[e];
        BOOST_TEST_CONTEXT("epoch " << e) {
            BOOST_TEST(a.epoch == b.epoch);
            BOOST_TEST(a.loss == b.loss);
            BOOST_TEST(a.lr == b.lr);
            BOOST_TEST(same(a.primalRes, b.primalRes));
            BOOST_TEST(same(a.dualRes, b.dualRes));
            BOOST_TEST(same(a.rho, b.rho));
            BOOST_TEST(same(a.flipRatio, b.flipRatio));
            BOOST_TEST(same(a.sparsity, b.sparsity));
            BOOST_TEST(same(a.bits, b.bits));
        }
    }
}

BOOST_AUTO_TEST_CASE(load_checks_method_and_settings) {
    auto p = plantedProblem(30, 6, 22);
    Admm a(ternary(), Granularity::PerTensor, {}, plainSgd(), train(2, 0.1));
    a.optimize(p);
    MemoryState state;
    a.save(state, "optim");
    ProjectedSgd pgd(ternary(), Granularity::PerTensor, plainSgd(), train(2, 0.1));
    pgd.begin(p);
    BOOST_CHECK_EXCEPTION(pgd.load(state, "optim"), std::invalid_argument,
                          testing::messageContains("is for method 'admm', this optimizer is 'pgd'"));
    Admm other(proj::makeProjection("binary:scaled"), Granularity::PerTensor, {}, plainSgd(),
               train(2, 0.1));
    other.begin(p);
    BOOST_CHECK_EXCEPTION(other.load(state, "optim"), std::invalid_argument,
                          testing::messageContains("has the sets 'x=ternary:exact/tensor'"));
    Admm fresh(ternary(), Granularity::PerTensor);
    BOOST_CHECK_EXCEPTION(fresh.load(state, "optim"), std::invalid_argument,
                          testing::messageContains("call begin(f) before load()"));
    AdmmSettings atZ;
    atZ.extragradient = false;
    atZ.lossAt = LossAt::Projection;
    AdmmSettings plain;
    plain.extragradient = false;
    Admm plainRun(ternary(), Granularity::PerTensor, plain, plainSgd(), train(2, 0.1));
    plainRun.optimize(p);
    MemoryState plainState;
    plainRun.save(plainState, "optim");
    Admm z(ternary(), Granularity::PerTensor, atZ, plainSgd(), train(2, 0.1));
    z.begin(p);
    BOOST_CHECK_EXCEPTION(z.load(plainState, "optim"), std::invalid_argument,
                          testing::messageContains("has lossAt 'w', this optimizer has 'projection'"));
    Admm adam(ternary(), Granularity::PerTensor, {}, AdamSettings{}, train(2, 0.1));
    adam.begin(p);
    BOOST_CHECK_EXCEPTION(adam.load(state, "optim"), std::invalid_argument,
                          testing::messageContains("rule 'sgd'"));
}

BOOST_AUTO_TEST_SUITE_END()
