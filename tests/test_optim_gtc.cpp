// Generalized Ternary Connect trained through Ste (the registry's "gtc"): theta's update by hand
// and below zero (TTQ's scales keep their clamp), the bit penalty in the step's gradient and
// loss, the mean bits of EpochStats, and exact resume with the penalty on.
#define BOOST_TEST_MODULE optim_gtc
#include <boost/test/unit_test.hpp>

#include "testing/helpers.hpp"
#include "tern/core/state.hpp"
#include "tern/optim/callbacks.hpp"
#include "tern/optim/methods.hpp"
#include "tern/optim/problems/least_squares.hpp"
#include "tern/optim/ste.hpp"
#include "tern/proj/gtc.hpp"
#include "tern/proj/quantizer.hpp"

#include <cmath>
#include <cstring>
#include <random>

using namespace tern;
using namespace tern::optim;

namespace {

/// f(x) = 0.5 ||x - c||^2 on one constrained block x.
class Target final : public Objective {
public:
    Target(Vector x0, Vector c) : c_(std::move(c)) {
        x_ = &params_.add("x", Shape{x0.size()}, true);
        x_->value = std::move(x0);
    }
    ParameterSet& parameters() override { return params_; }
    Index numBatches() const override { return 1; }
    double evaluateWithGradient(Index, Pass) override {
        x_->grad = x_->value - c_;
        return 0.5 * static_cast<double>(x_->grad.squaredNorm());
    }
    ParameterBlock& x() { return *x_; }

private:
    ParameterSet params_;
    ParameterBlock* x_;
    Vector c_;
};

SgdSettings plainSgd() {
    SgdSettings s;
    s.momentum = 0;
    s.weightDecay = 0;
    return s;
}

TrainSettings train(Index epochs, double lr) {
    TrainSettings t;
    t.maxEpochs = epochs;
    t.lr = LrSchedule::constant(lr);
    return t;
}

/// The registry's gtc with the given inner rule, theta lr factor and bit penalty.
std::unique_ptr<Optimizer> makeGtc(const InnerSettings& inner, const TrainSettings& t,
                                   double thetaLr = 1, double bitPenalty = 0) {
    MethodConfig m;
    m.method = "gtc";
    m.inner = inner;
    m.gtcThetaLr = thetaLr;
    m.ste.bitPenalty = bitPenalty;
    return makeOptimizer(m, t);
}

proj::GtcQuantizer& gtcOf(Optimizer& opt) {
    return dynamic_cast<proj::GtcQuantizer&>(dynamic_cast<Ste&>(opt).quantizer(0));
}

/// Ternary least squares with a wide range of magnitudes: x*_i = +-2^u_i, u_i uniform in
/// [-7, 0] (8 exponents: 4 bits at theta = (0, 1)); b = A x* + noise; x starts at x*.
problems::LeastSquares wideRangeProblem(Index m, Index n, std::uint64_t seed,
                                        Index rowsPerBatch = 0) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0, 1);
    std::uniform_real_distribution<float> u(-7.0f, 0.0f);
    Eigen::MatrixXf A(m, n);
    for (Index i = 0; i < m; ++i)
        for (Index j = 0; j < n; ++j) A(i, j) = normal(rng);
    Vector x(n);
    for (Index j = 0; j < n; ++j) x[j] = std::copysign(std::exp2(u(rng)), normal(rng));
    x[0] = 1.0f;            // the range spans 2^-7 .. 2^0
    x[1] = -0.008f;  // just above the zero threshold eps * max|x| = 2^-7: exponent -7
    Vector b = A * x;
    for (Index i = 0; i < m; ++i) b[i] += 0.01f * normal(rng);
    problems::LeastSquares p(A, b, rowsPerBatch);
    p.x().value = x;
    return p;
}

bool bitEqual(const Vector& a, const Vector& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(Scalar) * a.size()) == 0;
}

}  // namespace

