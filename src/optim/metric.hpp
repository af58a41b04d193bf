#pragma once
// The rescaled start of ADMM and projected SGD and its diagonal metric (AdmmSettings::
// precondition, PgdSettings::precondition), shared by both.
#include "tern/proj/projection.hpp"

namespace tern::optim::detail {

/// Brings w to the levels' scale (proj::rescaleToLevels, divisor s per group) when `rescale`;
/// returns the per-group factor 1/s^2 of the loss gradient when `precondition` too, else an
/// empty vector (identity).
inline Vector rescaledStart(const proj::Projection& p, VecRef w, const Shape& shape,
                            Granularity granularity, bool rescale, bool precondition) {
    if (!rescale) return Vector();
    const Vector divisors = proj::rescaleToLevels(p, w, shape, granularity);
    return precondition ? Vector(divisors.cwiseInverse().cwiseAbs2()) : Vector();
}

/// v *= factor[j] on the j-th of factor.size() equal groups of v; nothing for an empty factor.
inline void scaleGroups(VecRef v, const Vector& factor) {
    if (factor.size() == 0) return;
    const Index per = v.size() / factor.size();
    for (Index j = 0; j < factor.size(); ++j) v.segment(j * per, per) *= factor[j];
}

}  // namespace tern::optim::detail
