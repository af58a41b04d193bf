// Quantizers: straight-through estimator over a projection, and trained ternary quantization.
#include "tern/proj/quantizer.hpp"

#include "detail.hpp"
#include "tern/core/parallel.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

// The 8-float vector values (detail::Vec8) never cross a real call, so GCC's ABI note for
// them does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace tern::proj {

// ---------------------------------------------------------------- STE

SteQuantizer::SteQuantizer(std::shared_ptr<const Projection> projection, Granularity granularity,
                           std::optional<Scalar> clip)
    : projection_(std::move(projection)), granularity_(granularity), clip_(clip) {
    if (!projection_) fail("SteQuantizer::SteQuantizer()", "projection is null");
    if (clip_) requirePositive(*clip_, "SteQuantizer::SteQuantizer()", "clip");
}

std::string SteQuantizer::name() const {
    std::string s = "ste:" + projection_->name();
    if (granularity_ == Granularity::PerFilter) s += ",granularity=filter";
    if (!clip_)
        s += ",clip=none";
    else if (*clip_ != 1)
        s += ",clip=" + detail::formatNumber(*clip_);
    return s;
}

void SteQuantizer::forward(CVecRef latent, VecRef wq, const Shape& shape) {
    // wq = P_C(latent)
    projection_->project(latent, wq, shape, granularity_);
}

void SteQuantizer::backward(CVecRef latent, CVecRef dWq, VecRef dLatent) {
    const char* where = "SteQuantizer::backward()";
    requireSameSize(latent.size(), dWq.size(), where, "latent", "dWq");
    requireSameSize(latent.size(), dLatent.size(), where, "latent", "dLatent");
    // dL/dlatent = dL/dwq * [|latent| <= clip]
    if (!clip_) {
        dLatent = dWq;
        return;
    }
    const Scalar c = *clip_;
    parallelChunks(latent.size(), [&](Index b, Index len, Index) {
        dLatent.segment(b, len).array() =
            (latent.segment(b, len).array().abs() <= c).select(dWq.segment(b, len).array(), Scalar(0));
    });
}

// ---------------------------------------------------------------- TTQ

TtqQuantizer::TtqQuantizer(Scalar thresholdFraction, Granularity granularity)
    : t_(thresholdFraction), granularity_(granularity) {
    if (!(t_ >= 0 && t_ < 1))
        fail("TtqQuantizer::TtqQuantizer()",
             TERN_MSG("thresholdFraction must be in [0, 1) (got " << t_ << ")"));
}

std::string TtqQuantizer::name() const {
    std::string s = "ttq";
    if (t_ != 0.05f) s += ",t=" + detail::formatNumber(t_);
    if (granularity_ == Granularity::PerFilter) s += ",granularity=filter";
    return s;
}

Index TtqQuantizer::groupsFor(CVecRef latent, const Shape& shape, const char* where) const {
    if (shape.size() != latent.size())
        fail(where, TERN_MSG("latent has " << latent.size() << " elements, shape " << shape.str()
                                           << " has " << shape.size()));
    if (latent.size() == 0) fail(where, "empty block");
    requireFinite(latent, where, "latent");
    const Index groups = shape.groups(granularity_);
    if (initialized() && scales_.at("wp").value.size() != groups)
        fail(where, TERN_MSG("shape " << shape.str() << " gives " << groups
                                      << " groups, but the scales were made for "
                                      << scales_.at("wp").value.size()));
    return groups;
}

void TtqQuantizer::ensureBlocks(Index groups) {
    if (initialized()) return;
    scales_.add("wp", Shape{groups}, /*constrained=*/false, /*decay=*/false);
    scales_.add("wn", Shape{groups}, /*constrained=*/false, /*decay=*/false);
}

