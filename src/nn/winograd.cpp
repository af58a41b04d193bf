// tern's own Winograd convolution: see winograd.hpp.
#include "winograd.hpp"

#include "tern/core/error.hpp"
#include "tern/core/parallel.hpp"

#include <dnnl.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>

// The Vec values below never cross a non-inlined call, so the ABI note GCC gives for
// returning them from the inlined helpers does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace tern::nn::detail {

namespace {

/// Everything called from the per-ISA entry points below is inlined into them, so that it is
/// compiled for each one's instruction set (a call out would run baseline code).
#define TERN_WINO_INLINE inline __attribute__((always_inline))

/// Distance between the matrices of two transform points in V, M and dV: `floats` rounded up
/// to whole 64-byte lines, and to an odd number of them. The transforms touch all alpha^2
/// points of a tile at once; with a stride that is a multiple of 4 KiB those accesses would
/// all fall in one L1 set.
Index pointStride(Index floats) {
    Index lines = (floats + 15) / 16;
    if (lines % 2 == 0) ++lines;
    return lines * 16;
}

/// Coefficients (lowest power first) of prod_i (t - roots[i]).
std::vector<double> polyFromRoots(const std::vector<double>& roots) {
    std::vector<double> p{1.0};
    for (double a : roots) {
        std::vector<double> q(p.size() + 1, 0.0);
        for (size_t i = 0; i < p.size(); ++i) {
            q[i + 1] += p[i];
            q[i] -= a * p[i];
        }
        p = std::move(q);
    }
    return p;
}

/// C = op(A) op(B) + beta C (row-major) on oneDNN's sgemm, called inside OpenMP regions (so
/// one thread each): a failure is recorded in `status` and raised after the region.
void sgemm(char ta, char tb, Index m, Index n, Index k, const float* a, Index lda, const float* b,
           Index ldb, float beta, float* c, Index ldc, std::atomic<int>& status) {
    const dnnl_status_t st = dnnl_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
    if (st != dnnl_success) status.store(static_cast<int>(st));
}

void checkGemm(const std::atomic<int>& status) {
    if (status.load() != 0)
        fail("WinogradConv", "dnnl_sgemm failed with status " + std::to_string(status.load()));
}

/// A block of W channels as one value, W the ISA's vector width in floats (16 for AVX-512, 8
/// for AVX2, 4 for SSE): wider generic vectors made GCC split and spill them.
template <int W>
struct VecOf {
    typedef float type __attribute__((vector_size(W * sizeof(float))));
    /// for unaligned loads and stores of a full block from float data
    typedef float unaligned __attribute__((vector_size(W * sizeof(float)), aligned(4), may_alias));
};
template <int W>
using VecT = typename VecOf<W>::type;

/// The `valid` channels at `src` (the rest zero). A full block is one vector load; a partial
/// block (channel counts not a multiple of W) goes lane by lane.
template <int W>
TERN_WINO_INLINE VecT<W> loadVec(const float* src, int valid) {
    if (valid == W) return *reinterpret_cast<const typename VecOf<W>::unaligned*>(src);
    VecT<W> v = {};
    for (int q = 0; q < valid; ++q) v[q] = src[q];
    return v;
}

template <int W>
TERN_WINO_INLINE void storeVec(float* dst, const VecT<W>& v, int valid) {
    if (valid == W) {
        *reinterpret_cast<typename VecOf<W>::unaligned*>(dst) = v;
        return;
    }
    for (int q = 0; q < valid; ++q) dst[q] = v[q];
}

// ---- the transforms of one tile and one block of W channels, alpha A known at compile
// time. Matrices are row-major floats; `valid` is the number of real channels in the block.
// Each transform is a product X -> L X R^T of small matrices, done as two one-sided products.

/// out[i][k] = sum_{j < inner} M(i, j) in[j][k] for i < rows, k < cols, where
/// M(i, j) = mat[i * ld + j], or mat[j * ld + i] when Trans (M is the transpose of mat).
template <int A, int W, bool Trans>
TERN_WINO_INLINE void mulLeft(const float* mat, int ld, int rows, int inner, int cols,
                              const VecT<W> (&in)[A][A], VecT<W> (&out)[A][A]) {
    for (int i = 0; i < rows; ++i)
        for (int k = 0; k < cols; ++k) {
            VecT<W> acc = {};
            for (int j = 0; j < inner; ++j)
                acc += (Trans ? mat[j * ld + i] : mat[i * ld + j]) * in[j][k];
            out[i][k] = acc;
        }
}

/// out[i][k] = sum_{j < inner} in[i][j] M(k, j) for i < rows, k < cols (M as in mulLeft).
template <int A, int W, bool Trans>
TERN_WINO_INLINE void mulRight(const float* mat, int ld, int rows, int inner, int cols,
                               const VecT<W> (&in)[A][A], VecT<W> (&out)[A][A]) {
    for (int i = 0; i < rows; ++i)
        for (int k = 0; k < cols; ++k) {
            VecT<W> acc = {};
            for (int j = 0; j < inner; ++j)
                acc += (Trans ? mat[j * ld + k] : mat[k * ld + j]) * in[i][j];
            out[i][k] = acc;
        }
}

/// V = B^T d B for the patch whose top-left input pixel is (y0, x0) (may lie in the padding).
template <int A, int W>
TERN_WINO_INLINE void inputTile(const float* x, Index h, Index w, Index c, Index y0, Index x0,
                                Index c0, int valid, const float* bt, float* v, Index pStride) {
    VecT<W> in[A][A], t1[A][A], out[A][A];
    for (int j = 0; j < A; ++j)
        for (int i = 0; i < A; ++i) {
            const Index yy = y0 + j, xx = x0 + i;
            in[j][i] = (yy < 0 || yy >= h || xx < 0 || xx >= w)
                           ? VecT<W>{}
                           : loadVec<W>(x + (yy * w + xx) * c + c0, valid);
        }
    mulLeft<A, W, false>(bt, A, A, A, A, in, t1);
    mulRight<A, W, false>(bt, A, A, A, A, t1, out);
    for (int i = 0; i < A; ++i)
        for (int k = 0; k < A; ++k) storeVec<W>(v + (i * A + k) * pStride, out[i][k], valid);
}

/// y = A^T M A (+ bias) for one tile, written where it lies inside the output.
template <int A, int W>
TERN_WINO_INLINE void outputTile(const float* mm, Index pStride, int m, const float* at,
                                 const float* bias, float* y, Index oh, Index ow, Index o,
                                 Index y0, Index x0, int valid) {
    VecT<W> in[A][A], t1[A][A], out[A][A];
    for (int j = 0; j < A; ++j)
        for (int k = 0; k < A; ++k) in[j][k] = loadVec<W>(mm + (j * A + k) * pStride, valid);
    mulLeft<A, W, false>(at, A, m, A, A, in, t1);
    mulRight<A, W, false>(at, A, m, A, m, t1, out);
    const VecT<W> b0 = bias ? loadVec<W>(bias, valid) : VecT<W>{};
    for (int i = 0; i < m && y0 + i < oh; ++i)
        for (int l = 0; l < m && x0 + l < ow; ++l)
            storeVec<W>(y + ((y0 + i) * ow + x0 + l) * o, out[i][l] + b0, valid);
}

/// dM = A dy A^T for one tile (dy is zero outside the output).
template <int A, int W>
TERN_WINO_INLINE void outputGradTile(const float* dy, Index oh, Index ow, Index o, Index y0,
                                     Index x0, int m, int valid, const float* at, float* dm,
                                     Index pStride) {
    VecT<W> in[A][A], t1[A][A], out[A][A];  // in: m x m, t1: A x m, out: A x A
    for (int i = 0; i < m; ++i)
        for (int l = 0; l < m; ++l)
            in[i][l] = (y0 + i >= oh || x0 + l >= ow)
                           ? VecT<W>{}
                           : loadVec<W>(dy + ((y0 + i) * ow + x0 + l) * o, valid);
    mulLeft<A, W, true>(at, A, A, m, m, in, t1);
    mulRight<A, W, true>(at, A, A, m, A, t1, out);
    for (int j = 0; j < A; ++j)
        for (int k = 0; k < A; ++k) storeVec<W>(dm + (j * A + k) * pStride, out[j][k], valid);
}

/// dd = B dV B^T for one tile, added into dx where the patch lies inside the input.
template <int A, int W>
TERN_WINO_INLINE void inputGradTile(const float* dv, Index pStride, const float* bt, float* dx,
                                    Index h, Index w, Index c, Index y0, Index x0, int valid) {
    VecT<W> in[A][A], t1[A][A], out[A][A];
    for (int i = 0; i < A; ++i)
        for (int k = 0; k < A; ++k) in[i][k] = loadVec<W>(dv + (i * A + k) * pStride, valid);
    mulLeft<A, W, true>(bt, A, A, A, A, in, t1);
    mulRight<A, W, true>(bt, A, A, A, A, t1, out);
    for (int j = 0; j < A; ++j) {
        const Index yy = y0 + j;
        if (yy < 0 || yy >= h) continue;
        for (int col = 0; col < A; ++col) {
            const Index xx = x0 + col;
            if (xx < 0 || xx >= w) continue;
            float* px = dx + (yy * w + xx) * c;
            storeVec<W>(px, loadVec<W>(px, valid) + out[j][col], valid);
        }
    }
}

/// The per-chunk loops over (tile, channel block), one function per pass; the entry points
/// below compile each for AVX-512, AVX2 + FMA and baseline x86-64 and dispatch on alpha.
struct Geo {
    Index h, w, c, o, oh, ow, tilesW, tilesPerImage, pad;
    int m, alpha;
};

/// Tile t of a chunk: its image within the chunk and the output pixel at its top left.
struct TilePos {
    Index img, oy, ox;
};
TERN_WINO_INLINE TilePos tilePos(const Geo& g, Index t) {
    const Index r = t % g.tilesPerImage;
    return {t / g.tilesPerImage, (r / g.tilesW) * g.m, (r % g.tilesW) * g.m};
}

/// Real channels in block `block` of W channels out of `channels`.
template <int W>
TERN_WINO_INLINE int blockValid(Index channels, Index block) {
    return static_cast<int>(std::min<Index>(W, channels - block * W));
}

template <int A, int W>
TERN_WINO_INLINE void inputChunkImpl(const Geo& g, const float* x, Index n0, Index nImages,
                                     const float* bt, float* v) {
    const Index cBlocks = (g.c + W - 1) / W;
    const Index tiles = nImages * g.tilesPerImage;
    const Index pStride = pointStride(tiles * g.c);
#pragma omp for schedule(static)
    for (Index job = 0; job < tiles * cBlocks; ++job) {
        const Index t = job / cBlocks, cb = job % cBlocks;
        const TilePos tp = tilePos(g, t);
        inputTile<A, W>(x + (n0 + tp.img) * g.h * g.w * g.c, g.h, g.w, g.c, tp.oy - g.pad,
                        tp.ox - g.pad, cb * W, blockValid<W>(g.c, cb), bt,
                        v + t * g.c + cb * W, pStride);
    }
}

template <int A, int W>
TERN_WINO_INLINE void outputChunkImpl(const Geo& g, const float* mm, Index n0, Index nImages,
                                      const float* at, const float* bias, float* y) {
    const Index oBlocks = (g.o + W - 1) / W;
    const Index tiles = nImages * g.tilesPerImage;
    const Index pStride = pointStride(tiles * g.o);
#pragma omp for schedule(static)
    for (Index job = 0; job < tiles * oBlocks; ++job) {
        const Index t = job / oBlocks, ob = job % oBlocks;
        const TilePos tp = tilePos(g, t);
        outputTile<A, W>(mm + t * g.o + ob * W, pStride, g.m, at, bias ? bias + ob * W : nullptr,
                         y + (n0 + tp.img) * g.oh * g.ow * g.o + ob * W, g.oh, g.ow, g.o, tp.oy,
                         tp.ox, blockValid<W>(g.o, ob));
    }
}

template <int A, int W>
TERN_WINO_INLINE void outputGradChunkImpl(const Geo& g, const float* dy, Index n0, Index nImages,
                                          const float* at, float* dm) {
    const Index oBlocks = (g.o + W - 1) / W;
    const Index tiles = nImages * g.tilesPerImage;
    const Index pStride = pointStride(tiles * g.o);
#pragma omp for schedule(static)
    for (Index job = 0; job < tiles * oBlocks; ++job) {
        const Index t = job / oBlocks, ob = job % oBlocks;
        const TilePos tp = tilePos(g, t);
        outputGradTile<A, W>(dy + (n0 + tp.img) * g.oh * g.ow * g.o + ob * W, g.oh, g.ow, g.o,
                             tp.oy, tp.ox, g.m, blockValid<W>(g.o, ob), at,
                             dm + t * g.o + ob * W, pStride);
    }
}

/// Tiles of one image overlap in the input, so a job is (image, channel block): it clears
/// that part of dx and adds all the image's tiles into it.
template <int A, int W>
TERN_WINO_INLINE void inputGradChunkImpl(const Geo& g, const float* dv, Index n0, Index nImages,
                                         const float* bt, float* dx) {
    const Index cBlocks = (g.c + W - 1) / W;
    const Index tiles = nImages * g.tilesPerImage;
    const Index pStride = pointStride(tiles * g.c);
#pragma omp for schedule(static)
    for (Index job = 0; job < nImages * cBlocks; ++job) {
        const Index img = job / cBlocks, cb = job % cBlocks;
        const int valid = blockValid<W>(g.c, cb);
        float* base = dx + (n0 + img) * g.h * g.w * g.c + cb * W;
        for (Index px = 0; px < g.h * g.w; ++px) storeVec<W>(base + px * g.c, VecT<W>{}, valid);
        for (Index t = img * g.tilesPerImage; t < (img + 1) * g.tilesPerImage; ++t) {
            const TilePos tp = tilePos(g, t);
            inputGradTile<A, W>(dv + t * g.c + cb * W, pStride, bt, base, g.h, g.w, g.c,
                                tp.oy - g.pad, tp.ox - g.pad, valid);
        }
    }
}

/// U = G g G^T for every (c, block of W output channels): U[p][c][o].
template <int A, int W>
TERN_WINO_INLINE void weightsImpl(const Geo& g, const float* w, Index r, const float* gm,
                                  float* u) {
    const Index oBlocks = (g.o + W - 1) / W;
    const int ri = static_cast<int>(r);  // r <= alpha
#pragma omp for schedule(static)
    for (Index job = 0; job < g.c * oBlocks; ++job) {
        const Index cc = job / oBlocks, ob = job % oBlocks;
        const int valid = blockValid<W>(g.o, ob);
        VecT<W> in[A][A] = {}, t1[A][A], out[A][A];
        for (int q = 0; q < valid; ++q) {
            const float* src = w + ((ob * W + q) * g.c + cc) * r * r;
            for (int j = 0; j < ri; ++j)
                for (int k = 0; k < ri; ++k) in[j][k][q] = src[j * ri + k];
        }
        mulLeft<A, W, false>(gm, ri, A, ri, ri, in, t1);
        mulRight<A, W, false>(gm, ri, A, ri, A, t1, out);
        for (int i = 0; i < A; ++i)
            for (int l = 0; l < A; ++l)
                storeVec<W>(u + ((i * A + l) * g.c + cc) * g.o + ob * W, out[i][l], valid);
    }
}

/// dg = G^T dU G for every (c, block of output channels), written into dw (OIHW).
template <int A, int W>
TERN_WINO_INLINE void weightGradImpl(const Geo& g, const float* du, Index r, const float* gm,
                                     float* dw) {
    const Index oBlocks = (g.o + W - 1) / W;
    const int ri = static_cast<int>(r);  // r <= alpha
#pragma omp for schedule(static)
    for (Index job = 0; job < g.c * oBlocks; ++job) {
        const Index cc = job / oBlocks, ob = job % oBlocks;
        const int valid = blockValid<W>(g.o, ob);
        VecT<W> in[A][A], t1[A][A], out[A][A];
        for (int i = 0; i < A; ++i)
            for (int l = 0; l < A; ++l)
                in[i][l] = loadVec<W>(du + ((i * A + l) * g.c + cc) * g.o + ob * W, valid);
        mulLeft<A, W, true>(gm, ri, ri, A, A, in, t1);
        mulRight<A, W, true>(gm, ri, ri, A, ri, t1, out);
        for (int k = 0; k < ri; ++k)
            for (int l = 0; l < ri; ++l)
                for (int q = 0; q < valid; ++q)
                    dw[((ob * W + q) * g.c + cc) * r * r + k * r + l] = out[k][l][q];
    }
}

#define TERN_WINO_DISPATCH(impl, W, ...)                                          \
    switch (g.alpha) {                                                            \
    case 4: impl<4, W>(g, __VA_ARGS__); break;                                    \
    case 5: impl<5, W>(g, __VA_ARGS__); break;                                    \
    case 6: impl<6, W>(g, __VA_ARGS__); break;                                    \
    case 7: impl<7, W>(g, __VA_ARGS__); break;                                    \
    default: impl<8, W>(g, __VA_ARGS__); break;                                   \
    }

using Isa = WinogradIsa;

/// The widest instruction set the transforms are compiled for that this CPU runs (AVX2 counts
/// only with FMA: GCC's target_clones("avx2") would leave FMA out, and the transforms are
/// multiply-adds).
Isa detectIsa() {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")) return Isa::Avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::Avx2;
    return Isa::Baseline;
}

std::atomic<Isa> gIsa{Isa::Auto};

Isa cpuIsa() {
    Isa isa = gIsa.load(std::memory_order_relaxed);
    if (isa == Isa::Auto) {
        isa = detectIsa();
        gIsa.store(isa, std::memory_order_relaxed);
    }
    return isa;
}

#define TERN_WINO_UNPAREN(...) __VA_ARGS__
/// One entry point `name PARAMS` per pass, compiled three times (AVX-512, AVX2 + FMA,
/// baseline x86-64) and dispatched on cpuIsa(); each version dispatches on alpha.
#define TERN_WINO_ENTRY(name, impl, PARAMS, ARGS)                                       \
    __attribute__((target("avx512f,fma"))) void name##Avx512 PARAMS {                   \
        TERN_WINO_DISPATCH(impl, 16, TERN_WINO_UNPAREN ARGS)                            \
    }                                                                                   \
    __attribute__((target("avx2,fma"))) void name##Avx2 PARAMS {                        \
        TERN_WINO_DISPATCH(impl, 8, TERN_WINO_UNPAREN ARGS)                             \
    }                                                                                   \
    void name##Base PARAMS { TERN_WINO_DISPATCH(impl, 4, TERN_WINO_UNPAREN ARGS) }      \
    void name##Wide16 PARAMS { TERN_WINO_DISPATCH(impl, 16, TERN_WINO_UNPAREN ARGS) }   \
    void name PARAMS {                                                                  \
        switch (cpuIsa()) {                                                             \
        case Isa::Wide16: name##Wide16(g, TERN_WINO_UNPAREN ARGS); break;               \
        case Isa::Avx512: name##Avx512(g, TERN_WINO_UNPAREN ARGS); break;               \
        case Isa::Avx2: name##Avx2(g, TERN_WINO_UNPAREN ARGS); break;                   \
        default: name##Base(g, TERN_WINO_UNPAREN ARGS); break;                          \
        }                                                                               \
    }

