// Ternary with at most k nonzeros per group: exact projection by a sweep over the top k.
#include "tern/proj/sparse_ternary.hpp"

#include "detail.hpp"

#include <cmath>

namespace tern::proj {

TernaryTopK TernaryTopK::withK(Index k, ScaleMode scale) {
    if (k < 0) fail("TernaryTopK::withK()", TERN_MSG("k must be >= 0 (got " << k << ")"));
    return TernaryTopK(k, std::nullopt, scale);
}

TernaryTopK TernaryTopK::withFraction(Scalar fraction, ScaleMode scale) {
    requireInRange(fraction, 0, 1, "TernaryTopK::withFraction()", "fraction");
    return TernaryTopK(std::nullopt, fraction, scale);
}

std::string TernaryTopK::name() const {
    std::string s = "ternary:topk";
    s += k_ ? TERN_MSG(",k=" << *k_) : ",fraction=" + detail::formatNumber(*fraction_);
    return s + detail::scaleSuffix(scale_);
}

Index TernaryTopK::budget(Index n) const {
    if (k_) return *k_;
    // k = round(fraction * n), half up
    return static_cast<Index>(
        std::floor(static_cast<double>(*fraction_) * static_cast<double>(n) + 0.5));
}

void TernaryTopK::checkGroupSize(Index n) const {
    if (k_ && *k_ > n)
        fail("TernaryTopK::project()", TERN_MSG("k = " << *k_ << " exceeds the group size " << n));
}

GroupResult TernaryTopK::projectGroup(CVecRef v, VecRef z) const {
    const Index kmax = std::min(budget(v.size()), v.size());
    const std::vector<Scalar> mags = detail::sortedMagnitudes(v, kmax);
    if (scale_ == ScaleMode::One) {
        // a = 1: entry i is worth keeping iff 2|v_i| - 1 > 0; keep the best kmax of those
        Index m = 0;
        while (m < kmax && mags[static_cast<std::size_t>(m)] > Scalar(0.5)) ++m;
        GroupResult res = detail::writeTop(v, z, mags, m, 1);
        res.scale = 1;
        return res;
    }
    // m* = argmax_{m <= k} S_m^2/m; a = S_m*/m*
    const auto [m, sum] = detail::bestPrefix(mags, kmax);
    const Scalar a = m > 0 ? static_cast<Scalar>(sum / static_cast<double>(m)) : Scalar(0);
    return detail::writeTop(v, z, mags, m, a);
}

}  // namespace tern::proj