void TtqQuantizer::init(CVecRef latent, const Shape& shape) {
    const Index groups = groupsFor(latent, shape, "TtqQuantizer::init()");
    ensureBlocks(groups);
    Vector& wp = scales_.at("wp").value;
    Vector& wn = scales_.at("wn").value;
    const Index m = latent.size() / groups;
    // A region with no entry beyond the threshold falls back to the group's mean |W| (1 if 0)
    for (Index g = 0; g < groups; ++g) {
        double sumAll = 0;
        for (Index i = g * m; i < (g + 1) * m; ++i) sumAll += std::abs(static_cast<double>(latent[i]));
        wp[g] = wn[g] = static_cast<Scalar>(sumAll > 0 ? sumAll / static_cast<double>(m) : 1.0);
    }
    // Wp, Wn = mean |W| over the positive / negative region of the whole group
    initFrom(latent, shape, std::vector<std::uint8_t>(static_cast<size_t>(latent.size()), 1));
}

void TtqQuantizer::initFrom(CVecRef latent, const Shape& shape,
                            const std::vector<std::uint8_t>& select) {
    const char* where = "TtqQuantizer::initFrom()";
    const Index groups = groupsFor(latent, shape, where);
    if (static_cast<Index>(select.size()) != latent.size())
        fail(where, TERN_MSG("select has " << select.size() << " entries, latent has "
                                           << latent.size()));
    if (!initialized()) init(latent, shape);  // every group gets a value, even with no selection
    Vector& wp = scales_.at("wp").value;
    Vector& wn = scales_.at("wn").value;
    const Index m = latent.size() / groups;
    for (Index g = 0; g < groups; ++g) {
        const auto w = latent.segment(g * m, m);
        // delta = t * max|W|; Wp, Wn = mean |W| of the selected positive / negative region
        const double delta = static_cast<double>(t_) * static_cast<double>(w.cwiseAbs().maxCoeff());
        double sumP = 0, sumN = 0;
        Index nP = 0, nN = 0;
        for (Index i = 0; i < m; ++i) {
            if (!select[size_t(g * m + i)]) continue;
            const double x = w[i];
            if (x > delta) {
                sumP += x;
                ++nP;
            } else if (x < -delta) {
                sumN -= x;
                ++nN;
            }
        }
        if (nP > 0) wp[g] = static_cast<Scalar>(sumP / static_cast<double>(nP));
        if (nN > 0) wn[g] = static_cast<Scalar>(sumN / static_cast<double>(nN));
    }
}

void TtqQuantizer::forward(CVecRef latent, VecRef wq, const Shape& shape) {
    const char* where = "TtqQuantizer::forward()";
    requireSameSize(latent.size(), wq.size(), where, "latent", "wq");
    const Index groups = groupsFor(latent, shape, where);
    if (!initialized()) init(latent, shape);
    const Vector& wp = scales_.at("wp").value;
    const Vector& wn = scales_.at("wn").value;
    const Index m = latent.size() / groups;
    delta_.resize(groups);
    for (Index g = 0; g < groups; ++g) {
        // delta = t * max|W| (per group)
        std::vector<Scalar> chunkMax(static_cast<size_t>(parallelChunkCount(m)));
        parallelChunks(m, [&](Index b, Index len, Index c) {
            chunkMax[size_t(c)] = latent.segment(g * m + b, len).cwiseAbs().maxCoeff();
        });
        const Scalar delta = t_ * *std::max_element(chunkMax.begin(), chunkMax.end());
        delta_[g] = delta;
        // Wt = +Wp if W > delta; 0 if |W| <= delta; -Wn if W < -delta. Branch-free: the sign
        // of each weight is a coin flip, which a branchy loop pays for in mispredictions.
        const Scalar* w = latent.data() + g * m;
        Scalar* out = wq.data() + g * m;
        const Scalar p = wp[g], n = wn[g];
        parallelChunks(m, [w, out, delta, p, n](Index b, Index len, Index) {
            using detail::Vec8;
            const Vec8 hi = Vec8{} + delta, lo = Vec8{} - delta, vp = Vec8{} + p, vn = Vec8{} - n;
            Index i = b;
            for (; i + 8 <= b + len; i += 8) {
                const Vec8 x = detail::load8(w + i);
                detail::store8(out + i, detail::where(x > hi, vp) + detail::where(x < lo, vn));
            }
            for (; i < b + len; ++i) out[i] = w[i] > delta ? p : (w[i] < -delta ? -n : Scalar(0));
        });
    }
}