TERN_WINO_ENTRY(inputChunk, inputChunkImpl,
                (const Geo& g, const float* x, Index n0, Index nImages, const float* bt, float* v),
                (x, n0, nImages, bt, v))
TERN_WINO_ENTRY(outputChunk, outputChunkImpl,
                (const Geo& g, const float* mm, Index n0, Index nImages, const float* at,
                 const float* bias, float* y),
                (mm, n0, nImages, at, bias, y))
TERN_WINO_ENTRY(outputGradChunk, outputGradChunkImpl,
                (const Geo& g, const float* dy, Index n0, Index nImages, const float* at,
                 float* dm),
                (dy, n0, nImages, at, dm))
TERN_WINO_ENTRY(inputGradChunk, inputGradChunkImpl,
                (const Geo& g, const float* dv, Index n0, Index nImages, const float* bt,
                 float* dx),
                (dv, n0, nImages, bt, dx))
TERN_WINO_ENTRY(weightsTransform, weightsImpl,
                (const Geo& g, const float* w, Index r, const float* gm, float* u),
                (w, r, gm, u))
TERN_WINO_ENTRY(weightGradTransform, weightGradImpl,
                (const Geo& g, const float* du, Index r, const float* gm, float* dw),
                (du, r, gm, dw))

#undef TERN_WINO_ENTRY
#undef TERN_WINO_UNPAREN
#undef TERN_WINO_DISPATCH
#undef TERN_WINO_INLINE

