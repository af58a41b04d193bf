// tern's own Winograd convolution (src/nn/winograd.hpp) against brute force.
#define BOOST_TEST_MODULE winograd
#include <boost/test/unit_test.hpp>

#include "winograd.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

using namespace tern;
using namespace tern::nn::detail;

namespace {

std::vector<float> randn(size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
}

/// max |a - b| / max |b|
double relErr(const std::vector<float>& a, const std::vector<double>& b) {
    double e = 0.0, s = 0.0;
    for (size_t i = 0; i < b.size(); ++i) {
        e = std::max(e, std::fabs(double(a[i]) - b[i]));
        s = std::max(s, std::fabs(b[i]));
    }
    return e / s;
}

/// Runs forward and backward on random data and compares output, weight, bias and input
/// gradients with the direct formulas in double.
void checkAgainstNaive(WinogradShape s, double tol) {
    WinogradConv conv(s);
    const Index oh = conv.outH(), ow = conv.outW(), r = s.r;
    BOOST_TEST_REQUIRE(oh == s.h + 2 * s.pad - r + 1);
    const auto x = randn(size_t(s.n * s.h * s.w * s.c), 1);
    const auto w = randn(size_t(s.o * s.c * r * r), 2);
    const auto b = randn(size_t(s.o), 3);
    const auto dy = randn(size_t(s.n * oh * ow * s.o), 4);
    std::vector<float> y(dy.size(), 7.0f), dw(w.size(), 7.0f), db(b.size(), 7.0f),
        dx(x.size(), 7.0f);  // 7: the passes must overwrite, not accumulate
    conv.forward(x.data(), w.data(), b.data(), y.data());
    conv.backward(x.data(), dy.data(), dw.data(), db.data(), dx.data());

    std::vector<double> ry(y.size()), rdw(w.size(), 0.0), rdb(b.size(), 0.0), rdx(x.size(), 0.0);
    for (Index n = 0; n < s.n; ++n)
        for (Index i = 0; i < oh; ++i)
            for (Index j = 0; j < ow; ++j)
                for (Index o = 0; o < s.o; ++o) {
                    const size_t yi = size_t(((n * oh + i) * ow + j) * s.o + o);
                    double acc = b[o];
                    const double g = dy[yi];
                    rdb[o] += g;
                    for (Index c = 0; c < s.c; ++c)
                        for (Index ki = 0; ki < r; ++ki)
                            for (Index kj = 0; kj < r; ++kj) {
                                const Index yy = i + ki - s.pad, xx = j + kj - s.pad;
                                if (yy < 0 || yy >= s.h || xx < 0 || xx >= s.w) continue;
                                const size_t xi = size_t(((n * s.h + yy) * s.w + xx) * s.c + c);
                                const size_t wi = size_t(((o * s.c + c) * r + ki) * r + kj);
                                acc += double(x[xi]) * w[wi];
                                rdw[wi] += double(x[xi]) * g;
                                rdx[xi] += double(w[wi]) * g;
                            }
                    ry[yi] = acc;
                }
    BOOST_TEST(relErr(y, ry) < tol);
    BOOST_TEST(relErr(dw, rdw) < tol);
    BOOST_TEST(relErr(db, rdb) < tol);
    BOOST_TEST(relErr(dx, rdx) < tol);
    // without dx: the same weight gradient
    std::vector<float> dw2(w.size(), 7.0f);
    conv.backward(x.data(), dy.data(), dw2.data(), nullptr, nullptr);
    BOOST_TEST(relErr(dw2, rdw) < tol);
}

}  // namespace

BOOST_AUTO_TEST_CASE(cook_toom_matrices_compute_the_1d_correlation) {
    for (int r = 1; r <= 7; ++r)
        for (int m = 1; m + r - 1 <= 8; ++m) {
            if (m + r - 1 < 4) continue;
            const WinogradMatrices t = winogradMatrices(m, r);
            const int a = t.alpha;
            BOOST_TEST_REQUIRE(a == m + r - 1);
            const auto g = randn(size_t(r), 10u + unsigned(m * 8 + r));
            const auto d = randn(size_t(a), 20u + unsigned(m * 8 + r));
            std::vector<double> gg(size_t(a), 0.0), bd(size_t(a), 0.0);
            for (int i = 0; i < a; ++i) {
                for (int k = 0; k < r; ++k) gg[i] += t.G[i * r + k] * g[k];
                for (int k = 0; k < a; ++k) bd[i] += t.BT[i * a + k] * d[k];
            }
            for (int i = 0; i < m; ++i) {
                double y = 0.0, ref = 0.0;
                for (int j = 0; j < a; ++j) y += t.AT[i * a + j] * gg[j] * bd[j];
                for (int k = 0; k < r; ++k) ref += double(g[k]) * d[i + k];
                BOOST_TEST(y == ref, boost::test_tools::tolerance(1e-9));
            }
        }
    BOOST_CHECK_THROW(winogradMatrices(6, 5), std::exception);  // alpha 10 > 8
}