void TtqQuantizer::backward(CVecRef latent, CVecRef dWq, VecRef dLatent) {
    const char* where = "TtqQuantizer::backward()";
    if (!initialized() || delta_.size() == 0) fail(where, "called before forward()");
    requireSameSize(latent.size(), dWq.size(), where, "latent", "dWq");
    requireSameSize(latent.size(), dLatent.size(), where, "latent", "dLatent");
    const Index groups = delta_.size();
    if (latent.size() % groups != 0)
        fail(where, TERN_MSG("latent has " << latent.size() << " elements, not a multiple of the "
                                           << groups << " groups of the last forward()"));
    ParameterBlock& wpBlock = scales_.at("wp");
    ParameterBlock& wnBlock = scales_.at("wn");
    const Index m = latent.size() / groups;
    for (Index g = 0; g < groups; ++g) {
        const Scalar delta = delta_[g], wp = wpBlock.value[g], wn = wnBlock.value[g];
        // dL/dWp = sum_{W > delta} g;  dL/dWn = -sum_{W < -delta} g
        // dL/dW = Wp*g (positive), Wn*g (negative), g (zero region); branch-free
        // (each factor is exactly one of wp, wn, 1: at most one indicator is set)
        const Index chunks = parallelChunkCount(m);
        std::vector<double> sumP(static_cast<size_t>(chunks)), sumN(static_cast<size_t>(chunks));
        const Scalar* w = latent.data() + g * m;
        const Scalar* gr = dWq.data() + g * m;
        Scalar* dl = dLatent.data() + g * m;
        parallelChunks(m, [&, w, gr, dl, delta, wp, wn](Index b, Index len, Index c) {
            using detail::Vec8;
            const Vec8 hi = Vec8{} + delta, lo = Vec8{} - delta;
            const Vec8 vp = Vec8{} + wp, vn = Vec8{} + wn;
            Vec8 accP = {}, accN = {};
            Index i = b;
            for (; i + 8 <= b + len; i += 8) {
                const Vec8 x = detail::load8(w + i), gi = detail::load8(gr + i);
                const auto pos = x > hi, neg = x < lo;
                const Vec8 gp = detail::where(pos, gi), gn = detail::where(neg, gi);
                accP += gp;
                accN += gn;
                // factor wp (positive), wn (negative), 1 (zero region): exactly one applies
                detail::store8(dl + i, gp * vp + gn * vn + detail::where(~(pos | neg), gi));
            }
            double sp = detail::sumLanes(accP), sn = detail::sumLanes(accN);
            for (; i < b + len; ++i) {
                const Scalar x = w[i], gi = gr[i];
                if (x > delta) {
                    sp += gi;
                    dl[i] = gi * wp;
                } else if (x < -delta) {
                    sn += gi;
                    dl[i] = gi * wn;
                } else {
                    dl[i] = gi;
                }
            }
            sumP[size_t(c)] = sp;
            sumN[size_t(c)] = sn;
        });
        double dWp = 0, dWn = 0;
        for (Index c = 0; c < chunks; ++c) {
            dWp += sumP[size_t(c)];
            dWn -= sumN[size_t(c)];
        }
        wpBlock.grad[g] = static_cast<Scalar>(dWp);
        wnBlock.grad[g] = static_cast<Scalar>(dWn);
    }
}

namespace {
std::string joinKey(const std::string& prefix, const std::string& key) {
    return prefix.empty() ? key : prefix + "/" + key;
}
}  // namespace

