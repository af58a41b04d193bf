// Generalized Ternary Connect's quantizer: signed powers of two with a trained exponent map.
#include "tern/proj/gtc.hpp"

#include "detail.hpp"
#include "tern/core/parallel.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace tern::proj {

namespace {

constexpr double kLn2 = 0.69314718055994530942;

/// One entry of the quantizer: zero, or sign(w) * 2^k with k = clamp(round(e)).
struct Code {
    bool zero = true;
    bool clamped = false;
    int k = 0;
    double u = 0;  // log2|w|
    double e = 0;  // theta1 + theta2 * u, unrounded
};

Code codeOf(Scalar w, Scalar thr, double t1, double t2) {
    Code c;
    const Scalar a = std::abs(w);
    if (!(a > thr)) return c;  // |w| <= thr (and w == 0 when thr == 0)
    c.zero = false;
    c.u = std::log2(static_cast<double>(a));
    c.e = t1 + t2 * c.u;
    const double r = std::round(c.e);
    if (r < GtcQuantizer::kMinExponent) {
        c.clamped = true;
        c.k = GtcQuantizer::kMinExponent;
    } else if (r > GtcQuantizer::kMaxExponent) {
        c.clamped = true;
        c.k = GtcQuantizer::kMaxExponent;
    } else {
        c.k = static_cast<int>(r);
    }
    return c;
}

/// sign(w) * 2^k as a float (exact: k is a normal exponent).
Scalar signedPow2(Scalar w, int k) { return std::copysign(std::ldexp(Scalar(1), k), w); }

/// 1 + ceil(log2(range + 1)) for an integer range >= 0, in integers.
int bitsForRange(int range) {
    int b = 0;
    while ((std::int64_t{1} << b) < std::int64_t{range} + 1) ++b;
    return 1 + b;
}

void requireFiniteTheta(Scalar t1, Scalar t2, const char* where) {
    if (!std::isfinite(t1)) fail(where, TERN_MSG("theta1 is not finite (got " << t1 << ")"));
    if (!std::isfinite(t2)) fail(where, TERN_MSG("theta2 is not finite (got " << t2 << ")"));
}

std::string joinKey(const std::string& prefix, const std::string& key) {
    return prefix.empty() ? key : prefix + "/" + key;
}

}  // namespace

// ---------------------------------------------------------------- settings

void GtcSettings::validate() const {
    const char* where = "GtcSettings::validate()";
    if (!(eps >= 0 && eps < 1)) fail(where, TERN_MSG("eps must be in [0, 1) (got " << eps << ")"));
    if (!std::isfinite(theta1))
        fail(where, TERN_MSG("theta1 must be finite (got " << theta1 << ")"));
    if (!std::isfinite(theta2))
        fail(where, TERN_MSG("theta2 must be finite (got " << theta2 << ")"));
}

// ---------------------------------------------------------------- quantizer

GtcQuantizer::GtcQuantizer(GtcSettings settings) : s_(settings) {
    s_.validate();
    theta_.add("theta1", Shape{1}, /*constrained=*/false, /*decay=*/false).value[0] = s_.theta1;
    theta_.add("theta2", Shape{1}, /*constrained=*/false, /*decay=*/false).value[0] = s_.theta2;
}

std::string GtcQuantizer::name() const {
    const GtcSettings d;
    std::string s = "gtc";
    if (s_.eps != d.eps) s += ",eps=" + detail::formatNumber(s_.eps);
    if (s_.theta1 != d.theta1) s += ",theta1=" + detail::formatNumber(s_.theta1);
    if (s_.theta2 != d.theta2) s += ",theta2=" + detail::formatNumber(s_.theta2);
    return s;
}

