// Per-block level sets (optim/block_sets.hpp): the per-layer projection spec, two blocks of one
// problem on two different sets (against brute force), the deployed set of every projecting
// method, the checks against the objective's blocks, and a resume with other sets refused.
#define BOOST_TEST_MODULE block_sets
#include <boost/test/unit_test.hpp>

#include "testing/helpers.hpp"
#include "tern/optim/admm.hpp"
#include "tern/optim/block_sets.hpp"
#include "tern/optim/methods.hpp"
#include "tern/optim/partial.hpp"
#include "tern/optim/problems/least_squares.hpp"
#include "tern/optim/projected_sgd.hpp"
#include "tern/optim/ste.hpp"
#include "tern/proj/projection.hpp"

#include <cmath>
#include <random>
#include <set>

using namespace tern;
using namespace tern::optim;

namespace {

/// 0.5/m ||A x - y||^2 with y = A x* + noise, x* = `scale` * code, from the least-squares x.
problems::LeastSquares planted(const Vector& code, float scale, std::uint64_t seed) {
    const Index m = 40, n = code.size();
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0, 1);
    Eigen::MatrixXf A(m, n);
    for (Index i = 0; i < m; ++i)
        for (Index j = 0; j < n; ++j) A(i, j) = normal(rng);
    Vector y = A * (scale * code);
    for (Index i = 0; i < m; ++i) y[i] += 0.02f * normal(rng);
    problems::LeastSquares p(A, y);
    p.x().value = p.solve();
    return p;
}

/// Two independent least-squares problems as one objective with blocks "a" and "b" (both
/// constrained): f(a, b) = f_a(a) + f_b(b).
class Pair final : public Objective {
public:
    Pair(problems::LeastSquares fa, problems::LeastSquares fb)
        : fa_(std::move(fa)), fb_(std::move(fb)) {
        a_ = &params_.add("a", Shape{fa_.x().value.size()}, true, false);
        b_ = &params_.add("b", Shape{fb_.x().value.size()}, true, false);
        a_->value = fa_.x().value;
        b_->value = fb_.x().value;
    }
    ParameterSet& parameters() override { return params_; }
    Index numBatches() const override { return 1; }
    double evaluateWithGradient(Index, Pass pass) override {
        fa_.x().value = a_->value;
        fb_.x().value = b_->value;
        const double loss = fa_.evaluateWithGradient(0, pass) + fb_.evaluateWithGradient(0, pass);
        a_->grad = fa_.x().grad;
        b_->grad = fb_.x().grad;
        return loss;
    }
    problems::LeastSquares fa_, fb_;
    ParameterBlock* a_;
    ParameterBlock* b_;

private:
    ParameterSet params_;
};

Vector code(std::initializer_list<float> v) {
    Vector c(static_cast<Index>(v.size()));
    Index i = 0;
    for (float x : v) c[i++] = x;
    return c;
}

/// a: ternary x* (0.5 {-1, 0, 1}); b: power-of-two x* (0.3 {0, +-1, +-2}).
Pair pairProblem() {
    return Pair(planted(code({1, 0, -1, 1, 0, -1}), 0.5f, 1),
                planted(code({1, -2, 0, 2, -1, 2}), 0.3f, 2));
}

const char* kPow2 = "pow2,bits=2,solver=exact";

/// A deployed block lies on its set: projecting it again changes nothing.
bool onSet(const std::string& spec, const Vector& v) {
    Vector z(v.size());
    proj::makeProjection(spec)->project(v, z);
    return (z - v).cwiseAbs().maxCoeff() <= 1e-6f * std::max(1.0f, v.cwiseAbs().maxCoeff());
}

std::set<float> magnitudes(const Vector& v) {
    std::set<float> m;
    for (Index i = 0; i < v.size(); ++i)
        if (v[i] != 0) m.insert(std::abs(v[i]));
    return m;
}

SgdSettings sgd() {
    SgdSettings s;
    s.momentum = 0.5;
    s.weightDecay = 0;
    return s;
}

TrainSettings loop(Index epochs) {
    TrainSettings t;
    t.maxEpochs = epochs;
    t.lr = LrSchedule::constant(0.1);
    return t;
}

