// The ternary check of a trained block, its codes and levels, and the 2-bit packing of the
// model file; the power-of-two check, its sign + exponent codes and their packing
// (docs/export.md).
#include "tern/deploy/codes.hpp"

#include "tern/core/error.hpp"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <limits>
#include <optional>
#include <sstream>
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

// ------------------------------------------------------------------ powers of two

namespace {

/// The exponent e of x > 0 if x is 2^e within `tol` relative, else nothing.
std::optional<int> exponentOf(double x, double tol) {
    if (!(x > 0) || !std::isfinite(x)) return std::nullopt;
    const double e = std::round(std::log2(x));
    const double p = std::ldexp(1.0, static_cast<int>(e));
    if (std::abs(x - p) > tol * p) return std::nullopt;
    return static_cast<int>(e);
}

/// One group's fit: its scale a (1 or the smallest nonzero magnitude) and its values'
/// exponents, or the first value that does not fit.
struct PowerFit {
    bool ok = true;
    double a = 1;
    Index badIndex = -1;
    std::vector<int> exponents;  // per value (0 for a zero)
};

PowerFit powerFitOf(const float* v, Index n, double tol) {
    PowerFit f;
    double smallest = std::numeric_limits<double>::infinity();
    for (Index i = 0; i < n; ++i) {
        if (!std::isfinite(v[i])) {
            f.ok = false;
            f.badIndex = i;
            return f;
        }
        if (v[i] != 0) smallest = std::min(smallest, std::abs(double(v[i])));
    }
    f.exponents.assign(static_cast<size_t>(n), 0);
    if (!std::isfinite(smallest)) return f;  // all zero: a = 1, no exponents
    // a = 1 when the values are powers of two themselves (GTC, pow2 with scale one): the
    // codes are then the exponents, and no scale multiplies. Else a free scale: the smallest
    // magnitude is a * 2^j for some j >= 0, and every other one a * 2^k = smallest * 2^(k-j).
    for (const double a : {1.0, smallest}) {
        f.a = a;
        f.ok = true;
        for (Index i = 0; i < n && f.ok; ++i) {
            if (v[i] == 0) continue;
            const std::optional<int> e = exponentOf(std::abs(double(v[i])) / a, tol);
            if (e) f.exponents[static_cast<size_t>(i)] = *e;
            else {
                f.ok = false;
                f.badIndex = i;
            }
        }
        if (f.ok) return f;
    }
    return f;
}

/// "filter <g> holds <v> (value <i>), which is not <a> times a power of two"
std::string powerFailure(const ParameterBlock& w, Index g, Index gsize, const PowerFit& f) {
    const Index i = g * gsize + f.badIndex;
    // the scale tried last: the group's smallest nonzero magnitude
    double smallest = 0;
    for (Index j = g * gsize; j < (g + 1) * gsize; ++j)
        if (w.value[j] != 0 && std::isfinite(w.value[j]) &&
            (smallest == 0 || std::abs(double(w.value[j])) < smallest))
            smallest = std::abs(double(w.value[j]));
    std::ostringstream m;
    m << std::setprecision(9) << "filter " << g << " holds " << w.value[i] << " (value " << i
      << "), which is not " << (std::isfinite(w.value[i]) ? smallest : 1.0)
      << " times a power of two";
    return m.str();
}

/// The power-of-two encoding, or (in `why`) the reason there is none.
std::optional<PowerOfTwoCodes> tryPowerOfTwo(const ParameterBlock& w, double tol, std::string& why) {
    const Index n = w.value.size();
    PowerOfTwoCodes p;
    const PowerFit whole = powerFitOf(w.value.data(), n, tol);
    p.groups = whole.ok ? 1 : w.shape.filters();
    const Index gsize = n / p.groups;
    std::vector<PowerFit> fits;
    if (whole.ok) fits.push_back(whole);
    for (Index g = 0; !whole.ok && g < p.groups; ++g) {
        fits.push_back(powerFitOf(w.value.data() + g * gsize, gsize, tol));
        if (!fits.back().ok) {
            why = powerFailure(w, g, gsize, fits.back());
            return std::nullopt;
        }
    }
    bool any = false;
    for (Index i = 0; i < n; ++i) {
        if (w.value[i] == 0) continue;
        const int e = fits[static_cast<size_t>(i / gsize)].exponents[static_cast<size_t>(i % gsize)];
        p.exponentMin = any ? std::min(p.exponentMin, e) : e;
        p.exponentMax = any ? std::max(p.exponentMax, e) : e;
        any = true;
    }
    const long range = long(p.exponentMax) - long(p.exponentMin) + 1;
    if (range > kMaxPowerOfTwoExponents) {
        why = TERN_MSG("it uses the exponents " << p.exponentMin << ".." << p.exponentMax << ": "
                                                << range << " of them, more than the "
                                                << kMaxPowerOfTwoExponents
                                                << " an 8-bit code holds");
        return std::nullopt;
    }
    p.bits = powerOfTwoCodeBits(p.exponentMin, p.exponentMax);
    p.groupScale.resize(p.groups);
    for (Index g = 0; g < p.groups; ++g)
        p.groupScale[g] = static_cast<Scalar>(fits[static_cast<size_t>(g)].a);  // a float already
    p.codes.assign(static_cast<size_t>(n), 0);
    for (Index i = 0; i < n; ++i) {
        if (w.value[i] == 0) continue;
        const int e = fits[static_cast<size_t>(i / gsize)].exponents[static_cast<size_t>(i % gsize)];
        const int mag = e - p.exponentMin + 1;
        p.codes[static_cast<size_t>(i)] = static_cast<std::int8_t>(w.value[i] > 0 ? mag : -mag);
    }
    return p;
}

int ceilLog2(long x) {  // smallest b with 2^b >= x, x >= 1; in integers
    int b = 0;
    while ((1L << b) < x) ++b;
    return b;
}

}  // namespace

