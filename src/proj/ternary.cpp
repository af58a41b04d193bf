// Ternary sets: rounding onto {-1, 0, 1}, TWN's threshold rule, and the exact sort-based
// projection onto a*{-1, 0, 1}.
#include "tern/proj/ternary.hpp"

#include "detail.hpp"
#include "tern/core/parallel.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

// The 8-float vector values (detail::Vec8) never cross a real call, so GCC's ABI note for
// them does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace tern::proj {

GroupResult TernaryFixed::projectGroup(CVecRef v, VecRef z) const {
    return detail::roundTernary(v, z);
}

// ---------------------------------------------------------------- TWN

TernaryTwn::TernaryTwn(Scalar ratio, ScaleMode scale) : ratio_(ratio), scale_(scale) {
    requireNonNegative(ratio, "TernaryTwn::TernaryTwn()", "ratio");
}

std::string TernaryTwn::name() const {
    std::string s = "ternary:twn";
    if (ratio_ != 0.7f) s += ",ratio=" + detail::formatNumber(ratio_);
    return s + detail::scaleSuffix(scale_);
}

namespace {

/// sum |x_i| of one chunk: 16 independent float lanes, which GCC vectorizes into four SSE
/// (two AVX) accumulators without reassociating a single sum (TWN's projection measured
/// faster this way than with one or two Vec8 accumulators); summed in double.
double sumAbsChunk(const Scalar* x, Index len) {
    constexpr int kLanes = 16;
    float acc[kLanes] = {};
    Index i = 0;
    for (; i + kLanes <= len; i += kLanes)
        for (int l = 0; l < kLanes; ++l) acc[l] += std::fabs(x[i + l]);
    double s = 0;
    for (; i < len; ++i) s += std::fabs(x[i]);
    for (float a : acc) s += a;
    return s;
}

/// sum and count of |x_i| > delta in one chunk, on GCC vector types (neither a plain loop
/// nor Eigen's select() was vectorized: both ran a compare-and-branch per weight). The count,
/// at most one chunk long per lane, is exact in float.
std::pair<double, Index> sumAboveChunk(const Scalar* x, Index len, Scalar delta) {
    using detail::Vec8;
    const Vec8 one = Vec8{} + 1.0f, d = Vec8{} + delta;
    Vec8 acc = {}, cnt = {};
    Index i = 0;
    for (; i + 8 <= len; i += 8) {
        const Vec8 m = detail::abs8(detail::load8(x + i));
        const auto in = m > d;  // all ones where above
        acc += detail::where(in, m);
        cnt += detail::where(in, one);
    }
    double s = detail::sumLanes(acc), c = detail::sumLanes(cnt);
    for (; i < len; ++i)
        if (std::fabs(x[i]) > delta) {
            s += std::fabs(x[i]);
            c += 1;
        }
    return {s, static_cast<Index>(c)};
}

}  // namespace

GroupResult TernaryTwn::projectGroup(CVecRef v, VecRef z) const {
    // Branch-free passes on 8-float vectors (the Eigen expressions with bool casts and sign()
    // ran ~2 ms for LeNet-5's 524,288 fc1 weights on 2 threads); the threshold test is a coin
    // flip per weight, so a branchy loop would spend its time in mispredictions. Large groups run in fixed chunks on the OpenMP threads
    // (deterministic sums).
    const Index n = v.size();
    const Scalar* x = v.data();
    // delta = ratio * mean |v_i|
    const double sumAbs =
        parallelSum(n, [&](Index b, Index len) { return sumAbsChunk(x + b, len); });
    const auto delta =
        static_cast<Scalar>(static_cast<double>(ratio_) * sumAbs / static_cast<double>(n));
    // a = mean of |v_i| over I = {|v_i| > delta}: sum and count in one pass
    std::vector<double> chunkSum(static_cast<size_t>(parallelChunkCount(n)));
    std::vector<Index> chunkCount(chunkSum.size());
    parallelChunks(n, [&](Index b, Index len, Index c) {
        const auto [sum, count] = sumAboveChunk(x + b, len, delta);
        chunkSum[size_t(c)] = sum;
        chunkCount[size_t(c)] = count;
    });
    double sumI = 0;
    Index countI = 0;
    for (size_t c = 0; c < chunkSum.size(); ++c) {  // in chunk order: deterministic
        sumI += chunkSum[c];
        countI += chunkCount[c];
    }
    Scalar a = 1;
    if (scale_ == ScaleMode::Free)
        a = countI > 0 ? static_cast<Scalar>(sumI / static_cast<double>(countI)) : Scalar(0);
    // z = a * sign(v) on I, 0 elsewhere (elementwise, so z may alias v)
    Scalar* out = z.data();
    parallelChunks(n, [x, out, a, delta](Index b, Index len, Index) {
        // by-value captures: a store through `out` cannot change them, so GCC vectorizes
        for (Index i = b; i < b + len; ++i) {
            const Scalar xi = x[i];
            out[i] = std::fabs(xi) > delta ? std::copysign(a, xi) : Scalar(0);
        }
    });
    return GroupResult{a, a > 0 ? countI : 0};
}