/// Working-set budget of one chunk (V, M and dV together), in floats: 16 MB, half this
/// machine's L3; larger batches are processed a few images at a time.
constexpr Index kChunkFloats = Index{4} << 20;

}  // namespace

WinogradMatrices winogradMatrices(int m, int r) {
    const int alpha = m + r - 1;
    if (m < 1 || r < 1 || alpha < 4 || alpha > 8)
        fail("winogradMatrices", "F(" + std::to_string(m) + ", " + std::to_string(r) +
                                     ") needs 4 <= m + r - 1 <= 8");
    static const double kPoints[] = {0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5};
    const int n = alpha - 1;  // finite points; the last one is infinity
    std::vector<double> pts(kPoints, kPoints + n);
    WinogradMatrices w;
    w.m = m;
    w.r = r;
    w.alpha = alpha;
    w.AT.assign(static_cast<size_t>(m * alpha), 0.0);
    w.G.assign(static_cast<size_t>(alpha * r), 0.0);
    w.BT.assign(static_cast<size_t>(alpha * alpha), 0.0);
    for (int i = 0; i < m; ++i) {
        for (int j = 0; j < n; ++j) w.AT[i * alpha + j] = std::pow(pts[j], i);
        w.AT[i * alpha + n] = (i == m - 1) ? 1.0 : 0.0;
    }
    for (int j = 0; j < n; ++j) {
        double f = 1.0;
        std::vector<double> others;
        for (int l = 0; l < n; ++l)
            if (l != j) {
                f *= pts[j] - pts[l];
                others.push_back(pts[l]);
            }
        for (int k = 0; k < r; ++k) w.G[j * r + k] = std::pow(pts[j], k) / f;
        const auto nj = polyFromRoots(others);  // degree n - 1
        for (size_t i = 0; i < nj.size(); ++i) w.BT[j * alpha + static_cast<int>(i)] = nj[i];
    }
    w.G[n * r + (r - 1)] = 1.0;
    const auto all = polyFromRoots(pts);  // degree n = alpha - 1
    for (size_t i = 0; i < all.size(); ++i) w.BT[n * alpha + static_cast<int>(i)] = all[i];
    return w;
}