BOOST_AUTO_TEST_CASE(one_step_by_hand_moves_theta_below_zero) {
    // The target is 0.3 w0: every output is too large, so dL/dtheta1 > 0 and one SGD step takes
    // theta1 from 0 to -lr * thetaLr * dL/dtheta1 < 0 (a clamp at 0 would keep it at 0).
    const Vector w0 = testing::randomVector(64, 3);
    Target f(w0, 0.3f * w0);
    const double lr = 0.01, thetaLr = 0.5;
    auto opt = makeGtc(plainSgd(), train(1, lr), thetaLr);
    opt->begin(f);
    BOOST_TEST(opt->name() == "ste");

    // The step by hand, with a quantizer of its own
    proj::GtcQuantizer q;
    Vector wq(64), dW(64);
    q.forward(w0, wq, Shape{64});
    const Vector g = wq - 0.3f * w0;
    q.backward(w0, g, dW);
    const double d1 = q.trainable()->at("theta1").grad[0];
    const double d2 = q.trainable()->at("theta2").grad[0];
    BOOST_TEST(d1 > 0);

    const double loss = opt->step(f, 0);
    BOOST_TEST(loss == 0.5 * static_cast<double>(g.squaredNorm()),
               boost::test_tools::tolerance(1e-9));
    proj::GtcQuantizer& trained = gtcOf(*opt);
    BOOST_TEST(trained.theta1() == -lr * thetaLr * d1, boost::test_tools::tolerance(1e-5));
    BOOST_TEST(trained.theta2() == 1 - lr * thetaLr * d2, boost::test_tools::tolerance(1e-5));
    BOOST_TEST(trained.theta1() < 0.0f);
    const Vector& w1 = dynamic_cast<Ste&>(*opt).latent(0);
    BOOST_TEST((w1 - (w0 - static_cast<Scalar>(lr) * dW)).cwiseAbs().maxCoeff() <= 1e-6f);
}

BOOST_AUTO_TEST_CASE(theta_trains_below_zero_while_ttq_scales_stay_clamped) {
    // GTC: the target 0.3 w0 pulls theta1 negative and keeps it there (trainablesNonNegative()
    // is false), and the fit improves
    const Vector w0 = testing::randomVector(64, 4);
    Target f(w0, 0.3f * w0);
    auto opt = makeGtc(plainSgd(), train(40, 0.01));
    const TrainReport r = opt->optimize(f);
    BOOST_TEST(statusName(r.status) == "max-epochs");
    BOOST_TEST(gtcOf(*opt).theta1() < -0.5f);
    BOOST_TEST(r.history.back().loss < 0.1 * r.history.front().loss);

    // TTQ: a target of -1 everywhere drives Wp (the positive entries' value) below 0, where the
    // clamp holds it: Wp ends at exactly 0 (trainablesNonNegative() is true)
    Target g(w0, Vector::Constant(64, -1.0f));
    Ste ttq([] { return proj::makeTtq(0.05f); }, {}, plainSgd(), train(40, 0.01));
    ttq.optimize(g);
    const Vector& wp = ttq.quantizer(0).trainable()->at("wp").value;
    BOOST_TEST(wp.minCoeff() == 0.0f);
    BOOST_TEST(proj::TtqQuantizer().trainablesNonNegative());
    BOOST_TEST(!proj::GtcQuantizer().trainablesNonNegative());
}

BOOST_AUTO_TEST_CASE(the_step_loss_includes_the_bit_penalty) {
    // Same start, lambda = 0 and lambda = 0.01: the first step's losses differ by
    // lambda * 2^bits, and the gradients by the penalty's (theta2 moves towards 0 faster)
    auto p = wideRangeProblem(60, 24, 5);
    const Vector x0 = p.x().value;
    const double lambda = 0.01;
    auto plain = makeGtc(plainSgd(), train(1, 0.01));
    auto penalized = makeGtc(plainSgd(), train(1, 0.01), 1, lambda);
    plain->begin(p);
    const double l0 = plain->step(p, 0);
    const proj::GtcBits bits = gtcOf(*plain).bits();
    BOOST_TEST(bits.bits == 4);
    p.x().value = x0;
    penalized->begin(p);
    const double l1 = penalized->step(p, 0);
    BOOST_TEST(l1 - l0 == lambda * bits.cost, boost::test_tools::tolerance(1e-9));
    BOOST_TEST(gtcOf(*penalized).theta2() < gtcOf(*plain).theta2());
    BOOST_TEST(gtcOf(*penalized).theta1() == gtcOf(*plain).theta1());  // dP/dtheta1 = 0
    BOOST_TEST(!bitEqual(dynamic_cast<Ste&>(*penalized).latent(0),
                         dynamic_cast<Ste&>(*plain).latent(0)));
}

