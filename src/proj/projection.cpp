// Projection::project (argument checks, group split), the spec parser and makeProjection().
#include "tern/proj/factory.hpp"

#include "detail.hpp"
#include "tern/core/format.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>

namespace tern::proj {

// ---------------------------------------------------------------- Projection

std::vector<GroupResult> Projection::project(CVecRef v, VecRef z, Index groups) const {
    const char* where = "Projection::project()";
    requireSameSize(v.size(), z.size(), where, "v", "z");
    if (groups < 1) fail(where, TERN_MSG("groups must be >= 1 (got " << groups << ")"));
    if (v.size() == 0) fail(where, "empty group (v has 0 elements)");
    if (v.size() % groups != 0)
        fail(where,
             TERN_MSG("groups (" << groups << ") must divide the size (" << v.size() << ")"));
    requireFinite(v, where, "v");
    const Index m = v.size() / groups;
    checkGroupSize(m);
    std::vector<GroupResult> out;
    out.reserve(static_cast<std::size_t>(groups));
    for (Index g = 0; g < groups; ++g)
        out.push_back(projectGroup(v.segment(g * m, m), z.segment(g * m, m)));
    return out;
}

std::vector<GroupResult> Projection::project(CVecRef v, VecRef z, const Shape& shape,
                                             Granularity g) const {
    if (shape.size() != v.size())
        fail("Projection::project()", TERN_MSG("v has " << v.size() << " elements, shape "
                                                        << shape.str() << " has " << shape.size()));
    return project(v, z, shape.groups(g));
}

// ---------------------------------------------------------------- detail

namespace detail {

std::string formatNumber(Scalar x) {
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof buf, x);
    return std::string(buf, res.ptr);
}

SpecOptions::SpecOptions(const std::string& spec, std::string where)
    : where_(std::move(where)), spec_(spec) {
    std::size_t pos = spec.find(',');
    base_ = spec.substr(0, pos);
    // "pow2:bits=3" is "pow2,bits=3": a ':' segment holding '=' is an option, not a variant
    // (variant names have none), so the per-layer form "fc1=pow2:bits=3" reads as the issue
    // writes it
    std::vector<std::string> colonOptions;
    for (std::size_t colon = base_.rfind(':');
         colon != std::string::npos && base_.find('=', colon) != std::string::npos;
         colon = base_.rfind(':')) {
        colonOptions.insert(colonOptions.begin(), base_.substr(colon + 1));
        base_.resize(colon);
    }
    for (const std::string& item : colonOptions) addOption(item);
    while (pos != std::string::npos) {
        const std::size_t next = spec.find(',', pos + 1);
        addOption(
            spec.substr(pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1));
        pos = next;
    }
}

void SpecOptions::addOption(const std::string& item) {
    const std::size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
        fail(where_, "option '" + item + "' of '" + spec_ + "' must be key=value");
    std::string key = item.substr(0, eq);
    for (const auto& [k, value] : options_)
        if (k == key) fail(where_, "option '" + key + "' given twice in '" + spec_ + "'");
    options_.emplace_back(std::move(key), item.substr(eq + 1));
}

std::optional<std::string> SpecOptions::take(const std::string& key) {
    for (const auto& [k, value] : options_)
        if (k == key) {
            taken_[k] = true;
            return value;
        }
    return std::nullopt;
}

std::optional<Scalar> SpecOptions::takeNumber(const std::string& key) {
    auto text = take(key);
    if (!text) return std::nullopt;
    Scalar x = 0;
    const char* end = text->data() + text->size();
    auto res = std::from_chars(text->data(), end, x);
    if (text->empty() || res.ec != std::errc() || res.ptr != end || !std::isfinite(x))
        fail(where_,
             "option '" + key + "' of '" + base_ + "' must be a number (got '" + *text + "')");
    return x;
}

std::optional<long long> SpecOptions::takeInt(const std::string& key) {
    auto text = take(key);
    if (!text) return std::nullopt;
    long long x = 0;
    const char* end = text->data() + text->size();
    auto res = std::from_chars(text->data(), end, x);
    if (text->empty() || res.ec != std::errc() || res.ptr != end)
        fail(where_,
             "option '" + key + "' of '" + base_ + "' must be an integer (got '" + *text + "')");
    return x;
}

ScaleMode SpecOptions::takeScale() {
    auto text = take("scale");
    if (!text || *text == "free") return ScaleMode::Free;
    if (*text == "one") return ScaleMode::One;
    fail(where_, "option 'scale' of '" + base_ + "' must be 'free' or 'one' (got '" + *text + "')");
}

void SpecOptions::finish(const std::vector<std::string>& known) const {
    for (const auto& [k, value] : options_) {
        if (taken_.count(k)) continue;
        fail(where_, "unknown option '" + k + "' for '" + base_ +
                         "'; known: " + (known.empty() ? std::string("none") : joined(known)));
    }
}

std::vector<std::string> SpecOptions::remaining() const {
    std::vector<std::string> out;
    for (const auto& [k, value] : options_)
        if (!taken_.count(k)) out.push_back(k + "=" + value);
    return out;
}

namespace {

/// Sorts non-negative finite floats in descending order. Their IEEE-754 bit patterns order like
/// unsigned integers, so an LSD radix sort on ~bits (3 passes of 11, 11, 10 bits) gives exactly
/// std::sort's result in O(n); several times faster on the 10^5..10^7 weights of a layer.
void radixSortDescending(std::vector<Scalar>& x) {
    static_assert(sizeof(Scalar) == sizeof(std::uint32_t));
    const std::size_t n = x.size();
    std::vector<std::uint32_t> a(n), b(n);
    for (std::size_t i = 0; i < n; ++i) {
        std::uint32_t u;
        std::memcpy(&u, &x[i], sizeof u);
        a[i] = ~u;  // descending values = ascending complemented bits
    }
    for (int shift : {0, 11, 22}) {
        std::array<std::size_t, 2049> count{};
        for (std::uint32_t u : a) ++count[((u >> shift) & 2047u) + 1];
        for (std::size_t d = 1; d < count.size(); ++d) count[d] += count[d - 1];
        for (std::uint32_t u : a) b[count[(u >> shift) & 2047u]++] = u;
        a.swap(b);
    }
    for (std::size_t i = 0; i < n; ++i) {
        const std::uint32_t u = ~a[i];
        std::memcpy(&x[i], &u, sizeof u);
    }
}

}  // namespace

std::vector<Scalar> sortedMagnitudes(CVecRef v, Index count) {
    std::vector<Scalar> mags(static_cast<std::size_t>(v.size()));
    for (Index i = 0; i < v.size(); ++i) mags[static_cast<std::size_t>(i)] = std::abs(v[i]);
    count = std::clamp<Index>(count, 0, v.size());
    // Sorting the values, not indices: contiguous, several times faster than an index sort.
    if (count < v.size())
        std::nth_element(mags.begin(), mags.begin() + count, mags.end(), std::greater<>());
    if (count == v.size() && count >= 4096)
        radixSortDescending(mags);
    else
        std::sort(mags.begin(), mags.begin() + count, std::greater<>());
    return mags;
}

std::pair<Index, double> bestPrefix(const std::vector<Scalar>& mags, Index kmax) {
    double sum = 0, best = 0, bestSum = 0;
    Index bestK = 0;
    for (Index k = 1; k <= kmax; ++k) {
        sum += static_cast<double>(mags[static_cast<std::size_t>(k - 1)]);
        const double gain = sum * sum / static_cast<double>(k);  // error reduction S_k^2/k
        if (gain > best) {
            best = gain;
            bestK = k;
            bestSum = sum;
        }
    }
    return {bestK, bestSum};
}

std::vector<char> topMask(CVecRef v, const std::vector<Scalar>& mags, Index m) {
    std::vector<char> keep(static_cast<std::size_t>(v.size()), 0);
    if (m <= 0) return keep;
    // everything above the m-th magnitude, then entries equal to it in index order
    const Scalar thr = mags[static_cast<std::size_t>(m - 1)];
    Index ties = m;
    for (Index i = 0; i < v.size(); ++i) ties -= std::abs(v[i]) > thr;
    for (Index i = 0; i < v.size(); ++i) {
        const Scalar x = std::abs(v[i]);
        if (x > thr || (x == thr && ties-- > 0)) keep[static_cast<std::size_t>(i)] = 1;
    }
    return keep;
}

GroupResult writeTop(CVecRef v, VecRef z, const std::vector<Scalar>& mags, Index m, Scalar a) {
    const std::vector<char> keep = topMask(v, mags, m);
    GroupResult res{a, 0};
    for (Index i = 0; i < v.size(); ++i) {
        const Scalar vi = v[i];  // read before z[i] is written (z may alias v)
        z[i] = (keep[static_cast<std::size_t>(i)] && a > 0) ? (vi < 0 ? -a : a) : Scalar(0);
        res.nonzeros += z[i] != 0;
    }
    return res;
}

GroupResult roundTernary(CVecRef v, VecRef z) {
    GroupResult res{1, 0};
    for (Index i = 0; i < v.size(); ++i) {
        const Scalar vi = v[i];
        z[i] = vi > Scalar(0.5) ? Scalar(1) : (vi < Scalar(-0.5) ? Scalar(-1) : Scalar(0));
        res.nonzeros += z[i] != 0;
    }
    return res;
}

}  // namespace detail