// ---------------------------------------------------------------- exact

std::string TernaryExact::name() const { return "ternary:exact" + detail::scaleSuffix(scale_); }

namespace {

/// The exact scaled ternary projection of a large group without a full sort (same k* and a as
/// the sort, up to the rounding of the sums):
///   1. a histogram of |v| over [0, max|v|] in kBins bins (count and sum per bin);
///   2. S_k^2/k at every bin boundary (whole bins taken from the top);
///   3. inside a bin, with S and K the sums above it and h its upper edge, S_{K+j} <= S + j*h,
///      and (S + j*h)^2/(K + j) is quasi-convex in j, so its larger end value bounds the bin;
///      only bins whose bound beats the best boundary can hold k*: their entries (and those of
///      the best boundary's bin, whose smallest entry is that boundary's threshold) are
///      gathered, sorted and scanned exactly;
///   4. z = a*sign(v) on the k* largest |v| (ties at the threshold in index order).
/// Four passes over v (max, histogram, gather, write; the gather keeps only the candidate
/// bins' entries, the write also lists the ties), all in parallel chunks; the chunk histograms
/// are merged in chunk order, so the result does not depend on the thread count.
struct LargeScratch {
    std::vector<std::int32_t> count;  // per chunk and bin
    std::vector<double> sum;
    std::vector<std::vector<std::pair<std::int32_t, Scalar>>> gathered;  // per chunk: (bin, |v|)
};

GroupResult exactTernaryLarge(CVecRef v, VecRef z) {
    constexpr Index kBins = 4096;
    constexpr Index kBlock = 256;       // entries binned at once (vectorised), then scattered
    constexpr Index kGatherBlock = 16;  // entries tested at once for the candidate range
    const Index n = v.size();
    const Index chunks = parallelChunkCount(n);
    // 1. max |v|, then the histogram (per chunk, merged in chunk order)
    std::vector<Scalar> chunkMax(static_cast<size_t>(chunks));
    parallelChunks(n, [&](Index b, Index len, Index c) {
        chunkMax[size_t(c)] = v.segment(b, len).cwiseAbs().maxCoeff();
    });
    const Scalar top = *std::max_element(chunkMax.begin(), chunkMax.end());
    if (!(top > 0)) {
        z.setZero();
        return GroupResult{0, 0};
    }
    const Scalar perBin = static_cast<Scalar>(kBins) / top;
    const auto lastBin = static_cast<Scalar>(kBins - 1);
    // bin of |x|: floor(|x| * perBin), clamped to the last bin (|x| = top lands there)
    auto binOf = [&](Scalar m) { return static_cast<Index>(std::min(m * perBin, lastBin)); };
    // scratch reused across calls by the calling thread (fresh megabyte buffers page-fault on
    // every call); the chunk workers reach it through these references, not by name
    thread_local LargeScratch scratch;
    std::vector<std::int32_t>& count = scratch.count;
    std::vector<double>& sum = scratch.sum;
    auto& chunkGathered = scratch.gathered;
    count.assign(static_cast<size_t>(chunks * kBins), 0);
    sum.assign(static_cast<size_t>(chunks * kBins), 0.0);
    parallelChunks(n, [&](Index b, Index len, Index c) {
        std::int32_t* cnt = count.data() + c * kBins;
        double* sm = sum.data() + c * kBins;
        alignas(64) std::int32_t bins[kBlock];
        alignas(64) Scalar mags[kBlock];
        const Scalar* p = v.data();
        for (Index s = b; s < b + len; s += kBlock) {
            const Index m = std::min(kBlock, b + len - s);
            for (Index i = 0; i < m; ++i) {  // vectorised: |v|, scaled, truncated
                mags[i] = std::abs(p[s + i]);
                bins[i] = static_cast<std::int32_t>(std::min(mags[i] * perBin, lastBin));
            }
            for (Index i = 0; i < m; ++i) {
                ++cnt[bins[i]];
                sm[bins[i]] += static_cast<double>(mags[i]);
            }
        }
    });
    for (Index c = 1; c < chunks; ++c)
        for (Index k = 0; k < kBins; ++k) {
            count[size_t(k)] += count[size_t(c * kBins + k)];
            sum[size_t(k)] += sum[size_t(c * kBins + k)];
        }
    // 2. boundaries, from the top bin down; above[k] = (count, sum) of the bins above bin k
    std::vector<Index> aboveCount(static_cast<size_t>(kBins));
    std::vector<double> aboveSum(static_cast<size_t>(kBins));
    double best = 0, bestSum = 0;
    Index bestK = 0, bestBin = -1;  // best boundary: all of bins >= bestBin
    {
        Index K = 0;
        double S = 0;
        for (Index k = kBins - 1; k >= 0; --k) {
            aboveCount[size_t(k)] = K;
            aboveSum[size_t(k)] = S;
            if (count[size_t(k)] == 0) continue;
            K += count[size_t(k)];
            S += sum[size_t(k)];
            const double gain = S * S / static_cast<double>(K);
            if (gain > best) {
                best = gain;
                bestSum = S;
                bestK = K;
                bestBin = k;
            }
        }
    }
    // 3. bins whose bound beats the best boundary, and the best boundary's own bin
    std::vector<char> candidate(static_cast<size_t>(kBins), 0);
    candidate[size_t(bestBin)] = 1;
    for (Index k = 0; k < kBins; ++k) {
        const Index c = count[size_t(k)];
        if (c < 2) continue;  // a bin of one entry has only its boundary
        // upper edge of the bin, with a margin for the float rounding in binOf()
        const double h = static_cast<double>(k + 1) / static_cast<double>(perBin) * (1 + 1e-5);
        const double S = aboveSum[size_t(k)], K = static_cast<double>(aboveCount[size_t(k)]);
        auto bound = [&](double j) { return (S + j * h) * (S + j * h) / (K + j); };
        if (std::max(bound(1), bound(static_cast<double>(c))) >= best * (1 - 1e-9))
            candidate[size_t(k)] = 1;
    }
    // gather the candidate bins' entries (per chunk, then per bin); the test is one compare
    // against the candidate range for almost every entry
    Index loBin = 0, hiBin = kBins - 1;
    while (!candidate[size_t(loBin)]) ++loBin;
    while (!candidate[size_t(hiBin)]) --hiBin;
    // the candidate range's edges, widened for the float rounding in binOf()
    const Scalar loEdge = static_cast<Scalar>(loBin) / perBin * (1 - 1e-5f);
    const Scalar hiEdge = static_cast<Scalar>(hiBin + 1) / perBin * (1 + 1e-5f);
    chunkGathered.resize(static_cast<size_t>(chunks));
    for (auto& part : chunkGathered) part.clear();
    parallelChunks(n, [&](Index b, Index len, Index c) {
        auto& out = chunkGathered[size_t(c)];
        const Scalar* p = v.data();
        for (Index s = b; s < b + len; s += kGatherBlock) {
            const Index e = std::min(s + kGatherBlock, b + len);
            int hits = 0;  // branch-free test of a short block first: most blocks have no hit
            for (Index i = s; i < e; ++i) {
                const Scalar m = std::abs(p[i]);
                hits += static_cast<int>(m >= loEdge) & static_cast<int>(m <= hiEdge);
            }
            if (hits == 0) continue;
            for (Index i = s; i < e; ++i) {
                const Scalar m = std::abs(p[i]);
                if ((static_cast<int>(m >= loEdge) & static_cast<int>(m <= hiEdge)) == 0) continue;
                const Index k = binOf(m);  // the margins let in neighbours of the range
                if (k >= loBin && k <= hiBin && candidate[size_t(k)])
                    out.emplace_back(static_cast<std::int32_t>(k), m);
            }
        }
    });
    std::vector<std::vector<Scalar>> gathered(static_cast<size_t>(kBins));
    for (const auto& part : chunkGathered)
        for (const auto& [k, m] : part) gathered[size_t(k)].push_back(m);
    // exact scan of the candidate bins, from the top; the boundary of bin k (all of it taken)
    // is the scan's last entry there, so the best boundary is rediscovered with its threshold
    best = 0;
    bestK = 0;
    Scalar threshold = 0;
    for (Index k = hiBin; k >= loBin; --k) {
        if (!candidate[size_t(k)]) continue;
        std::vector<Scalar>& g = gathered[size_t(k)];
        std::sort(g.begin(), g.end(), std::greater<>());
        double S = aboveSum[size_t(k)];
        const Index K = aboveCount[size_t(k)];
        for (size_t j = 0; j < g.size(); ++j) {
            S += static_cast<double>(g[j]);
            const Index kk = K + static_cast<Index>(j) + 1;
            const double gain = S * S / static_cast<double>(kk);
            // the smallest k wins a tie, as in the sort-based scan
            if (gain > best || (gain == best && kk < bestK)) {
                best = gain;
                bestSum = S;
                bestK = kk;
                bestBin = k;
                threshold = g[j];
            }
        }
    }
    const Scalar a = static_cast<Scalar>(bestSum / static_cast<double>(bestK));
    // 4. the bestK largest: everything above the threshold, then ties in index order. The
    // entries above it are the whole bins above its bin plus the larger ones inside it.
    const std::vector<Scalar>& inBin = gathered[size_t(bestBin)];
    const Index above = aboveCount[size_t(bestBin)] +
                        static_cast<Index>(std::count_if(inBin.begin(), inBin.end(),
                                                         [&](Scalar m) { return m > threshold; }));
    const Index ties = bestK - above;  // >= 1: the threshold is one of the kept entries
    // Per chunk: the entries equal to the threshold (index and sign; counted vectorised, listed
    // only where present), then z. v is read before z is written, so z may alias v.
    std::vector<std::vector<std::pair<Index, bool>>> chunkTies(static_cast<size_t>(chunks));
    parallelChunks(n, [&](Index b, Index len, Index c) {
        const Scalar* p = v.data();
        Scalar* q = z.data();
        int equal = 0;
        for (Index i = b; i < b + len; ++i) equal += static_cast<int>(std::abs(p[i]) == threshold);
        if (equal > 0)
            for (Index i = b; i < b + len; ++i)
                if (std::abs(p[i]) == threshold) chunkTies[size_t(c)].emplace_back(i, p[i] < 0);
        for (Index i = b; i < b + len; ++i) {  // vectorised selects
            const Scalar x = p[i];
            const Scalar level = x < 0 ? -a : a;
            q[i] = std::abs(x) > threshold ? level : Scalar(0);
        }
    });
    Index left = ties;  // the first `ties` of them, in index order, are kept
    for (const auto& part : chunkTies)
        for (const auto& [i, negative] : part) {
            if (left == 0) break;
            z[i] = negative ? -a : a;
            --left;
        }
    return GroupResult{a, bestK};
}

}  // namespace

GroupResult TernaryExact::projectGroup(CVecRef v, VecRef z) const {
    if (scale_ == ScaleMode::One) return detail::roundTernary(v, z);
    if (v.size() >= kLargeGroup) return exactTernaryLarge(v, z);
    // sort |v| descending; k* = argmax_k S_k^2/k; a = S_k*/k*
    const std::vector<Scalar> mags = detail::sortedMagnitudes(v, v.size());
    const auto [k, sum] = detail::bestPrefix(mags, v.size());
    const Scalar a = k > 0 ? static_cast<Scalar>(sum / static_cast<double>(k)) : Scalar(0);
    return detail::writeTop(v, z, mags, k, a);
}

}  // namespace tern::proj
