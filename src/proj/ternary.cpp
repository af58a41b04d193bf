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
    // Branch-free, vectorised passes: the threshold test is a coin flip per weight, so a
    // branchy loop spends most of its time in mispredictions.
    const Index n = v.size();
    const auto mag = v.array().abs();
    // delta = ratio * mean |v_i|
    const double sumAbs = mag.cast<double>().sum();
    const auto delta = static_cast<Scalar>(static_cast<double>(ratio_) * sumAbs / static_cast<double>(n));
    // a = mean of |v_i| over I = {|v_i| > delta}
    const auto above = mag > delta;
    const auto inI = above.cast<Scalar>();
    const double sumI = (mag * inI).cast<double>().sum();
    const Index countI = above.count();
    Scalar a = 1;
    if (scale_ == ScaleMode::Free)
        a = countI > 0 ? static_cast<Scalar>(sumI / static_cast<double>(countI)) : Scalar(0);
    // z = a * sign(v) on I, 0 elsewhere (elementwise, so z may alias v)
    z.array() = (a * inI) * v.array().sign();
    return GroupResult{a, a > 0 ? countI : 0};
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
