// Scaled power-of-two levels: alternating minimisation (from the exact ternary point) and an
// exact breakpoint sweep.
#include "tern/proj/power_of_two.hpp"

#include "detail.hpp"

#include <algorithm>
#include <cmath>

namespace tern::proj {

namespace {

// Nearest of {0, 1, 2, 4, ..., top} to x >= 0; ties go down. Midpoints: 0.5 between 0 and 1,
// 1.5*2^j between 2^j and 2^(j+1).
double levelOf(double x, double top) {
    if (x <= 0.5) return 0;
    if (x >= top) return top;
    if (x <= 1.5) return 1;
    int e = 0;
    std::frexp(x, &e);  // x = f * 2^e, f in [0.5, 1): 2^(e-1) <= x < 2^e
    const double lower = std::ldexp(1.0, e - 1);
    return x <= 1.5 * lower ? lower : 2 * lower;
}

// z_i = a * sign(v_i) * level_i. z may alias v.
GroupResult writeLevels(CVecRef v, VecRef z, const std::vector<double>& level, double a) {
    GroupResult res{static_cast<Scalar>(a), 0};
    for (Index i = 0; i < v.size(); ++i) {
        const Scalar vi = v[i];
        const Scalar mag = static_cast<Scalar>(a * level[static_cast<std::size_t>(i)]);
        z[i] = vi < 0 ? -mag : mag;
        res.nonzeros += z[i] != 0;
    }
    return res;
}

}  // namespace

PowerOfTwo::PowerOfTwo(int bits, int rounds, ScaleMode scale, Solver solver)
    : bits_(bits), rounds_(rounds), scale_(scale), solver_(solver) {
    requireInRange(bits, 1, 16, "PowerOfTwo::PowerOfTwo()", "bits");
    if (rounds < 1)
        fail("PowerOfTwo::PowerOfTwo()", TERN_MSG("rounds must be >= 1 (got " << rounds << ")"));
}

std::string PowerOfTwo::name() const {
    std::string s = TERN_MSG("pow2,bits=" << bits_);
    if (rounds_ != 20) s += TERN_MSG(",rounds=" << rounds_);
    if (solver_ == Solver::Exact) s += ",solver=exact";
    return s + detail::scaleSuffix(scale_);
}

Scalar PowerOfTwo::nearestLevel(Scalar x, int bits) {
    return static_cast<Scalar>(levelOf(static_cast<double>(x), std::ldexp(1.0, bits - 1)));
}

GroupResult PowerOfTwo::projectGroup(CVecRef v, VecRef z) const {
    if (scale_ == ScaleMode::One) {
        // a = 1: each entry independently to its nearest level
        const double top = std::ldexp(1.0, bits_ - 1);
        std::vector<double> level(static_cast<std::size_t>(v.size()));
        for (Index i = 0; i < v.size(); ++i)
            level[static_cast<std::size_t>(i)] = levelOf(std::abs(static_cast<double>(v[i])), top);
        GroupResult res = writeLevels(v, z, level, 1.0);
        res.scale = 1;
        return res;
    }
    return solver_ == Solver::Exact ? sweep(v, z) : alternate(v, z);
}

GroupResult PowerOfTwo::alternate(CVecRef v, VecRef z) const {
    const Index n = v.size();
    const auto un = static_cast<std::size_t>(n);
    const double top = std::ldexp(1.0, bits_ - 1);
    // Start: the exact ternary solution (k*, a = S_k*/k*), Q in {-1, 0, 1}.
    const std::vector<Scalar> mags = detail::sortedMagnitudes(v, n);
    const auto [k, sum] = detail::bestPrefix(mags, n);
    std::vector<double> q(un, 0.0);
    if (k == 0) return writeLevels(v, z, q, 0.0);  // v == 0
    const std::vector<char> inTop = detail::topMask(v, mags, k);
    for (std::size_t i = 0; i < un; ++i) q[i] = inTop[i];
    double a = sum / static_cast<double>(k);
    double bestGain = sum * sum / static_cast<double>(k);  // ||v||^2 - error
    double bestA = a;
    std::vector<double> best = q;
    for (int round = 0; round < rounds_; ++round) {
        // Q-step: Q = nearest level of v/a
        bool changed = false;
        for (Index i = 0; i < n; ++i) {
            const double l = levelOf(std::abs(static_cast<double>(v[i])) / a, top);
            changed = changed || l != q[static_cast<std::size_t>(i)];
            q[static_cast<std::size_t>(i)] = l;
        }
        if (!changed) break;  // fixed point
        // a-step: a = <v, Q> / <Q, Q>
        double vq = 0, qq = 0;
        for (Index i = 0; i < n; ++i) {
            vq += std::abs(static_cast<double>(v[i])) * q[static_cast<std::size_t>(i)];
            qq += q[static_cast<std::size_t>(i)] * q[static_cast<std::size_t>(i)];
        }
        if (qq == 0) break;  // cannot happen (a <= max|v|), kept as a guard
        a = vq / qq;
        const double gain = vq * vq / qq;
        if (gain > bestGain) {  // both steps are descent steps; keep the best against rounding
            bestGain = gain;
            bestA = a;
            best = q;
        }
    }
    return writeLevels(v, z, best, bestA);
}

GroupResult PowerOfTwo::sweep(CVecRef v, VecRef z) const {
    const Index n = v.size();
    const auto un = static_cast<std::size_t>(n);
    // Level magnitudes L_0 = 0, L_j = 2^(j-1); entry i moves from L_j to L_{j+1} when a drops
    // below |v_i| / m_j, m_0 = 0.5, m_j = 1.5 * 2^(j-1).
    std::vector<double> lv(static_cast<std::size_t>(bits_) + 1),
        mid(static_cast<std::size_t>(bits_));
    lv[0] = 0;
    for (int j = 1; j <= bits_; ++j) lv[static_cast<std::size_t>(j)] = std::ldexp(1.0, j - 1);
    for (int j = 0; j < bits_; ++j)
        mid[static_cast<std::size_t>(j)] =
            0.5 * (lv[static_cast<std::size_t>(j)] + lv[static_cast<std::size_t>(j) + 1]);
    struct Event {
        double key;  // breakpoint a = |v_i| / m_j
        Index i;
        int j;
    };
    std::vector<Event> events;
    events.reserve(un * static_cast<std::size_t>(bits_));
    for (Index i = 0; i < n; ++i) {
        const double m = std::abs(static_cast<double>(v[i]));
        if (m > 0)
            for (int j = 0; j < bits_; ++j)
                events.push_back({m / mid[static_cast<std::size_t>(j)], i, j});
    }
    std::sort(events.begin(), events.end(), [](const Event& x, const Event& y) {
        return x.key > y.key || (x.key == y.key && (x.i < y.i || (x.i == y.i && x.j < y.j)));
    });
    // Sweep a downwards: update <|v|, |Q|> and <Q, Q>; candidate gain <|v|,|Q|>^2 / <Q,Q>.
    double vq = 0, qq = 0, bestGain = 0;
    std::size_t bestCount = 0;  // events applied at the best code
    for (std::size_t e = 0; e < events.size(); ++e) {
        const Event& ev = events[e];
        const auto j = static_cast<std::size_t>(ev.j);
        vq += std::abs(static_cast<double>(v[ev.i])) * (lv[j + 1] - lv[j]);
        qq += lv[j + 1] * lv[j + 1] - lv[j] * lv[j];
        const double gain = vq * vq / qq;
        if (gain > bestGain) {
            bestGain = gain;
            bestCount = e + 1;
        }
    }
    std::vector<double> level(un, 0.0);
    double bvq = 0, bqq = 0;
    for (std::size_t e = 0; e < bestCount; ++e)
        level[static_cast<std::size_t>(events[e].i)] =
            lv[static_cast<std::size_t>(events[e].j) + 1];
    for (std::size_t i = 0; i < un; ++i) {
        bvq += std::abs(static_cast<double>(v[static_cast<Index>(i)])) * level[i];
        bqq += level[i] * level[i];
    }
    return writeLevels(v, z, level, bqq > 0 ? bvq / bqq : 0.0);
}

}  // namespace tern::proj