// ---------------------------------------------------------------- best scale

Vector rescaleToLevels(const Projection& p, VecRef w, const Shape& shape, Granularity granularity) {
    const Index groups = shape.groups(granularity);
    requireSameSize(w.size(), shape.size(), "rescaleToLevels()", "w", "shape");
    const Index m = w.size() / groups;
    // w /= argmin_s ||w - s P(w/s)|| per group
    Vector divisors(groups);
    for (Index g = 0; g < groups; ++g) {
        divisors[g] = bestScale(p, w.segment(g * m, m));
        w.segment(g * m, m) /= divisors[g];
    }
    return divisors;
}

Scalar bestScale(const Projection& p, CVecRef w) {
    const double hi = w.size() ? static_cast<double>(w.cwiseAbs().maxCoeff()) : 0.0;
    if (!(hi > 0)) return 1;
    Vector scaled(w.size()), z(w.size());
    // err(s) = ||w - s P(w/s)||^2
    auto err = [&](double s) {
        scaled = w / static_cast<Scalar>(s);
        p.project(scaled, z, 1);
        return static_cast<double>((w - static_cast<Scalar>(s) * z).squaredNorm());
    };
    constexpr int grid = 64;
    double best = hi, bestErr = err(hi);
    for (int k = 1; k < grid; ++k) {
        const double s = hi * k / grid;
        const double e = err(s);
        if (e < bestErr) {
            bestErr = e;
            best = s;
        }
    }
    // golden-section refinement on [best - step, best + step]
    double a = std::max(best - hi / grid, hi * 1e-6), b = std::min(best + hi / grid, hi);
    const double r = (std::sqrt(5.0) - 1) / 2;
    double c = b - r * (b - a), d = a + r * (b - a), ec = err(c), ed = err(d);
    for (int it = 0; it < 40; ++it) {
        if (ec < ed) {
            b = d;
            d = c;
            ed = ec;
            c = b - r * (b - a);
            ec = err(c);
        } else {
            a = c;
            c = d;
            ec = ed;
            d = a + r * (b - a);
            ed = err(d);
        }
    }
    const double refined = ec < ed ? c : d;
    return static_cast<Scalar>(std::min(ec, ed) < bestErr ? refined : best);
}

