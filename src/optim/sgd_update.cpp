// Inner updates (SGD with momentum, Adam) and learning-rate schedules.
#include "tern/optim/sgd_update.hpp"

#include "tern/core/error.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <numbers>
#include <sstream>

namespace tern::optim {

void SgdSettings::validate() const {
    const char* where = "SgdSettings::validate()";
    if (!(momentum >= 0 && momentum < 1))
        fail(where, TERN_MSG("momentum must be in [0, 1) (got " << momentum << ")"));
    requireNonNegative(weightDecay, where, "weightDecay");
    if (nesterov && momentum == 0)
        fail(where, TERN_MSG("nesterov needs momentum > 0 (got " << momentum << ")"));
}

void AdamSettings::validate() const {
    const char* where = "AdamSettings::validate()";
    if (!(beta1 >= 0 && beta1 < 1))
        fail(where, TERN_MSG("beta1 must be in [0, 1) (got " << beta1 << ")"));
    if (!(beta2 >= 0 && beta2 < 1))
        fail(where, TERN_MSG("beta2 must be in [0, 1) (got " << beta2 << ")"));
    requirePositive(eps, where, "eps");
    requireNonNegative(weightDecay, where, "weightDecay");
}

void InnerSettings::validate() const {
    if (rule == Rule::Sgd)
        sgd.validate();
    else
        adam.validate();
}

// ---------------------------------------------------------------- InnerUpdate

InnerUpdate::InnerUpdate(InnerSettings settings) : settings_(std::move(settings)) {
    settings_.validate();
}

void InnerUpdate::reset(const std::vector<Index>& sizes) {
    state_.assign(sizes.size(), Slot{});
    for (size_t i = 0; i < sizes.size(); ++i) {
        state_[i].m = Vector::Zero(sizes[i]);
        if (settings_.rule == InnerSettings::Rule::Adam) state_[i].s = Vector::Zero(sizes[i]);
    }
}

void InnerUpdate::direction(Index slot, CVecRef w, CVecRef g, bool decay, VecRef d) {
    assert(slot >= 0 && slot < slots());
    Slot& st = state_[static_cast<size_t>(slot)];
    assert(w.size() == st.m.size() && g.size() == w.size() && d.size() == w.size());
    if (settings_.rule == InnerSettings::Rule::Sgd) {
        const SgdSettings& s = settings_.sgd;
        const auto mu = static_cast<Scalar>(s.momentum);
        const auto wd = static_cast<Scalar>(decay ? s.weightDecay : 0.0);
        // g' = g + wd*w
        d = g + wd * w;
        if (s.momentum == 0) return;
        // v = mu*v + g'
        st.m = mu * st.m + d;
        // d = nesterov ? g' + mu*v : v
        if (s.nesterov)
            d += mu * st.m;
        else
            d = st.m;
    } else {
        const AdamSettings& a = settings_.adam;
        const auto b1 = static_cast<Scalar>(a.beta1), b2 = static_cast<Scalar>(a.beta2);
        const auto wd = static_cast<Scalar>(decay ? a.weightDecay : 0.0);
        ++st.t;
        // g' = g + wd*w
        d = g + wd * w;
        // m = b1*m + (1-b1)*g';  s = b2*s + (1-b2)*g'^2
        st.m = b1 * st.m + (1 - b1) * d;
        st.s = b2 * st.s + (1 - b2) * d.cwiseAbs2();
        // d = mhat / (sqrt(shat) + eps)
        const double t = static_cast<double>(st.t);
        const auto c1 = static_cast<Scalar>(1.0 / (1.0 - std::pow(a.beta1, t)));
        const auto c2 = static_cast<Scalar>(1.0 / (1.0 - std::pow(a.beta2, t)));
        const auto eps = static_cast<Scalar>(a.eps);
        d = (c1 * st.m.array()) / ((c2 * st.s.array()).sqrt() + eps);
    }
}

bool InnerUpdate::apply(Index slot, VecRef w, CVecRef g, double lr, bool decay) {
    if (settings_.rule == InnerSettings::Rule::Sgd) {
        // One fused pass (the same arithmetic as direction(), element by element): the update
        // is memory-bound, and four separate passes over W, g, v cost a quantized method a
        // visible share of its step. Large blocks are split across the OpenMP threads.
        assert(slot >= 0 && slot < slots());
        Slot& st = state_[static_cast<size_t>(slot)];
        assert(w.size() == st.m.size() && g.size() == w.size());
        const SgdSettings& s = settings_.sgd;
        const auto mu = static_cast<Scalar>(s.momentum);
        const auto wd = static_cast<Scalar>(decay ? s.weightDecay : 0.0);
        const auto eta = static_cast<Scalar>(lr);
        const Index n = w.size();
        Scalar* pw = w.data();
        const Scalar* pg = g.data();
        Scalar* pm = st.m.data();
        const bool momentum = s.momentum != 0, nesterov = s.nesterov;
        Index bad = 0;  // non-finite results
#pragma omp parallel for simd schedule(static) reduction(+ : bad) if (n >= 65536)
        for (Index i = 0; i < n; ++i) {
            const Scalar d = pg[i] + wd * pw[i];  // g' = g + wd*w
            Scalar next;
            if (!momentum) {
                next = pw[i] - eta * d;
            } else {
                const Scalar v = mu * pm[i] + d;  // v = mu*v + g'
                pm[i] = v;
                next = pw[i] - eta * (nesterov ? d + mu * v : v);
            }
            pw[i] = next;
            bad += !std::isfinite(next);
        }
        return bad == 0;
    }
    Vector& d = state_[static_cast<size_t>(slot)].d;  // reused: no allocation per step
    d.resize(w.size());
    direction(slot, w, g, decay, d);
    w -= static_cast<Scalar>(lr) * d;
    return w.allFinite();
}

const Vector& InnerUpdate::velocity(Index slot) const {
    static const Vector kEmpty;
    if (slot < 0 || slot >= slots())
        throw std::out_of_range(TERN_MSG("InnerUpdate::velocity(): slot " << slot
                                         << " out of range (" << slots() << " slots)"));
    return settings_.rule == InnerSettings::Rule::Sgd ? state_[size_t(slot)].m : kEmpty;
}

void InnerUpdate::save(StateWriter& out, const std::string& prefix,
                       const std::vector<std::string>& names) const {
    assert(names.size() == state_.size());
    out.attr(prefix, "rule", settings_.name());
    std::vector<std::int64_t> steps;
    for (size_t i = 0; i < state_.size(); ++i) {
        const Shape shape{state_[i].m.size()};
        if (settings_.rule == InnerSettings::Rule::Sgd) {
            out.write(prefix + "/velocity/" + names[i], state_[i].m, shape);
        } else {
            out.write(prefix + "/m/" + names[i], state_[i].m, shape);
            out.write(prefix + "/s/" + names[i], state_[i].s, shape);
        }
        steps.push_back(state_[i].t);
    }
    out.writeInts(prefix + "/t", steps);
}

void InnerUpdate::load(const StateReader& in, const std::string& prefix,
                       const std::vector<std::string>& names) {
    const std::string rule = in.attrString(prefix, "rule");
    if (rule != settings_.name())
        fail("InnerUpdate::load()", "state '" + prefix + "' is for rule '" + rule +
                                        "', this update is '" + settings_.name() + "'");
    if (names.size() != state_.size())
        fail("InnerUpdate::load()", TERN_MSG("expected " << state_.size() << " names, got "
                                                         << names.size()));
    const std::vector<std::int64_t> steps = in.readInts(prefix + "/t");
    if (steps.size() != state_.size())
        fail("InnerUpdate::load()", TERN_MSG("state '" << prefix << "' has " << steps.size()
                                                       << " slots, expected " << state_.size()));
    for (size_t i = 0; i < state_.size(); ++i) {
        const Shape shape{state_[i].m.size()};
        if (settings_.rule == InnerSettings::Rule::Sgd) {
            state_[i].m = in.read(prefix + "/velocity/" + names[i], shape);
        } else {
            state_[i].m = in.read(prefix + "/m/" + names[i], shape);
            state_[i].s = in.read(prefix + "/s/" + names[i], shape);
        }
        state_[i].t = steps[i];
    }
}

// ---------------------------------------------------------------- LrSchedule

LrSchedule LrSchedule::constant(double lr0) {
    LrSchedule s;
    s.kind_ = Kind::Constant;
    s.base_ = lr0;
    s.validate();
    return s;
}

LrSchedule LrSchedule::multiStep(double lr0, std::vector<Index> milestones, double gamma) {
    LrSchedule s;
    s.kind_ = Kind::MultiStep;
    s.base_ = lr0;
    s.milestones_ = std::move(milestones);
    s.gamma_ = gamma;
    s.validate();
    return s;
}

LrSchedule LrSchedule::cosine(double lr0, Index totalEpochs, double lrMin) {
    LrSchedule s;
    s.kind_ = Kind::Cosine;
    s.base_ = lr0;
    s.totalEpochs_ = totalEpochs;
    s.lrMin_ = lrMin;
    s.validate();
    return s;
}

namespace {
std::vector<std::string> splitOn(const std::string& s, char sep) {
    std::vector<std::string> parts;
    std::string cur;
    for (char c : s) {
        if (c == sep) {
            parts.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    parts.push_back(cur);
    return parts;
}

double parseNumber(const std::string& text, const std::string& spec) {
    try {
        size_t used = 0;
        const double v = std::stod(text, &used);
        if (used == text.size()) return v;
    } catch (const std::exception&) {
    }
    fail("LrSchedule::parse()", "'" + text + "' is not a number in '" + spec + "'");
}
}  // namespace

LrSchedule LrSchedule::parse(const std::string& spec) {
    const std::vector<std::string> p = splitOn(spec, ':');
    const std::string& kind = p[0];
    if (p.size() == 1 && !kind.empty() && (std::isdigit(static_cast<unsigned char>(kind[0])) ||
                                           kind[0] == '.'))
        return constant(parseNumber(kind, spec));
    if (kind == "constant" && p.size() == 2) return constant(parseNumber(p[1], spec));
    if (kind == "step" && (p.size() == 3 || p.size() == 4)) {
        std::vector<Index> milestones;
        for (const std::string& m : splitOn(p[2], ','))
            milestones.push_back(static_cast<Index>(parseNumber(m, spec)));
        return multiStep(parseNumber(p[1], spec), milestones,
                         p.size() == 4 ? parseNumber(p[3], spec) : 0.1);
    }
    if (kind == "cosine" && (p.size() == 3 || p.size() == 4))
        return cosine(parseNumber(p[1], spec), static_cast<Index>(parseNumber(p[2], spec)),
                      p.size() == 4 ? parseNumber(p[3], spec) : 0.0);
    fail("LrSchedule::parse()", "cannot parse '" + spec +
                                    "'; expected LR, constant:LR, step:LR:M1,M2[:GAMMA] or "
                                    "cosine:LR:EPOCHS[:LRMIN]");
}

double LrSchedule::lr(Index epoch) const {
    switch (kind_) {
        case Kind::Constant:
            return base_;
        case Kind::MultiStep: {
            double lr = base_;
            for (Index m : milestones_)
                if (epoch >= m) lr *= gamma_;
            return lr;
        }
        case Kind::Cosine: {
            const double e = static_cast<double>(std::clamp<Index>(epoch, 0, totalEpochs_));
            return lrMin_ + (base_ - lrMin_) *
                                (1 + std::cos(std::numbers::pi * e /
                                              static_cast<double>(totalEpochs_))) /
                                2;
        }
    }
    return base_;
}

void LrSchedule::validate() const {
    const char* where = "LrSchedule::validate()";
    requirePositive(base_, where, "lr");
    if (kind_ == Kind::MultiStep) {
        requirePositive(gamma_, where, "gamma");
        for (size_t i = 0; i < milestones_.size(); ++i) {
            if (milestones_[i] < 0)
                fail(where, TERN_MSG("milestones must be >= 0 (got " << milestones_[i] << ")"));
            if (i > 0 && milestones_[i] <= milestones_[i - 1])
                fail(where, TERN_MSG("milestones must be increasing (got " << milestones_[i - 1]
                                                                           << " then "
                                                                           << milestones_[i]
                                                                           << ")"));
        }
    }
    if (kind_ == Kind::Cosine) {
        if (totalEpochs_ < 1)
            fail(where, TERN_MSG("totalEpochs must be >= 1 (got " << totalEpochs_ << ")"));
        if (!(lrMin_ >= 0 && lrMin_ <= base_))
            fail(where, TERN_MSG("lrMin must be in [0, lr] (got " << lrMin_ << ")"));
    }
}

std::string LrSchedule::str() const {
    std::ostringstream s;
    switch (kind_) {
        case Kind::Constant:
            s << "constant:" << base_;
            break;
        case Kind::MultiStep:
            s << "step:" << base_ << ":";
            for (size_t i = 0; i < milestones_.size(); ++i) s << (i ? "," : "") << milestones_[i];
            s << ":" << gamma_;
            break;
        case Kind::Cosine:
            s << "cosine:" << base_ << ":" << totalEpochs_ << ":" << lrMin_;
            break;
    }
    return s.str();
}

}  // namespace tern::optim
