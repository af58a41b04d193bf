#pragma once
// Shared test helpers: deterministic random data and exception-message predicates.
#include "tern/core/types.hpp"
#include "tern/optim/problems/least_squares.hpp"

#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>

namespace tern::nn {
class Network;
}

namespace tern::testing {

/// n standard-normal entries from a fixed seed.
inline Vector randomVector(Index n, std::uint64_t seed, float stddev = 1.0f) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> dist(0.0f, stddev);
    Vector v(n);
    for (Index i = 0; i < n; ++i) v[i] = dist(rng);
    return v;
}

/// Predicate for BOOST_CHECK_EXCEPTION: the message contains `needle`.
struct messageContains {
    std::string needle;
    explicit messageContains(std::string s) : needle(std::move(s)) {}
    bool operator()(const std::exception& e) const {
        return std::string(e.what()).find(needle) != std::string::npos;
    }
};

/// A fresh empty directory under the system temp dir, unique per call.
std::string tempDir(const std::string& tag);

/// Writes DIR/PREFIX-images-idx3-ubyte and DIR/PREFIX-labels-idx1-ubyte: a 3-class "bands"
/// problem (class c: a bright c-th horizontal band of a size x size image, plus noise).
void writeBandsIdx(const std::string& dir, const std::string& prefix, int count, int size,
                   std::uint64_t seed);

/// A temp directory holding a bands train split (240 images) and test split (90), 12x12, in
/// MNIST's file names; made once per test binary.
const std::string& bandsDataDir();

/// Planted ternary least squares: A ~ N(0,1) (m x n), b = A x* + noise * N(0,1), with
/// x* = 0.8 * code, code uniform in {-1,0,1}^n. x starts at zero (set it as the test needs).
optim::problems::LeastSquares plantedTernaryLsq(Index m, Index n, std::uint64_t seed,
                                                float noise = 0.05f, Index rowsPerBatch = 0);
/// The x* of plantedTernaryLsq(m, n, seed, ...) (same draws).
Vector plantedTernaryCode(Index m, Index n, std::uint64_t seed);

/// Every batch norm of `net` gets random gamma, running variance (uniform 0.5..1.5), beta and
/// running mean (uniform -0.3..0.3), drawn from `rng` layer by layer and channel by channel, so
/// that inference-mode BN is not the identity.
void randomizeBatchNorm(nn::Network& net, std::mt19937_64& rng);

/// Central differences (step 1e-3 relative) of net.evaluate(0) on `samplesPerBlock` random
/// coordinates of every parameter block, against net.evaluateWithGradient(0): at least
/// `minFraction` of them agree within relative `tol` (each must, when minFraction is 1), and
/// the sampled gradients point the same way (cosine >= 0.99). Boost.Test assertions
/// (testing/grad_check.cpp: linked into the Boost.Test executables only, not the fuzz tools).
void gradCheck(nn::Network& net, Index samplesPerBlock, double tol, double minFraction = 1.0);

}  // namespace tern::testing