AdmmSettings admmSettings() {
    AdmmSettings a;
    a.rho = 1e-2;
    a.rhoGrowth = 1.05;
    a.rhoMax = 3;
    a.outerEvery = 10;
    return a;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(spec)

BOOST_AUTO_TEST_CASE(a_plain_spec_is_one_default) {
    for (const std::string s : {"ternary:exact", "pow2,bits=3,solver=exact", "ternary:topk,fraction=0.3",
                                "ternary:exact,scale=one", "binary"}) {
        const ProjectionSpec p = parseProjectionSpec(s);
        BOOST_TEST(p.defaultSpec == s);
        BOOST_TEST(!p.perLayer());
        BOOST_TEST(!p.defaultGranularity.has_value());
    }
    BOOST_TEST(parseProjectionSpec("").defaultSpec.empty());
}

BOOST_AUTO_TEST_CASE(several_layers_keep_the_commas_of_their_specs) {
    const ProjectionSpec p =
        parseProjectionSpec("conv2=ternary:exact,fc1=pow2,bits=3,solver=exact,fc2=float");
    BOOST_TEST(p.defaultSpec.empty());
    BOOST_REQUIRE_EQUAL(p.layers.size(), 3u);
    BOOST_TEST(p.layers[0].name == "conv2");
    BOOST_TEST(p.layers[0].spec == "ternary:exact");
    BOOST_TEST(p.layers[1].name == "fc1");
    BOOST_TEST(p.layers[1].spec == "pow2,bits=3,solver=exact");
    BOOST_TEST(p.layers[2].isFloat());
    BOOST_TEST(p.hasSets());
    BOOST_TEST(parseProjectionSpec(p.str()).str() == p.str());  // canonical text parses back
}

BOOST_AUTO_TEST_CASE(the_issue_form_and_granularities) {
    // the issue's "fc1=pow2:bits=3": a ':' segment with '=' is an option
    const ProjectionSpec p = parseProjectionSpec("conv2=ternary:exact/filter,fc1=pow2:bits=3");
    BOOST_REQUIRE_EQUAL(p.layers.size(), 2u);
    BOOST_TEST(p.layers[0].spec == "ternary:exact");
    BOOST_TEST((p.layers[0].granularity == Granularity::PerFilter));
    BOOST_TEST(!p.layers[1].granularity.has_value());
    BOOST_TEST(proj::makeProjection(p.layers[1].spec)->name() ==
               proj::makeProjection("pow2,bits=3")->name());
    // a default first, with its own granularity
    const ProjectionSpec d = parseProjectionSpec("ternary:exact,scale=one/filter,fc1=float");
    BOOST_TEST(d.defaultSpec == "ternary:exact,scale=one");
    BOOST_TEST((d.defaultGranularity == Granularity::PerFilter));
    BOOST_REQUIRE_EQUAL(d.layers.size(), 1u);
    BOOST_TEST(!d.hasSets());
}

BOOST_AUTO_TEST_CASE(bad_specs_name_the_problem) {
    auto throws = [](const std::string& text, const std::string& what) {
        BOOST_CHECK_EXCEPTION(parseProjectionSpec(text), std::invalid_argument,
                              testing::messageContains(what));
    };
    throws("conv1=ternary:exact,conv1=float", "layer 'conv1' is given twice");
    throws("conv1=ternary:exact,,fc1=float", "empty entry");
    throws("conv1=ternary:exact,", "empty entry");
    throws("=ternary:exact", "has no layer name");
    throws("conv1=ternary:exact/row", "granularity 'row'");
    throws("fc1=pow3", "'pow3' is not a set");
    throws("fc1=float/filter", "layer 'fc1' is float: it has no granularity");
}

BOOST_AUTO_TEST_CASE(bits_per_weight_follow_the_export_codes) {
    BOOST_TEST(bitsPerWeight(proj::makeProjection("binary")->levels()) == 1);
    BOOST_TEST(bitsPerWeight(proj::makeProjection("ternary:exact")->levels()) == 2);
    for (int n = 1; n <= 8; ++n)  // pow2 with n exponents: a sign and |code| in 0..n
        BOOST_TEST(bitsPerWeight(proj::makeProjection("pow2,bits=" + std::to_string(n))->levels()) ==
                   1 + std::ceil(std::log2(n + 1.0)));
    BOOST_TEST(bitsPerWeight(proj::makeProjection("box")->levels()) == 32);
}

BOOST_AUTO_TEST_CASE(methods_without_a_projection_take_only_float_entries) {
    for (const std::string m : {"ttq", "gtc", "inc", "fp"}) {
        MethodConfig c;
        c.method = m;
        c.projection = "fc1=float";
        BOOST_CHECK_NO_THROW(c.validate());
        c.projection = "fc1=float,conv2=pow2:bits=3";
        BOOST_CHECK_EXCEPTION(c.validate(), std::invalid_argument,
                              testing::messageContains("has no projection"));
    }
    MethodConfig a;
    a.method = "admm";
    a.projection = "conv2=pow2:bits=3";  // the layers not named keep admm's ternary:exact
    BOOST_TEST(resolvedProjection(a) == "ternary:exact,conv2=pow2:bits=3");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(two_sets)

/// ADMM with a ternary block beside a power-of-two block: each deployed block lies on its own
/// set and, the problem being separable, reaches the brute-force optimum of its own part.
BOOST_AUTO_TEST_CASE(admm_puts_each_block_on_its_own_set) {
    Pair f = pairProblem();
    BlockSets sets(proj::makeProjection("ternary:exact"));
    sets.set("b", proj::makeProjection(kPow2));
    Admm opt(sets, admmSettings(), sgd(), loop(1500));
    opt.optimize(f);
    const Vector a = f.a_->value, b = f.b_->value;  // deployed: G
    BOOST_TEST(onSet("ternary:exact", a));
    BOOST_TEST(onSet(kPow2, b));
    BOOST_TEST(magnitudes(a).size() == 1u);
    // b uses its +-2 level, which a ternary set cannot hold
    const std::set<float> mb = magnitudes(b);
    BOOST_REQUIRE_EQUAL(mb.size(), 2u);
    BOOST_TEST(*mb.rbegin() == 2 * *mb.begin(), boost::test_tools::tolerance(1e-5f));
    const auto bfA = problems::bruteForce(f.fa_, {-1, 0, 1}, true);
    const auto bfB = problems::bruteForce(f.fb_, {-2, -1, 0, 1, 2}, true);
    BOOST_TEST(f.fa_.objective(a) <= bfA.objective * 1.001 + 1e-7);
    BOOST_TEST(f.fb_.objective(b) <= bfB.objective * 1.001 + 1e-7);
    BOOST_TEST(opt.deployedSet(0).name == "ternary:exact/tensor");
    BOOST_TEST(opt.deployedSet(1).name == proj::makeProjection(kPow2)->name() + "/tensor");
    BOOST_TEST(opt.levels() == 5);  // the most levels of the two sets
}

/// Every projecting method through the registry: "a=ternary:exact,b=pow2,..." deploys each
/// block on its set and reports it.
BOOST_AUTO_TEST_CASE(every_projecting_method_deploys_each_block_on_its_set) {
    for (const std::string m : {"admm", "pgd", "rpr", "bwn", "twn"}) {
        BOOST_TEST_CONTEXT("method " << m) {
            Pair f = pairProblem();
            MethodConfig c;
            c.method = m;
            c.projection = std::string("a=ternary:exact,b=") + kPow2;
            c.inner = sgd();
            c.admm = admmSettings();
            auto opt = makeOptimizer(c, loop(200));
            opt->optimize(f);
            BOOST_TEST(onSet("ternary:exact", f.a_->value));
            BOOST_TEST(onSet(kPow2, f.b_->value));
            BOOST_TEST(opt->deployedSet(0).levels == 3);
            BOOST_TEST(opt->deployedSet(1).levels == 5);
            BOOST_TEST(opt->deployedSet(1).name.find("pow2") == 0u);
        }
    }
}

BOOST_AUTO_TEST_CASE(the_sets_are_checked_against_the_blocks) {
    Pair f = pairProblem();
    BlockSets unknown(proj::makeProjection("ternary:exact"));
    unknown.set("c", proj::makeProjection(kPow2));
    Admm a(unknown, admmSettings(), sgd(), loop(1));
    BOOST_CHECK_EXCEPTION(a.begin(f), std::invalid_argument,
                          testing::messageContains("the set of 'c' names no block or layer; blocks: a, b"));
    BlockSets floatB(proj::makeProjection("ternary:exact"));
    floatB.set("b", nullptr);
    ProjectedSgd p(floatB, sgd(), loop(1));
    BOOST_CHECK_EXCEPTION(p.begin(f), std::invalid_argument,
                          testing::messageContains("block 'b' is constrained but its set is float"));
    f.b_->constrained = false;  // the objective's business: then b trains as a float block
    ProjectedSgd q(floatB, sgd(), loop(3));
    q.optimize(f);
    BOOST_TEST(!onSet("ternary:exact", f.b_->value));
    BOOST_TEST(q.deployedSet(1).name == "float");
    BOOST_CHECK_EXCEPTION(BlockSets(proj::makeProjection("binary")).set("", nullptr),
                          std::invalid_argument, testing::messageContains("must not be empty"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(resume)

/// A checkpoint records every block's set; a resume with other per-block sets is refused, one
/// with the same sets continues.
BOOST_AUTO_TEST_CASE(a_resume_with_other_sets_is_refused) {
    for (const std::string m : {"admm", "pgd", "rpr", "twn"}) {
        BOOST_TEST_CONTEXT("method " << m) {
            MethodConfig c;
            c.method = m;
            c.inner = sgd();
            c.projection = std::string("a=ternary:exact,b=") + kPow2;
            Pair f = pairProblem();
            auto opt = makeOptimizer(c, loop(3));
            opt->optimize(f);
            MemoryState state;
            opt->save(state, "optim");

            Pair g = pairProblem();
            auto same = makeOptimizer(c, loop(3));
            same->begin(g);
            BOOST_CHECK_NO_THROW(same->load(state, "optim"));

            c.projection = "a=ternary:exact,b=ternary:exact";  // b on another set
            Pair h = pairProblem();
            auto other = makeOptimizer(c, loop(3));
            other->begin(h);
            BOOST_CHECK_EXCEPTION(other->load(state, "optim"), std::invalid_argument,
                                  testing::messageContains("b"));
            c.projection = std::string("a=ternary:exact/filter,b=") + kPow2;  // a per filter
            Pair k = pairProblem();
            auto filter = makeOptimizer(c, loop(3));
            filter->begin(k);
            BOOST_CHECK_THROW(filter->load(state, "optim"), std::invalid_argument);
        }
    }
}

BOOST_AUTO_TEST_SUITE_END()
