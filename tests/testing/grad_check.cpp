// testing::gradCheck (testing/helpers.hpp): Boost.Test assertions, so apart from helpers.cpp,
// which the fuzz seed generator links without Boost.Test.
#include "testing/helpers.hpp"

#include "tern/core/parameter.hpp"
#include "tern/nn/network.hpp"

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <random>

namespace tern::testing {

void gradCheck(nn::Network& net, Index samplesPerBlock, double tol, double minFraction) {
    net.evaluateWithGradient(0, optim::Pass::Probe);
    std::mt19937_64 rng(7);
    Index agree = 0, total = 0;
    double dot = 0, nfd = 0, ng = 0;
    for (ParameterBlock* b : net.parameters().all()) {
        const Vector g = b->grad;
        std::uniform_int_distribution<Index> pick(0, b->value.size() - 1);
        for (Index s = 0; s < samplesPerBlock; ++s) {
            const Index i = pick(rng);
            const float v0 = b->value[i];
            const float h = 1e-3f * std::max(1.0f, std::abs(v0));
            b->value[i] = v0 + h;
            const double lp = net.evaluate(0);
            b->value[i] = v0 - h;
            const double lm = net.evaluate(0);
            b->value[i] = v0;
            const double fd = (lp - lm) / (2.0 * h);
            const double err = std::abs(fd - g[i]);
            const bool ok = err <= tol * std::max({std::abs(fd), std::abs(double(g[i])), 1e-2});
            if (!ok)
                BOOST_TEST_MESSAGE(b->name << "[" << i << "]: analytic " << g[i]
                                           << ", finite difference " << fd);
            if (minFraction >= 1.0) BOOST_TEST(ok, b->name << "[" << i << "]: analytic " << g[i]
                                                           << ", finite difference " << fd);
            agree += ok;
            ++total;
            dot += fd * g[i];
            nfd += fd * fd;
            ng += double(g[i]) * g[i];
        }
    }
    BOOST_TEST(double(agree) >= minFraction * double(total),
               agree << " of " << total << " coordinates agree");
    BOOST_TEST(dot / std::sqrt(nfd * ng) >= 0.99);
}

}  // namespace tern::testing
