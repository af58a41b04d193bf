#pragma once
// tern's own Winograd convolution (internal to src/nn): F(m x m, r x r) for stride-1 square
// kernels, on channels-last (nhwc) activations and plain OIHW weights, with the forward, the
// backward-data and the backward-weights passes. oneDNN 2.6 has Winograd only for AVX-512 and
// only for 3x3 kernels; this one runs on any x86-64 (the transforms are compiled for
// AVX-512, AVX2 and baseline and picked at run time; the products go to oneDNN's sgemm).
//
// Per tile t of m x m outputs (input patch alpha x alpha, alpha = m + r - 1), channel c,
// output channel o and transform point p (alpha^2 of them):
//   forward:          V = B^T d B,  U = G g G^T,  M[p] = V[p] U[p],  y = A^T M A (+ bias)
//   backward weights: dM = A dy A^T,  dU[p] = V[p]^T dM[p],  dg = G^T dU G
//   backward data:    dV[p] = dM[p] U[p]^T,  dd = B dV B^T, added into the input's gradient
// The backward passes are the exact gradients of the forward as computed (the transforms
// are linear), so the three passes agree with each other to rounding.
#include "tern/core/types.hpp"

#include <vector>

namespace tern::nn::detail {

/// The Cook-Toom matrices of F(m, r) in one dimension, on the points 0, 1, -1, 2, -2, 1/2,
/// -1/2 (as many as needed) and infinity: y = A^T [(G g) .* (B^T d)] is the correlation
/// y_i = sum_k g_k d_{i+k}, i < m. Row-major: AT m x alpha, G alpha x r, BT alpha x alpha.
struct WinogradMatrices {
    int m = 0, r = 0, alpha = 0;
    std::vector<double> AT, G, BT;
};

/// The matrices for F(m, r); alpha = m + r - 1 must be 4, 6 or 8.
WinogradMatrices winogradMatrices(int m, int r);

/// The tile size tern uses for an r x r kernel on an output of outH x outW: the F(m, r) with
/// the fewest multiplications per output, tile waste at the borders included, among those with
/// alpha <= 8; 0 if none applies (r not in 2..7).
int winogradTile(Index r, Index outH, Index outW);

/// The instruction set of the transforms; Auto: the widest this CPU runs. Wide16 (tests only):
/// the AVX-512 kernels' 16-channel blocks compiled for baseline x86-64, so that their logic is
/// checked on CPUs without AVX-512.
enum class WinogradIsa { Auto, Baseline, Avx2, Avx512, Wide16 };

/// Selects the transforms' instruction set for every WinogradConv (tests run each path this
/// CPU can); a set the CPU lacks is lowered to the widest it has. Returns the one in use.
WinogradIsa setWinogradIsa(WinogradIsa isa);

/// Geometry of one convolution: input [n, h, w, c] (nhwc), weights [o, c, r, r], zero
/// padding `pad` on every side, stride 1, output [n, oh, ow, o] (nhwc).
struct WinogradShape {
    Index n = 0, c = 0, h = 0, w = 0, o = 0, r = 0, pad = 0, m = 0;
};

class WinogradConv {
public:
    explicit WinogradConv(const WinogradShape& shape);

    Index outH() const { return oh_; }
    Index outW() const { return ow_; }

    /// y = conv(x, w) + bias (bias may be null). Transforms the weights first.
    void forward(const float* x, const float* w, const float* bias, float* y);
    /// From dy (nhwc, the output's shape): dw (OIHW, overwritten), db (overwritten; may be
    /// null), dx (nhwc, overwritten; may be null). Uses the weights of the last forward() and
    /// x, the input of that forward.
    void backward(const float* x, const float* dy, float* dw, float* db, float* dx);

private:
    WinogradShape s_;
    int m_, alpha_;
    Index oh_, ow_, tilesH_, tilesW_, tilesPerImage_;
    Index imagesPerChunk_;
    std::vector<float> at_, g_, bt_;  // float copies of the matrices
    std::vector<float> u_, du_;       // [alpha^2][c][o]
    std::vector<float> v_, mm_, dv_;  // per chunk: [alpha^2][tiles][c], [..][o], [..][c]
};

}  // namespace tern::nn::detail
