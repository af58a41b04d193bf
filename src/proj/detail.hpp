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
    std::string where_, spec_, base_;
    std::vector<std::pair<std::string, std::string>> options_;  // in spec order
    std::map<std::string, bool> taken_;
};

/// ",scale=one" or "".
inline std::string scaleSuffix(ScaleMode s) { return s == ScaleMode::One ? ",scale=one" : ""; }

/// Indices of v ordered by |v_i| descending (ties by index); only the first `count` are
/// guaranteed sorted (partial sort).
std::vector<Index> orderByMagnitude(CVecRef v, Index count);

/// m in [0, kmax] maximising S_m^2/m over the prefix sums S_m of |v| in `order` (m = 0 when v
/// is zero on the prefix), with S_m.
std::pair<Index, double> bestPrefix(CVecRef v, const std::vector<Index>& order, Index kmax);

/// z_i = a*sign(v_i) for the first m indices of `order`, 0 elsewhere. z may alias v.
GroupResult writeTop(CVecRef v, VecRef z, const std::vector<Index>& order, Index m, Scalar a);

/// z_i = sign(v_i)*[|v_i| > 1/2]: the projection onto {-1, 0, 1}^n. z may alias v.
GroupResult roundTernary(CVecRef v, VecRef z);

}  // namespace tern::proj::detail
