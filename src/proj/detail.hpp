#pragma once
// Private helpers of src/proj: number formatting for specs, a small spec parser, and the
// sort-by-magnitude machinery shared by the ternary projections.
#include "tern/core/error.hpp"
#include "tern/proj/projection.hpp"
#include "tern/proj/scale.hpp"

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tern::proj::detail {

/// 8 floats as one value, and the matching integer lanes (comparison masks), for loops that
/// GCC would otherwise compile to a compare-and-branch per weight (Eigen's select() and
/// (x > t).cast<float>() were not vectorized). Lowered to two SSE or one AVX register.
typedef float Vec8 __attribute__((vector_size(32)));
typedef int Mask8 __attribute__((vector_size(32)));
/// for unaligned loads and stores from float data
typedef float Vec8U __attribute__((vector_size(32), aligned(4), may_alias));

// These inline helpers never cross a real call, so GCC's note that returning a 32-byte vector
// without AVX changes the ABI does not apply.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
inline Vec8 load8(const Scalar* p) { return *reinterpret_cast<const Vec8U*>(p); }
inline void store8(Scalar* p, const Vec8& v) { *reinterpret_cast<Vec8U*>(p) = v; }
/// v where the mask is set, 0 elsewhere
inline Vec8 where(const Mask8& m, const Vec8& v) { return (Vec8)((Mask8)v & m); }
/// |v| lane by lane (the sign bit cleared)
inline Vec8 abs8(const Vec8& v) { return (Vec8)((Mask8)v & (Mask8{} + 0x7fffffff)); }
/// sum of the 8 lanes, in double
inline double sumLanes(const Vec8& v) {
    double s = 0;
    for (int l = 0; l < 8; ++l) s += v[l];
    return s;
}
#pragma GCC diagnostic pop

/// Shortest decimal text that reads back as the same float ("0.7", "1e-05").
std::string formatNumber(Scalar x);

/// "<base>,<key>=<value>,..." split and checked; options are consumed with take*() and
/// finish() rejects whatever is left, naming it and the known keys. `where` prefixes messages.
class SpecOptions {
public:
    SpecOptions(const std::string& spec, std::string where);
    const std::string& base() const { return base_; }
    /// Raw option text, or nullopt.
    std::optional<std::string> take(const std::string& key);
    /// A number (float), or nullopt if absent; throws naming the key if not a number.
    std::optional<Scalar> takeNumber(const std::string& key);
    /// An integer, or nullopt if absent; throws naming the key if not an integer.
    std::optional<long long> takeInt(const std::string& key);
    /// scale=free|one (default free).
    ScaleMode takeScale();
    /// Throws if an option was not consumed; `known` lists the keys the base accepts.
    void finish(const std::vector<std::string>& known) const;
    /// Remaining options in spec order, as "key=value".
    std::vector<std::string> remaining() const;

private:
    /// One "key=value" item (a duplicate key or a missing '=' throws).
    void addOption(const std::string& item);

    std::string where_, spec_, base_;
    std::vector<std::pair<std::string, std::string>> options_;  // in spec order
    std::map<std::string, bool> taken_;
};

/// ",scale=one" or "".
inline std::string scaleSuffix(ScaleMode s) { return s == ScaleMode::One ? ",scale=one" : ""; }

/// |v_i|, the `count` largest first in descending order (the rest in no particular order).
std::vector<Scalar> sortedMagnitudes(CVecRef v, Index count);

/// m in [0, kmax] maximising S_m^2/m over the prefix sums S_m of `mags` (sorted descending at
/// least up to kmax); m = 0 when that prefix is zero. Returns m and S_m.
std::pair<Index, double> bestPrefix(const std::vector<Scalar>& mags, Index kmax);

/// Mask of the m entries of largest |v_i| (ties by index); `mags` from sortedMagnitudes().
std::vector<char> topMask(CVecRef v, const std::vector<Scalar>& mags, Index m);

/// z_i = a*sign(v_i) on topMask(v, mags, m), 0 elsewhere. z may alias v.
GroupResult writeTop(CVecRef v, VecRef z, const std::vector<Scalar>& mags, Index m, Scalar a);

/// z_i = sign(v_i)*[|v_i| > 1/2]: the projection onto {-1, 0, 1}^n. z may alias v.
GroupResult roundTernary(CVecRef v, VecRef z);

}  // namespace tern::proj::detail
