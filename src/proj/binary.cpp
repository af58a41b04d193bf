// Binary sets: sign, and BWN's a*sign with a = mean |v|.
#include "tern/proj/binary.hpp"

#include "detail.hpp"

#include <cmath>

namespace tern::proj {

GroupResult BinarySign::projectGroup(CVecRef v, VecRef z) const {
    for (Index i = 0; i < v.size(); ++i) z[i] = v[i] < 0 ? Scalar(-1) : Scalar(1);
    return {1, v.size()};
}

std::string BinaryScaled::name() const { return "binary:scaled" + detail::scaleSuffix(scale_); }

GroupResult BinaryScaled::projectGroup(CVecRef v, VecRef z) const {
    // a = <v, sign(v)>/n = mean |v_i|  (1 when the scale is fixed)
    Scalar a = 1;
    if (scale_ == ScaleMode::Free) {
        double sum = 0;
        for (Index i = 0; i < v.size(); ++i) sum += std::abs(static_cast<double>(v[i]));
        a = static_cast<Scalar>(sum / static_cast<double>(v.size()));
    }
    for (Index i = 0; i < v.size(); ++i) z[i] = v[i] < 0 ? -a : a;
    return {a, a > 0 ? v.size() : 0};
}

}  // namespace tern::proj
