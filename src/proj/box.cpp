// Box [lo, hi]^n: clip.
#include "tern/proj/box.hpp"

#include "detail.hpp"

#include <algorithm>
#include <cmath>

namespace tern::proj {

Box::Box(Scalar lo, Scalar hi) : lo_(lo), hi_(hi) {
    if (!std::isfinite(lo) || !std::isfinite(hi) || !(lo <= hi))
        fail("Box::Box()",
             TERN_MSG("need finite lo <= hi (got lo = " << lo << ", hi = " << hi << ")"));
}

std::string Box::name() const {
    std::string s = "box";
    if (lo_ != -1) s += ",lo=" + detail::formatNumber(lo_);
    if (hi_ != 1) s += ",hi=" + detail::formatNumber(hi_);
    return s;
}

GroupResult Box::projectGroup(CVecRef v, VecRef z) const {
    GroupResult res{1, 0};
    for (Index i = 0; i < v.size(); ++i) {
        z[i] = std::clamp(v[i], lo_, hi_);
        res.nonzeros += z[i] != 0;
    }
    return res;
}

}  // namespace tern::proj