int winogradTile(Index r, Index outH, Index outW) {
    int best = 0;
    double bestCost = 0.0;
    for (int m = 2; m + r - 1 <= 8; ++m) {
        const Index alpha = m + r - 1;
        if (alpha < 4) continue;
        const Index tiles = ((outH + m - 1) / m) * ((outW + m - 1) / m);
        const double cost = double(alpha * alpha * tiles) / double(outH * outW);
        if (best == 0 || cost < bestCost - 1e-9) {
            best = m;
            bestCost = cost;
        }
    }
    return best;
}

WinogradIsa setWinogradIsa(WinogradIsa isa) {
    const Isa best = detectIsa();
    if (isa == Isa::Auto || (isa != Isa::Wide16 && static_cast<int>(isa) > static_cast<int>(best)))
        isa = best;
    gIsa.store(isa, std::memory_order_relaxed);
    return isa;
}

WinogradConv::WinogradConv(const WinogradShape& s) : s_(s) {
    if (s.n < 1 || s.c < 1 || s.o < 1 || s.r < 1 || s.pad < 0)
        fail("WinogradConv", "n, c, o and r must be positive and the padding >= 0");
    oh_ = s.h + 2 * s.pad - s.r + 1;
    ow_ = s.w + 2 * s.pad - s.r + 1;
    if (oh_ < 1 || ow_ < 1) fail("WinogradConv", "input smaller than the kernel");
    m_ = static_cast<int>(s.m > 0 ? s.m : winogradTile(s.r, oh_, ow_));
    if (m_ < 1) fail("WinogradConv", "no Winograd tile for a " + std::to_string(s.r) + "x" +
                                         std::to_string(s.r) + " kernel");
    const WinogradMatrices w = winogradMatrices(m_, static_cast<int>(s.r));
    alpha_ = w.alpha;
    at_.assign(w.AT.begin(), w.AT.end());
    g_.assign(w.G.begin(), w.G.end());
    bt_.assign(w.BT.begin(), w.BT.end());
    tilesH_ = (oh_ + m_ - 1) / m_;
    tilesW_ = (ow_ + m_ - 1) / m_;
    tilesPerImage_ = tilesH_ * tilesW_;
    const Index a2 = Index{alpha_} * alpha_;
    const Index perImage = a2 * tilesPerImage_ * (2 * s.c + s.o);
    imagesPerChunk_ = std::clamp<Index>(kChunkFloats / std::max<Index>(perImage, 1), 1, s.n);
    u_.assign(static_cast<size_t>(a2 * s.c * s.o), 0.0f);
    du_.assign(u_.size(), 0.0f);
    const Index tiles = imagesPerChunk_ * tilesPerImage_;
    v_.assign(static_cast<size_t>(a2 * pointStride(tiles * s.c)), 0.0f);
    dv_.assign(v_.size(), 0.0f);
    mm_.assign(static_cast<size_t>(a2 * pointStride(tiles * s.o)), 0.0f);
}