void GtcQuantizer::forward(CVecRef latent, VecRef wq, const Shape& shape) {
    const char* where = "GtcQuantizer::forward()";
    requireSameSize(latent.size(), wq.size(), where, "latent", "wq");
    if (shape.size() != latent.size())
        fail(where, TERN_MSG("latent has " << latent.size() << " elements, shape " << shape.str()
                                           << " has " << shape.size()));
    if (latent.size() == 0) fail(where, "empty block");
    requireFinite(latent, where, "latent");
    const Scalar theta1 = this->theta1(), theta2 = this->theta2();
    requireFiniteTheta(theta1, theta2, where);
    const Index n = latent.size();
    const Index chunks = parallelChunkCount(n);

    // thr = eps * max|w|
    std::vector<Scalar> chunkMax(static_cast<size_t>(chunks));
    parallelChunks(n, [&](Index b, Index len, Index c) {
        chunkMax[size_t(c)] = latent.segment(b, len).cwiseAbs().maxCoeff();
    });
    const Scalar thr = s_.eps * *std::max_element(chunkMax.begin(), chunkMax.end());
    const double t1 = theta1, t2 = theta2;

    // w~ = sign(w) * 2^clamp(round(theta1 + theta2 * log2|w|)), 0 for |w| <= thr; per chunk the
    // rounded range (M, m) and the first argmax / argmin of the unrounded exponent
    struct Part {
        Index nonzeros = 0;
        int kMax = std::numeric_limits<int>::min(), kMin = std::numeric_limits<int>::max();
        double eMax = -std::numeric_limits<double>::infinity();
        double eMin = std::numeric_limits<double>::infinity();
        Index iMax = -1, iMin = -1;
    };
    std::vector<Part> parts(static_cast<size_t>(chunks));
    const Scalar* w = latent.data();
    Scalar* out = wq.data();
    parallelChunks(n, [&, w, out, thr, t1, t2](Index b, Index len, Index c) {
        Part p;
        for (Index i = b; i < b + len; ++i) {
            const Scalar wi = w[i];
            const Code code = codeOf(wi, thr, t1, t2);
            if (code.zero) {
                out[i] = 0;
                continue;
            }
            out[i] = signedPow2(wi, code.k);
            ++p.nonzeros;
            p.kMax = std::max(p.kMax, code.k);
            p.kMin = std::min(p.kMin, code.k);
            if (code.e > p.eMax) {
                p.eMax = code.e;
                p.iMax = i;
            }
            if (code.e < p.eMin) {
                p.eMin = code.e;
                p.iMin = i;
            }
        }
        parts[size_t(c)] = p;
    });
    // Combine in chunk order: strict comparisons keep the first index on ties
    Part all;
    for (const Part& p : parts) {
        if (p.nonzeros == 0) continue;
        all.nonzeros += p.nonzeros;
        all.kMax = std::max(all.kMax, p.kMax);
        all.kMin = std::min(all.kMin, p.kMin);
        if (p.eMax > all.eMax) {
            all.eMax = p.eMax;
            all.iMax = p.iMax;
        }
        if (p.eMin < all.eMin) {
            all.eMin = p.eMin;
            all.iMin = p.iMin;
        }
    }

    forwarded_ = true;
    size_ = n;
    thr_ = thr;
    t1_ = t1;
    t2_ = t2;
    bits_ = GtcBits{};
    bits_.nonzeros = all.nonzeros;
    argMax_ = argMin_ = -1;
    maxClamped_ = minClamped_ = false;
    if (all.nonzeros > 0) {
        // bits = 1 + ceil(log2(M - m + 1)), cost = 2^bits
        bits_.maxExponent = all.kMax;
        bits_.minExponent = all.kMin;
        bits_.bits = bitsForRange(all.kMax - all.kMin);
        bits_.cost = std::ldexp(1.0, bits_.bits);
        argMax_ = all.iMax;
        argMin_ = all.iMin;
        wMax_ = w[argMax_];
        wMin_ = w[argMin_];
        maxClamped_ = codeOf(wMax_, thr, t1, t2).clamped;
        minClamped_ = codeOf(wMin_, thr, t1, t2).clamped;
    }
}

void GtcQuantizer::backward(CVecRef latent, CVecRef dWq, VecRef dLatent) {
    const char* where = "GtcQuantizer::backward()";
    if (!forwarded_) fail(where, "called before forward()");
    requireSameSize(latent.size(), dWq.size(), where, "latent", "dWq");
    requireSameSize(latent.size(), dLatent.size(), where, "latent", "dLatent");
    if (latent.size() != size_)
        fail(where, TERN_MSG("latent has " << latent.size() << " elements, the last forward() had "
                                           << size_));
    const Index n = latent.size();
    const Index chunks = parallelChunkCount(n);
    std::vector<double> sum1(static_cast<size_t>(chunks)), sum2(static_cast<size_t>(chunks));
    const Scalar* w = latent.data();
    const Scalar* g = dWq.data();
    Scalar* dl = dLatent.data();
    const Scalar thr = thr_;
    const double t1 = t1_, t2 = t2_;
    parallelChunks(n, [&, w, g, dl, thr, t1, t2](Index b, Index len, Index c) {
        double s1 = 0, s2 = 0;
        for (Index i = b; i < b + len; ++i) {
            const Scalar wi = w[i];
            const double gi = g[i];
            const Code code = codeOf(wi, thr, t1, t2);
            if (code.zero) {
                dl[i] = static_cast<Scalar>(gi);  // identity in the zero region
                continue;
            }
            if (code.clamped) {
                dl[i] = 0;  // the clamp is flat
                continue;
            }
            // dw~/de = sign(w) * 2^k * ln 2 (identity through round)
            const double p = std::ldexp(1.0, code.k);
            const double dwde = std::copysign(p * kLn2, static_cast<double>(wi));
            s1 += gi * dwde;           // de/dtheta1 = 1
            s2 += gi * dwde * code.u;  // de/dtheta2 = log2|w|
            // dw~/dw = dw~/de * theta2 / (|w| ln 2) = theta2 * 2^k / |w|
            dl[i] = static_cast<Scalar>(gi * t2 * p / std::abs(static_cast<double>(wi)));
        }
        sum1[size_t(c)] = s1;
        sum2[size_t(c)] = s2;
    });
    double d1 = 0, d2 = 0;
    for (Index c = 0; c < chunks; ++c) {
        d1 += sum1[size_t(c)];
        d2 += sum2[size_t(c)];
    }
    theta_.at("theta1").grad[0] = static_cast<Scalar>(d1);
    theta_.at("theta2").grad[0] = static_cast<Scalar>(d2);
}