void TtqQuantizer::saveState(StateWriter& out, const std::string& prefix) const {
    if (!initialized()) {
        out.attr(prefix, "groups", std::int64_t{0});
        return;
    }
    const ParameterBlock& wp = scales_.at("wp");
    out.attr(prefix, "groups", static_cast<std::int64_t>(wp.value.size()));
    out.write(joinKey(prefix, "wp"), wp.value, wp.shape);
    out.write(joinKey(prefix, "wn"), scales_.at("wn").value, wp.shape);
}

void TtqQuantizer::loadState(const StateReader& in, const std::string& prefix) {
    const std::int64_t groups = in.attrInt(prefix, "groups");
    if (groups == 0) return;  // saved before the first forward()
    const Shape shape{static_cast<Index>(groups)};
    if (initialized() && scales_.at("wp").shape != shape)
        fail("TtqQuantizer::loadState()",
             TERN_MSG("stored scales have shape " << shape.str() << ", this quantizer uses "
                                                  << scales_.at("wp").shape.str()));
    Vector wp = in.read(joinKey(prefix, "wp"), shape);
    Vector wn = in.read(joinKey(prefix, "wn"), shape);
    ensureBlocks(shape.size());
    scales_.at("wp").value = wp;
    scales_.at("wn").value = wn;
}

// ---------------------------------------------------------------- factories

std::unique_ptr<Quantizer> makeSte(std::shared_ptr<const Projection> projection,
                                   Granularity granularity, std::optional<Scalar> clip) {
    return std::make_unique<SteQuantizer>(std::move(projection), granularity, clip);
}

std::unique_ptr<Quantizer> makeTtq(Scalar thresholdFraction, Granularity granularity) {
    return std::make_unique<TtqQuantizer>(thresholdFraction, granularity);
}

std::unique_ptr<Quantizer> makeQuantizer(const std::string& spec) {
    const char* where = "makeQuantizer()";
    const auto takeGranularity = [&](detail::SpecOptions& opt) {
        const auto text = opt.take("granularity");
        if (!text) return Granularity::PerTensor;
        if (*text == "tensor") return Granularity::PerTensor;
        if (*text == "filter") return Granularity::PerFilter;
        fail(where, "option 'granularity' must be 'tensor' or 'filter' (got '" + *text + "')");
    };
    if (spec.rfind("ste:", 0) == 0) {
        // "ste:<projection spec>" with the quantizer's own keys mixed in
        detail::SpecOptions opt(spec.substr(4), where);
        const Granularity g = takeGranularity(opt);
        std::optional<Scalar> clip = 1.0f;
        if (const auto text = opt.take("clip")) {
            if (*text == "none") {
                clip = std::nullopt;
            } else {
                detail::SpecOptions num("x,clip=" + *text, where);
                clip = num.takeNumber("clip");
            }
        }
        std::string projectionSpec = opt.base();
        for (const auto& kv : opt.remaining()) projectionSpec += "," + kv;
        return makeSte(makeProjection(projectionSpec), g, clip);
    }
    detail::SpecOptions opt(spec, where);
    if (opt.base() == "ttq") {
        const Scalar t = opt.takeNumber("t").value_or(0.05f);
        const Granularity g = takeGranularity(opt);
        opt.finish({"t", "granularity"});
        return makeTtq(t, g);
    }
    if (opt.base() == "gtc") {
        GtcSettings s;
        s.eps = opt.takeNumber("eps").value_or(s.eps);
        s.theta1 = opt.takeNumber("theta1").value_or(s.theta1);
        s.theta2 = opt.takeNumber("theta2").value_or(s.theta2);
        opt.finish({"eps", "theta1", "theta2"});
        return makeGtc(s);
    }
    fail(where, "unknown quantizer '" + spec + "'; known: ste:<projection spec>, ttq, gtc");
}

}  // namespace tern::proj