BOOST_AUTO_TEST_CASE(bit_penalty_lowers_the_bits) {
    // Wide-range least squares (8 exponents, 4 bits at the start), Adam as in the paper: without
    // the penalty the fit keeps 4 bits; a larger lambda buys fewer bits with a worse fit
    // (measured: lambda 0.1 -> 3 bits, lambda 1 -> 2 bits, theta2 from 1 towards 0).
    // EpochStats::bits is the quantizer's bit count at the epoch's end.
    auto run = [](double lambda, double& loss) {
        auto p = wideRangeProblem(60, 24, 6, 15);
        auto opt = makeGtc(AdamSettings{}, train(60, 0.01), 1, lambda);
        const TrainReport r = opt->optimize(p);
        BOOST_TEST(statusName(r.status) == "max-epochs");
        BOOST_TEST(r.history.back().bits == gtcOf(*opt).bits().bits);
        loss = p.objective(p.x().value);  // at the deployed point
        BOOST_TEST_MESSAGE("lambda " << lambda << ": bits " << r.history.back().bits << ", theta ("
                                     << gtcOf(*opt).theta1() << ", " << gtcOf(*opt).theta2()
                                     << "), f " << loss);
        return r.history.back().bits;
    };
    double f0 = 0, f1 = 0, f2 = 0;
    const double b0 = run(0, f0);
    const double b1 = run(0.1, f1);
    const double b2 = run(1, f2);
    BOOST_TEST(b0 == 4);
    BOOST_TEST(b1 <= 3);
    BOOST_TEST(b2 <= 2);
    BOOST_TEST(f0 < f1);  // the bits are paid for in fit
    BOOST_TEST(f1 < f2);

    // EpochStats::bits is NaN for quantizers that count no bits
    auto p = wideRangeProblem(60, 24, 6, 15);
    Ste ttq([] { return proj::makeTtq(0.05f); }, {}, plainSgd(), train(1, 0.01));
    BOOST_TEST(std::isnan(ttq.optimize(p).history.back().bits));
}

BOOST_AUTO_TEST_CASE(resume_with_the_penalty_is_exact) {
    // 3 epochs of 4 batches; stop after 6 steps (mid-epoch), save, load into a fresh optimizer
    // and problem, finish: theta, the latent, the deployed x and every epoch's stats equal the
    // straight run's, bit for bit (Adam's state of theta included).
    auto make = [] { return makeGtc(AdamSettings{}, train(3, 0.01), 1, 0.01); };
    auto straightP = wideRangeProblem(60, 24, 7, 15);
    auto straight = make();
    const TrainReport a = straight->optimize(straightP);

    auto p = wideRangeProblem(60, 24, 7, 15);
    auto first = make();
    class StopAt final : public Callback {
    public:
        bool stepTaken(Optimizer&, Objective&, Index step, double) override { return step == 6; }
    };
    const TrainReport r1 = first->optimize(p, {std::make_shared<StopAt>()});
    BOOST_TEST(statusName(r1.status) == "stopped");
    MemoryState state;
    first->save(state, "optim");
    p.saveState(state, "problem");

    auto q = wideRangeProblem(60, 24, 7, 15);
    q.x().value.setConstant(5);  // overwritten by load()
    auto fresh = make();
    fresh->begin(q);
    fresh->load(state, "optim");
    q.loadState(state, "problem");
    const TrainReport r2 = fresh->optimize(q);
    std::vector<EpochStats> b = r1.history;
    b.insert(b.end(), r2.history.begin(), r2.history.end());

    BOOST_TEST(bitEqual(q.x().value, straightP.x().value));
    BOOST_TEST(bitEqual(dynamic_cast<Ste&>(*fresh).latent(0),
                        dynamic_cast<Ste&>(*straight).latent(0)));
    BOOST_TEST(gtcOf(*fresh).theta1() == gtcOf(*straight).theta1());
    BOOST_TEST(gtcOf(*fresh).theta2() == gtcOf(*straight).theta2());
    BOOST_TEST(gtcOf(*straight).theta2() != 1.0f);  // theta trained
    BOOST_REQUIRE(a.history.size() == 3u);
    BOOST_REQUIRE(b.size() == 3u);
    for (size_t e = 0; e < 3; ++e) {
        BOOST_TEST(a.history[e].loss == b[e].loss);
        BOOST_TEST(a.history[e].bits == b[e].bits);
    }

    // A checkpoint of another eps is refused, naming it
    MethodConfig other;
    other.method = "gtc";
    other.inner = AdamSettings{};
    other.gtc.eps = 0.01f;
    auto wrong = makeOptimizer(other, train(3, 0.01));
    auto r = wideRangeProblem(60, 24, 7, 15);
    wrong->begin(r);
    BOOST_CHECK_EXCEPTION(wrong->load(state, "optim"), std::invalid_argument,
                          testing::messageContains("has quantizer 'gtc' for block 'x', this "
                                                   "optimizer has 'gtc,eps=0.01'"));
}
