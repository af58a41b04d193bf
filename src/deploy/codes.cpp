// The ternary check of a trained block, its codes and levels, and the 2-bit packing of the
// model file (docs/export.md).
#include "tern/deploy/codes.hpp"

#include "tern/core/error.hpp"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <stdexcept>

namespace tern::deploy {

namespace {

/// The levels of one group: at most two distinct nonzero values, hi >= lo (within tol).
struct Levels {
    double hi = 0, lo = 0;  ///< largest and smallest nonzero value (0 if none)
    bool any = false, ok = true;
    Index badIndex = -1;
};

Levels levelsOf(const float* v, Index n, double tol) {
    Levels L;
    for (Index i = 0; i < n; ++i) {
        if (!std::isfinite(v[i])) {
            L.ok = false;
            L.badIndex = i;
            return L;
        }
        if (v[i] == 0) continue;
        L.hi = L.any ? std::max(L.hi, double(v[i])) : double(v[i]);
        L.lo = L.any ? std::min(L.lo, double(v[i])) : double(v[i]);
        L.any = true;
    }
    const double m = std::max(std::abs(L.hi), std::abs(L.lo));
    for (Index i = 0; i < n && L.ok; ++i) {
        const double x = v[i];
        if (x != 0 && std::abs(x - L.hi) > tol * m && std::abs(x - L.lo) > tol * m) {
            L.ok = false;
            L.badIndex = i;
        }
    }
    return L;
}

/// The representation of a group's levels: code +1 stands for a, code -1 for -r*a.
/// Sign-symmetric {-a, 0, +a} (and one-sided sets) give r = 1; an all-zero group a = r = 1.
/// TTQ's independent Wp, Wn give r = Wn/Wp; its Wp may even change sign in training, so the two
/// levels can share a sign (then r < 0).
struct GroupCode {
    double a = 1, r = 1;
    bool twoLevels = false;  // codes: +1 for hi, -1 for lo (else the sign)
};

GroupCode groupCode(const Levels& L, double tol) {
    GroupCode g;
    if (!L.any) return g;
    const double m = std::max(std::abs(L.hi), std::abs(L.lo));
    if (std::abs(L.hi - L.lo) <= tol * m) {  // one nonzero level
        g.a = std::abs(L.hi);
        return g;
    }
    if (L.hi > 0 && L.lo < 0 && std::abs(L.hi + L.lo) <= tol * m) {  // {-a, 0, +a}
        g.a = m;
        return g;
    }
    g.twoLevels = true;
    g.a = L.hi;
    g.r = -L.lo / L.hi;
    return g;
}

std::int8_t codeOf(float v, const Levels& L, const GroupCode& g) {
    if (v == 0) return 0;
    if (!g.twoLevels) return static_cast<std::int8_t>(v > 0 ? 1 : -1);
    return static_cast<std::int8_t>(std::abs(v - L.hi) <= std::abs(v - L.lo) ? 1 : -1);
}

}  // namespace

// ------------------------------------------------------------------ the ternary check

TernaryCodes encodeTernary(const ParameterBlock& w, double tol) {
    const Index n = w.value.size();
    TernaryCodes t;
    // One pair of levels for the whole tensor if it has one, else one per filter.
    const Levels whole = levelsOf(w.value.data(), n, tol);
    t.groups = whole.ok ? 1 : w.shape.filters();
    const Index gsize = n / t.groups;
    t.groupScale.resize(t.groups);
    t.negRatio.resize(t.groups);
    t.groupScaleExact.resize(static_cast<size_t>(t.groups));
    t.codes.resize(static_cast<size_t>(n));
    for (Index g = 0; g < t.groups; ++g) {
        const float* v = w.value.data() + g * gsize;
        const Levels L = t.groups == 1 ? whole : levelsOf(v, gsize, tol);
        if (!L.ok) {
            const Index i = g * gsize + L.badIndex;
            throw std::runtime_error(
                TERN_MSG("block '" << w.name << "' is not ternary: filter " << g << " holds "
                                   << std::setprecision(9) << w.value[i] << " besides the levels "
                                   << L.lo << ", 0, " << L.hi << " (value " << i << ")"));
        }
        const GroupCode gc = groupCode(L, tol);
        t.groupScale[g] = static_cast<Scalar>(gc.a);
        t.groupScaleExact[static_cast<size_t>(g)] = gc.a;
        t.negRatio[g] = static_cast<Scalar>(gc.r);
        for (Index i = 0; i < gsize; ++i) t.codes[g * gsize + i] = codeOf(v[i], L, gc);
    }
    return t;
}

// ------------------------------------------------------------------------ packing

std::vector<std::uint8_t> packCodes(const std::vector<std::int8_t>& codes) {
    std::vector<std::uint8_t> out((codes.size() + 3) / 4, 0);
    for (size_t i = 0; i < codes.size(); ++i) {
        const std::int8_t c = codes[i];
        if (c < -1 || c > 1)
            fail("packCodes()",
                 TERN_MSG("code " << i << " is " << int(c) << ", expected -1, 0 or 1"));
        const std::uint8_t bits = c == 0 ? 0u : (c > 0 ? 1u : 2u);
        out[i / 4] = static_cast<std::uint8_t>(out[i / 4] | (bits << (2 * (i % 4))));
    }
    return out;
}

std::vector<std::int8_t> unpackCodes(const std::vector<std::uint8_t>& packed, Index count) {
    if (count < 0 || static_cast<Index>(packed.size()) != (count + 3) / 4)
        fail("unpackCodes()",
             TERN_MSG(packed.size() << " bytes cannot hold " << count << " codes (expected "
                                    << (count + 3) / 4 << ")"));
    std::vector<std::int8_t> out(static_cast<size_t>(count));
    for (Index i = 0; i < count; ++i) {
        const unsigned bits = (packed[i / 4] >> (2 * (i % 4))) & 3u;
        if (bits == 3u)
            fail("unpackCodes()", TERN_MSG("code " << i << " has the invalid bits 0b11"));
        out[i] = bits == 0 ? 0 : (bits == 1 ? 1 : -1);
    }
    return out;
}

}  // namespace tern::deploy