BOOST_AUTO_TEST_CASE(tile_choice) {
    BOOST_TEST(winogradTile(5, 8, 8) == 4);   // LeNet-5 conv2: F(4x4, 5x5), 2x2 tiles
    BOOST_TEST(winogradTile(3, 32, 32) == 4); // ties go to the smaller alpha: F(4x4, 3x3)
    BOOST_TEST(winogradTile(3, 8, 8) == 4);
    BOOST_TEST(winogradTile(3, 2, 2) == 2);
    BOOST_TEST(winogradTile(9, 8, 8) == 0);   // alpha would exceed 8
}

BOOST_AUTO_TEST_CASE(forward_and_gradients_match_direct_convolution) {
    // every alpha 4..8, padding and none, tiles cut by the border, channel counts that fill
    // whole vectors and ones that do not
    checkAgainstNaive({2, 3, 9, 9, 4, 3, 1, 2}, 1e-5);    // F(2, 3), alpha 4
    checkAgainstNaive({2, 3, 9, 9, 4, 3, 1, 3}, 1e-5);    // alpha 5, 9 = 3 tiles of 3
    checkAgainstNaive({2, 16, 9, 7, 8, 3, 1, 4}, 1e-5);   // alpha 6, 9x7: border tiles
    checkAgainstNaive({2, 5, 10, 10, 3, 3, 1, 6}, 1e-5);  // alpha 8
    checkAgainstNaive({3, 20, 13, 13, 17, 3, 1, 0}, 1e-5);
    checkAgainstNaive({2, 32, 12, 12, 64, 5, 0, 4}, 1e-5);  // LeNet-5 conv2, F(4, 5)
    checkAgainstNaive({2, 5, 11, 11, 3, 5, 2, 2}, 1e-5);    // F(2, 5), padding 2
    checkAgainstNaive({1, 4, 6, 5, 2, 5, 0, 3}, 1e-5);      // output 2x1, one tile
}

BOOST_AUTO_TEST_CASE(every_instruction_set_this_cpu_runs) {
    // the baseline (SSE) and AVX2 transforms, and AVX-512 where the CPU has it, give the same
    // results as brute force; partial vectors included (5 and 20 channels); Wide16 runs the
    // AVX-512 kernels' 16-channel blocks on any CPU
    for (WinogradIsa want : {WinogradIsa::Baseline, WinogradIsa::Avx2, WinogradIsa::Avx512,
                             WinogradIsa::Wide16}) {
        const WinogradIsa got = setWinogradIsa(want);
        BOOST_TEST_MESSAGE("instruction set " << int(got));
        checkAgainstNaive({2, 5, 10, 10, 3, 3, 1, 6}, 1e-5);
        checkAgainstNaive({2, 20, 12, 12, 17, 5, 0, 4}, 1e-5);
        checkAgainstNaive({2, 16, 9, 7, 32, 3, 1, 4}, 1e-5);
    }
    setWinogradIsa(WinogradIsa::Auto);
}

BOOST_AUTO_TEST_CASE(processes_large_batches_in_chunks) {
    // 64 channels, 32x32: the working set of the batch exceeds one chunk, so forward and
    // backward run several chunks (the backward recomputes the input transform)
    checkAgainstNaive({10, 64, 32, 32, 64, 3, 1, 0}, 1e-5);
}

BOOST_AUTO_TEST_CASE(results_do_not_depend_on_the_thread_count) {
    // every output and gradient bit for bit the same on 1 and 2 threads (fixed work split and
    // summation order), over more pixels than one parallel chunk of the bias sum
    const WinogradShape s{40, 16, 32, 32, 24, 3, 1, 0};
    const auto x = randn(size_t(s.n * s.h * s.w * s.c), 5);
    const auto w = randn(size_t(s.o * s.c * 9), 6);
    const auto b = randn(size_t(s.o), 7);
    const auto dy = randn(size_t(s.n * s.h * s.w * s.o), 8);
    std::vector<float> out[2][4];
    const int before = omp_get_max_threads();
    for (int run = 0; run < 2; ++run) {
        omp_set_num_threads(run + 1);
        WinogradConv conv(s);
        std::vector<float> y(dy.size()), dw(w.size()), db(b.size()), dx(x.size());
        conv.forward(x.data(), w.data(), b.data(), y.data());
        conv.backward(x.data(), dy.data(), dw.data(), db.data(), dx.data());
        out[run][0] = y;
        out[run][1] = dw;
        out[run][2] = db;
        out[run][3] = dx;
    }
    omp_set_num_threads(before);
    for (int k = 0; k < 4; ++k) BOOST_TEST(out[0][k] == out[1][k], "result " << k);
}

BOOST_AUTO_TEST_CASE(rejects_bad_shapes) {
    BOOST_CHECK_THROW(WinogradConv({1, 1, 2, 2, 1, 3, 0, 0}), std::exception);  // input < kernel
    BOOST_CHECK_THROW(WinogradConv({1, 1, 10, 10, 1, 9, 0, 0}), std::exception);  // no tile
}