void WinogradConv::forward(const float* x, const float* w, const float* bias, float* y) {
    const Geo g{s_.h, s_.w, s_.c, s_.o, oh_, ow_, tilesW_, tilesPerImage_, s_.pad, m_, alpha_};
    const Index a = alpha_, r = s_.r, c = s_.c, o = s_.o, a2 = a * a;
    std::atomic<int> status{0};
#pragma omp parallel
    weightsTransform(g, w, r, g_.data(), u_.data());
    for (Index n0 = 0; n0 < s_.n; n0 += imagesPerChunk_) {
        const Index nb = std::min(imagesPerChunk_, s_.n - n0);
        const Index tiles = nb * tilesPerImage_;
        const Index sv = pointStride(tiles * c), sm = pointStride(tiles * o);
#pragma omp parallel
        {
            inputChunk(g, x, n0, nb, bt_.data(), v_.data());
#pragma omp for schedule(static)
            for (Index p = 0; p < a2; ++p)
                sgemm('N', 'N', tiles, o, c, v_.data() + p * sv, c, u_.data() + p * c * o, o, 0.0f,
                      mm_.data() + p * sm, o, status);
            outputChunk(g, mm_.data(), n0, nb, at_.data(), bias, y);
        }
        checkGemm(status);
    }
}

