// Ternary sets: rounding onto {-1, 0, 1}, TWN's threshold rule, and the exact sort-based
// projection onto a*{-1, 0, 1}.
#include "tern/proj/ternary.hpp"

#include "detail.hpp"
#include "tern/core/parallel.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

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

GroupResult TernaryTwn::projectGroup(CVecRef v, VecRef z) const {
    // Branch-free, vectorised passes: the threshold test is a coin flip per weight, so a
    // branchy loop spends most of its time in mispredictions.
    // Large groups run in fixed chunks on the OpenMP threads (deterministic sums).
    const Index n = v.size();
    // delta = ratio * mean |v_i|
    const double sumAbs = parallelSum(n, [&](Index b, Index len) {
        return v.segment(b, len).array().abs().cast<double>().sum();
    });
    const auto delta = static_cast<Scalar>(static_cast<double>(ratio_) * sumAbs / static_cast<double>(n));
    // a = mean of |v_i| over I = {|v_i| > delta}
    const double sumI = parallelSum(n, [&](Index b, Index len) {
        const auto mag = v.segment(b, len).array().abs();
        return (mag * (mag > delta).cast<Scalar>()).cast<double>().sum();
    });
    const auto countI = static_cast<Index>(parallelSum(n, [&](Index b, Index len) {
        return static_cast<double>((v.segment(b, len).array().abs() > delta).count());
    }));
    Scalar a = 1;
    if (scale_ == ScaleMode::Free)
        a = countI > 0 ? static_cast<Scalar>(sumI / static_cast<double>(countI)) : Scalar(0);
    // z = a * sign(v) on I, 0 elsewhere (elementwise, so z may alias v)
    parallelChunks(n, [&](Index b, Index len, Index) {
        const auto x = v.segment(b, len).array();
        z.segment(b, len).array() = (a * (x.abs() > delta).cast<Scalar>()) * x.sign();
    });
    return GroupResult{a, a > 0 ? countI : 0};
}

// ---------------------------------------------------------------- exact

std::string TernaryExact::name() const { return "ternary:exact" + detail::scaleSuffix(scale_); }

namespace {

/// The exact scaled ternary projection of a large group without a full sort (same k* and a as
/// the sort, up to the rounding of the sums):
///   1. a histogram of |v| over [0, max|v|] in kBins bins (count, sum, min per bin);
///   2. S_k^2/k at every bin boundary (whole bins taken from the top);
///   3. inside a bin, with S and K the sums above it and h its upper edge, S_{K+j} <= S + j*h,
///      and (S + j*h)^2/(K + j) is quasi-convex in j, so its larger end value bounds the bin;
///      only bins whose bound beats the best boundary can hold k*: their entries are gathered,
///      sorted and scanned exactly;
///   4. z = a*sign(v) on the k* largest |v| (ties at the threshold in index order).
/// O(n) plus a sort of the few candidate bins; the passes run in parallel chunks.
GroupResult exactTernaryLarge(CVecRef v, VecRef z) {
    constexpr Index kBins = 2048;
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
    auto binOf = [&](Scalar m) { return std::min<Index>(kBins - 1, static_cast<Index>(m * perBin)); };
    std::vector<Index> count(static_cast<size_t>(chunks * kBins), 0);
    std::vector<double> sum(static_cast<size_t>(chunks * kBins), 0.0);
    std::vector<Scalar> lowest(static_cast<size_t>(chunks * kBins), top);
    parallelChunks(n, [&](Index b, Index len, Index c) {
        Index* cnt = count.data() + c * kBins;
        double* sm = sum.data() + c * kBins;
        Scalar* lo = lowest.data() + c * kBins;
        for (Index i = b; i < b + len; ++i) {
            const Scalar m = std::abs(v[i]);
            const Index k = binOf(m);
            ++cnt[k];
            sm[k] += static_cast<double>(m);
            lo[k] = std::min(lo[k], m);
        }
    });
    for (Index c = 1; c < chunks; ++c)
        for (Index k = 0; k < kBins; ++k) {
            count[size_t(k)] += count[size_t(c * kBins + k)];
            sum[size_t(k)] += sum[size_t(c * kBins + k)];
            lowest[size_t(k)] = std::min(lowest[size_t(k)], lowest[size_t(c * kBins + k)]);
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
    // 3. bins whose bound beats the best boundary
    std::vector<char> candidate(static_cast<size_t>(kBins), 0);
    Index candidates = 0;
    for (Index k = 0; k < kBins; ++k) {
        const Index c = count[size_t(k)];
        if (c < 2) continue;  // a bin of one entry has only its boundary
        // upper edge of the bin, with a margin for the float rounding in binOf()
        const double h = static_cast<double>(k + 1) / static_cast<double>(perBin) * (1 + 1e-5);
        const double S = aboveSum[size_t(k)], K = static_cast<double>(aboveCount[size_t(k)]);
        auto bound = [&](double j) { return (S + j * h) * (S + j * h) / (K + j); };
        if (std::max(bound(1), bound(static_cast<double>(c))) >= best * (1 - 1e-9)) {
            candidate[size_t(k)] = 1;
            ++candidates;
        }
    }
    Scalar threshold = lowest[size_t(bestBin)];  // the bestK-th largest |v| at a boundary
    if (candidates > 0) {
        std::vector<std::vector<Scalar>> gathered(static_cast<size_t>(kBins));
        for (Index i = 0; i < n; ++i) {
            const Scalar m = std::abs(v[i]);
            const Index k = binOf(m);
            if (candidate[size_t(k)]) gathered[size_t(k)].push_back(m);
        }
        for (Index k = kBins - 1; k >= 0; --k) {
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
                    threshold = g[j];
                }
            }
        }
    }
    const Scalar a = static_cast<Scalar>(bestSum / static_cast<double>(bestK));
    // 4. the bestK largest: everything above the threshold, then ties in index order
    const Index above = static_cast<Index>(parallelSum(n, [&](Index b, Index len) {
        return static_cast<double>((v.segment(b, len).array().abs() > threshold).count());
    }));
    Index ties = bestK - above;
    if (ties == 0) {
        parallelChunks(n, [&](Index b, Index len, Index) {
            const auto x = v.segment(b, len).array();
            z.segment(b, len).array() = (a * (x.abs() > threshold).cast<Scalar>()) * x.sign();
        });
    } else {
        for (Index i = 0; i < n; ++i) {
            const Scalar x = v[i], m = std::abs(x);
            const bool keep = m > threshold || (m == threshold && ties-- > 0);
            z[i] = keep ? (x < 0 ? -a : a) : Scalar(0);
        }
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