PowerOfTwoCodes encodePowerOfTwo(const ParameterBlock& w, double tol) {
    std::string why;
    std::optional<PowerOfTwoCodes> p = tryPowerOfTwo(w, tol, why);
    if (!p) throw std::runtime_error("block '" + w.name + "' is not power-of-two: " + why);
    return std::move(*p);
}

int powerOfTwoCodeBits(int exponentMin, int exponentMax) {
    const long range = long(exponentMax) - long(exponentMin) + 1;
    if (range < 1 || range > kMaxPowerOfTwoExponents)
        fail("powerOfTwoCodeBits()",
             TERN_MSG("the exponents " << exponentMin << ".." << exponentMax << " are " << range
                                       << ", expected 1 to " << kMaxPowerOfTwoExponents));
    return 1 + ceilLog2(range + 1);  // sign; |code| in 0..R, 0 the zero
}

int gtcBits(int exponentMin, int exponentMax) {
    const long range = long(exponentMax) - long(exponentMin) + 1;
    if (range < 1)
        fail("gtcBits()", TERN_MSG("the largest exponent " << exponentMax
                                                           << " is below the smallest "
                                                           << exponentMin));
    return 1 + ceilLog2(range);
}

std::vector<std::uint8_t> packPowerOfTwoCodes(const std::vector<std::int8_t>& codes, int bits) {
    requireInRange(bits, 2, 8, "packPowerOfTwoCodes()", "bits");
    const int maxMag = (1 << (bits - 1)) - 1;
    const auto n = static_cast<Index>(codes.size());
    std::vector<std::uint8_t> out(static_cast<size_t>((n * bits + 7) / 8), 0);
    for (Index i = 0; i < n; ++i) {
        const int c = codes[static_cast<size_t>(i)];
        if (std::abs(c) > maxMag)
            fail("packPowerOfTwoCodes()",
                 TERN_MSG("code " << i << " is " << c << ", more than " << bits
                                  << " bits hold (|code| <= " << maxMag << ")"));
        const unsigned field = static_cast<unsigned>(std::abs(c)) | (c < 0 ? 1u << (bits - 1) : 0u);
        for (int b = 0; b < bits; ++b)
            if (field >> b & 1u) {
                const Index k = i * bits + b;
                out[static_cast<size_t>(k / 8)] |= static_cast<std::uint8_t>(1u << (k % 8));
            }
    }
    return out;
}

std::vector<std::int8_t> unpackPowerOfTwoCodes(const std::vector<std::uint8_t>& packed,
                                               Index count, int bits, int maxMagnitude) {
    requireInRange(bits, 2, 8, "unpackPowerOfTwoCodes()", "bits");
    if (count < 0 || static_cast<Index>(packed.size()) != (count * bits + 7) / 8)
        fail("unpackPowerOfTwoCodes()",
             TERN_MSG(packed.size() << " bytes cannot hold " << count << " codes of " << bits
                                    << " bits (expected " << (count * bits + 7) / 8 << ")"));
    std::vector<std::int8_t> out(static_cast<size_t>(count));
    for (Index i = 0; i < count; ++i) {
        unsigned field = 0;
        for (int b = 0; b < bits; ++b) {
            const Index k = i * bits + b;
            field |= ((packed[static_cast<size_t>(k / 8)] >> (k % 8)) & 1u) << b;
        }
        const int mag = static_cast<int>(field & ((1u << (bits - 1)) - 1));
        const bool negative = (field >> (bits - 1)) & 1u;
        if (negative && mag == 0)
            fail("unpackPowerOfTwoCodes()",
                 TERN_MSG("code " << i << " is a negative zero (invalid)"));
        if (mag > maxMagnitude)
            fail("unpackPowerOfTwoCodes()",
                 TERN_MSG("code " << i << " has the exponent index " << mag << ", above the "
                                  << maxMagnitude << " exponents of the layer"));
        out[static_cast<size_t>(i)] = static_cast<std::int8_t>(negative ? -mag : mag);
    }
    return out;
}

QuantizedCodes encodeQuantized(const ParameterBlock& w, double tol) {
    QuantizedCodes q;
    try {
        q.ternary = encodeTernary(w, tol);
        return q;
    } catch (const std::runtime_error& notTernary) {
        std::string why;
        std::optional<PowerOfTwoCodes> p = tryPowerOfTwo(w, tol, why);
        if (!p)
            throw std::runtime_error(std::string(notTernary.what()) +
                                     " and not power-of-two: " + why);
        q.coding = WeightCoding::PowerOfTwo;
        q.powerOfTwo = std::move(*p);
        return q;
    }
}

}  // namespace tern::deploy