void WinogradConv::backward(const float* x, const float* dy, float* dw, float* db, float* dx) {
    const Geo g{s_.h, s_.w, s_.c, s_.o, oh_, ow_, tilesW_, tilesPerImage_, s_.pad, m_, alpha_};
    const Index a = alpha_, r = s_.r, c = s_.c, o = s_.o, a2 = a * a;
    // V of the forward is still in v_ when the whole batch was one chunk
    const bool haveV = imagesPerChunk_ >= s_.n;
    std::atomic<int> status{0};
    for (Index n0 = 0; n0 < s_.n; n0 += imagesPerChunk_) {
        const Index nb = std::min(imagesPerChunk_, s_.n - n0);
        const Index tiles = nb * tilesPerImage_;
        const Index sv = pointStride(tiles * c), sm = pointStride(tiles * o);
        const float beta = n0 == 0 ? 0.0f : 1.0f;
#pragma omp parallel
        {
            if (!haveV) inputChunk(g, x, n0, nb, bt_.data(), v_.data());
            outputGradChunk(g, dy, n0, nb, at_.data(), mm_.data());
#pragma omp for schedule(static)
            for (Index p = 0; p < a2; ++p) {
                sgemm('T', 'N', c, o, tiles, v_.data() + p * sv, c, mm_.data() + p * sm, o, beta,
                      du_.data() + p * c * o, o, status);
                if (dx)
                    sgemm('N', 'T', tiles, c, o, mm_.data() + p * sm, o, u_.data() + p * c * o, o,
                          0.0f, dv_.data() + p * sv, c, status);
            }
            if (dx) inputGradChunk(g, dv_.data(), n0, nb, bt_.data(), dx);
        }
        checkGemm(status);
    }
#pragma omp parallel
    weightGradTransform(g, du_.data(), r, g_.data(), dw);
    if (db) {
        // db = sum of dy over all pixels, per output channel: fixed chunks of pixels added in
        // chunk order, so the result does not depend on the thread count or on timing
        const Index pixels = s_.n * oh_ * ow_;
        std::vector<float> part(static_cast<size_t>(parallelChunkCount(pixels) * o), 0.0f);
        parallelChunks(pixels, [&](Index b, Index len, Index chunk) {
            float* acc = part.data() + chunk * o;
            for (Index px = b; px < b + len; ++px)
                for (Index q = 0; q < o; ++q) acc[q] += dy[px * o + q];
        });
        std::fill(db, db + o, 0.0f);
        for (Index chunk = 0; chunk < parallelChunkCount(pixels); ++chunk)
            for (Index q = 0; q < o; ++q) db[q] += part[static_cast<size_t>(chunk * o + q)];
    }
}

}  // namespace tern::nn::detail
