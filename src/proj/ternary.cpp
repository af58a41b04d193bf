// Ternary sets: rounding onto {-1, 0, 1}, TWN's threshold rule, and the exact sort-based
// projection onto a*{-1, 0, 1}.
#include "tern/proj/ternary.hpp"

#include "detail.hpp"

#include <cmath>

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
    const Index n = v.size();
    // delta = ratio * mean |v_i|
    double sumAbs = 0;
    for (Index i = 0; i < n; ++i) sumAbs += std::abs(static_cast<double>(v[i]));
    const double delta = static_cast<double>(ratio_) * sumAbs / static_cast<double>(n);
    // a = mean of |v_i| over I = {|v_i| > delta}
    double sumI = 0;
    Index countI = 0;
    for (Index i = 0; i < n; ++i)
        if (std::abs(static_cast<double>(v[i])) > delta) {
            sumI += std::abs(static_cast<double>(v[i]));
            ++countI;
        }
    Scalar a = 1;
    if (scale_ == ScaleMode::Free)
        a = countI > 0 ? static_cast<Scalar>(sumI / static_cast<double>(countI)) : Scalar(0);
    GroupResult res{a, 0};
    for (Index i = 0; i < n; ++i) {
        const Scalar vi = v[i];  // z may alias v
        z[i] = (a > 0 && std::abs(static_cast<double>(vi)) > delta) ? (vi < 0 ? -a : a) : Scalar(0);
        res.nonzeros += z[i] != 0;
    }
    return res;
}

// ---------------------------------------------------------------- exact

std::string TernaryExact::name() const { return "ternary:exact" + detail::scaleSuffix(scale_); }

GroupResult TernaryExact::projectGroup(CVecRef v, VecRef z) const {
    if (scale_ == ScaleMode::One) return detail::roundTernary(v, z);
    // sort |v| descending; k* = argmax_k S_k^2/k; a = S_k*/k*
    const std::vector<Scalar> mags = detail::sortedMagnitudes(v, v.size());
    const auto [k, sum] = detail::bestPrefix(mags, v.size());
    const Scalar a = k > 0 ? static_cast<Scalar>(sum / static_cast<double>(k)) : Scalar(0);
    return detail::writeTop(v, z, mags, k, a);
}

}  // namespace tern::proj