// ---------------------------------------------------------------- factory

std::vector<std::string> projectionNames() {
    return {"box",         "binary",        "binary:scaled", "ternary",
            "ternary:twn", "ternary:exact", "ternary:topk",  "pow2"};
}

std::unique_ptr<Projection> makeProjection(const std::string& spec) {
    detail::SpecOptions opt(spec, "makeProjection()");
    const std::string& base = opt.base();
    std::unique_ptr<Projection> p;
    if (base == "box") {
        const Scalar lo = opt.takeNumber("lo").value_or(-1), hi = opt.takeNumber("hi").value_or(1);
        opt.finish({"lo", "hi"});
        p = std::make_unique<Box>(lo, hi);
    } else if (base == "binary") {
        opt.finish({});
        p = std::make_unique<BinarySign>();
    } else if (base == "binary:scaled") {
        const ScaleMode s = opt.takeScale();
        opt.finish({"scale"});
        p = std::make_unique<BinaryScaled>(s);
    } else if (base == "ternary") {
        opt.finish({});
        p = std::make_unique<TernaryFixed>();
    } else if (base == "ternary:twn") {
        const Scalar ratio = opt.takeNumber("ratio").value_or(0.7f);
        const ScaleMode s = opt.takeScale();
        opt.finish({"ratio", "scale"});
        p = std::make_unique<TernaryTwn>(ratio, s);
    } else if (base == "ternary:exact") {
        const ScaleMode s = opt.takeScale();
        opt.finish({"scale"});
        p = std::make_unique<TernaryExact>(s);
    } else if (base == "ternary:topk") {
        const auto k = opt.takeInt("k");
        const auto fraction = opt.takeNumber("fraction");
        const ScaleMode s = opt.takeScale();
        opt.finish({"k", "fraction", "scale"});
        if (k.has_value() == fraction.has_value())
            fail("makeProjection()",
                 "'ternary:topk' needs exactly one of k=<count> or "
                 "fraction=<0..1> (got '" +
                     spec + "')");
        p = std::make_unique<TernaryTopK>(k ? TernaryTopK::withK(static_cast<Index>(*k), s)
                                            : TernaryTopK::withFraction(*fraction, s));
    } else if (base == "pow2") {
        const long long bits = opt.takeInt("bits").value_or(3);
        const long long rounds = opt.takeInt("rounds").value_or(20);
        const auto solverText = opt.take("solver").value_or("alternate");
        const ScaleMode s = opt.takeScale();
        opt.finish({"bits", "rounds", "solver", "scale"});
        PowerOfTwo::Solver solver = PowerOfTwo::Solver::Alternate;
        if (solverText == "exact")
            solver = PowerOfTwo::Solver::Exact;
        else if (solverText != "alternate")
            fail("makeProjection()",
                 "option 'solver' of 'pow2' must be 'alternate' or 'exact' "
                 "(got '" +
                     solverText + "')");
        if (bits < 1 || bits > 16)  // checked here too: the int cast below must not wrap
            fail("makeProjection()",
                 TERN_MSG("option 'bits' of 'pow2' must be in [1, 16] (got " << bits << ")"));
        if (rounds < 1 || rounds > 1000000)
            fail("makeProjection()", TERN_MSG("option 'rounds' of 'pow2' must be in [1, 1000000] "
                                              "(got "
                                              << rounds << ")"));
        p = std::make_unique<PowerOfTwo>(static_cast<int>(bits), static_cast<int>(rounds), s,
                                         solver);
    } else {
        fail("makeProjection()", "unknown projection '" + base + "'; known: " + joined(projectionNames()));
    }
    return p;
}

}  // namespace tern::proj