GtcBits GtcQuantizer::bits() const {
    if (!forwarded_) fail("GtcQuantizer::bits()", "called before forward()");
    return bits_;
}

void GtcQuantizer::addBitPenaltyGradient(double lambda) {
    penalty(lambda, nullptr, "GtcQuantizer::addBitPenaltyGradient()");
}

void GtcQuantizer::addBitPenaltyGradient(double lambda, VecRef dLatent) {
    penalty(lambda, &dLatent, "GtcQuantizer::addBitPenaltyGradient()");
}

void GtcQuantizer::penalty(double lambda, VecRef* dLatent, const char* where) {
    if (!forwarded_) fail(where, "called before forward()");
    requireNonNegative(lambda, where, "lambda");
    if (dLatent && dLatent->size() != size_)
        fail(where, TERN_MSG("dLatent has " << dLatent->size()
                                            << " elements, the last forward() had " << size_));
    if (bits_.nonzeros == 0 || lambda == 0) return;
    // P = lambda * 2^bits, bits = 1 + ceil(log2(M - m + 1)); identity through ceil and round:
    // dP/dM = lambda * 2^bits * ln 2 / ((M - m + 1) ln 2) = c, dP/dm = -c
    const double c =
        lambda * bits_.cost / static_cast<double>(bits_.maxExponent - bits_.minExponent + 1);
    // M ~ e_iM = theta1 + theta2 * log2|w_iM| (0 where clamped), likewise m at im
    const double cM = maxClamped_ ? 0.0 : c, cm = minClamped_ ? 0.0 : c;
    const double uM = std::log2(std::abs(static_cast<double>(wMax_)));
    const double um = std::log2(std::abs(static_cast<double>(wMin_)));
    ParameterBlock& th1 = theta_.at("theta1");
    ParameterBlock& th2 = theta_.at("theta2");
    th1.grad[0] += static_cast<Scalar>(cM - cm);  // 0 unless one end is clamped
    th2.grad[0] += static_cast<Scalar>(cM * uM - cm * um);
    if (dLatent) {
        // de/dw = theta2 * sign(w) / (|w| ln 2)
        const auto dedw = [&](Scalar wi) {
            return t2_ / (static_cast<double>(wi) * kLn2);  // sign(w)/|w| = 1/w
        };
        (*dLatent)[argMax_] += static_cast<Scalar>(cM * dedw(wMax_));
        (*dLatent)[argMin_] -= static_cast<Scalar>(cm * dedw(wMin_));
    }
}

void GtcQuantizer::saveState(StateWriter& out, const std::string& prefix) const {
    out.attr(prefix, "eps", static_cast<double>(s_.eps));
    out.write(joinKey(prefix, "theta1"), theta_.at("theta1").value, Shape{1});
    out.write(joinKey(prefix, "theta2"), theta_.at("theta2").value, Shape{1});
}

void GtcQuantizer::loadState(const StateReader& in, const std::string& prefix) {
    const char* where = "GtcQuantizer::loadState()";
    const double eps = in.attrDouble(prefix, "eps");
    if (static_cast<Scalar>(eps) != s_.eps)
        fail(where, TERN_MSG("stored eps " << eps << " differs from this quantizer's " << s_.eps));
    const Vector t1 = in.read(joinKey(prefix, "theta1"), Shape{1});
    const Vector t2 = in.read(joinKey(prefix, "theta2"), Shape{1});
    requireFiniteTheta(t1[0], t2[0], where);
    theta_.at("theta1").value = t1;
    theta_.at("theta2").value = t2;
}

// ---------------------------------------------------------------- factory

std::unique_ptr<Quantizer> makeGtc(GtcSettings settings) {
    return std::make_unique<GtcQuantizer>(settings);
}

}  // namespace tern::proj
