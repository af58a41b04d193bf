#pragma once
/// \file The inner (unconstrained) update every method uses on its float coordinates, and the
/// learning-rate schedule.
///
///   SGD:  g' = g + wd*w;  v = mu*v + g';  d = nesterov ? g' + mu*v : v;  w -= lr*d
///   Adam: g' = g + wd*w;  m = b1*m + (1-b1)*g';  s = b2*s + (1-b2)*g'^2;
///         d = (m / (1-b1^t)) / (sqrt(s / (1-b2^t)) + eps);  w -= lr*d
///
/// (PyTorch's conventions: no dampening, the velocity starts at zero, L2-style weight decay.)
/// Weight decay applies only to blocks with ParameterBlock::decay == true.
#include "tern/core/state.hpp"
#include "tern/core/types.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace tern::optim {

/// SGD with (optionally Nesterov) momentum and L2 weight decay.
struct SgdSettings {
    double momentum = 0.9;      ///< mu in [0, 1)
    double weightDecay = 1e-4;  ///< wd >= 0, added to the gradient of blocks with decay == true
    bool nesterov = false;      ///< Nesterov momentum (needs momentum > 0)
    /// Throws std::invalid_argument naming the offending field.
    void validate() const;
};

/// Adam (Kingma & Ba 2015) with L2 weight decay.
struct AdamSettings {
    double beta1 = 0.9;     ///< first-moment decay, [0, 1)
    double beta2 = 0.999;   ///< second-moment decay, [0, 1)
    double eps = 1e-8;      ///< denominator guard, > 0
    double weightDecay = 0; ///< wd >= 0, added to the gradient of blocks with decay == true
    /// Throws std::invalid_argument naming the offending field.
    void validate() const;
};

/// Which inner rule an optimizer applies to its float coordinates: SGD or Adam. Converts
/// implicitly from either settings struct, so `Admm(p, g, {}, SgdSettings{...})` and
/// `Admm(p, g, {}, AdamSettings{...})` both work.
struct InnerSettings {
    enum class Rule { Sgd, Adam };
    Rule rule = Rule::Sgd;
    SgdSettings sgd;
    AdamSettings adam;

    InnerSettings() = default;
    /// SGD with these settings.
    InnerSettings(const SgdSettings& s) : rule(Rule::Sgd), sgd(s) {}  // NOLINT: implicit on purpose
    /// Adam with these settings.
    InnerSettings(const AdamSettings& a) : rule(Rule::Adam), adam(a) {}  // NOLINT
    /// "sgd" or "adam".
    std::string name() const { return rule == Rule::Sgd ? "sgd" : "adam"; }
    /// Validates the active rule's settings.
    void validate() const;
};

/// The inner update with its per-block state (SGD velocity, Adam moments and step count).
/// Slots are addressed by index (an optimizer uses the block's index in its ParameterSet).
class InnerUpdate {
public:
    /// Validates `settings`.
    explicit InnerUpdate(InnerSettings settings = {});

    const InnerSettings& settings() const { return settings_; }
    /// Drops all state and creates one zero slot per entry of `sizes`.
    void reset(const std::vector<Index>& sizes);
    /// Number of slots.
    Index slots() const { return static_cast<Index>(state_.size()); }

    /// The update direction d for gradient g at w (advances the slot's state):
    /// the caller then applies w -= lr * d. `decay` selects weight decay for this block.
    void direction(Index slot, CVecRef w, CVecRef g, bool decay, VecRef d);
    /// w -= lr * direction(g). Returns whether the updated w is finite (checked in the same
    /// pass for SGD), so that callers need no extra pass to detect divergence.
    bool apply(Index slot, VecRef w, CVecRef g, double lr, bool decay);

    /// SGD velocity of a slot (empty for Adam); for tests and diagnostics.
    const Vector& velocity(Index slot) const;

    /// Writes every slot under `prefix` ("<prefix>/velocity/<name>" or ".../m|s/<name>" and
    /// the step counts), one name per slot.
    void save(StateWriter& out, const std::string& prefix,
              const std::vector<std::string>& names) const;
    /// Reads what save() wrote. Throws std::invalid_argument if the rule differs or a shape
    /// does not match, std::out_of_range if an entry is missing.
    void load(const StateReader& in, const std::string& prefix,
              const std::vector<std::string>& names);

private:
    struct Slot {
        Vector m;               // SGD velocity, or Adam first moment
        Vector s;               // Adam second moment
        std::int64_t t = 0;     // Adam step count
        Vector d;               // scratch for apply()
    };
    InnerSettings settings_;
    std::vector<Slot> state_;
};

/// Historical name: the inner update is SGD by default.
using SgdUpdate = InnerUpdate;

/// Learning rate as a function of the (0-based) epoch.
///
///   constant:   lr(e) = lr0
///   multi-step: lr(e) = lr0 * gamma^(number of milestones m with e >= m)
///   cosine:     lr(e) = lrMin + (lr0 - lrMin) * (1 + cos(pi * min(e, T) / T)) / 2
class LrSchedule {
public:
    enum class Kind { Constant, MultiStep, Cosine };

    /// Constant 0.01.
    LrSchedule() = default;
    /// lr(e) = lr0.
    static LrSchedule constant(double lr0);
    /// Multiplied by gamma at each milestone epoch (0-based: milestone 15 means the 16th epoch
    /// is the first with the reduced rate, as PyTorch's MultiStepLR).
    static LrSchedule multiStep(double lr0, std::vector<Index> milestones, double gamma = 0.1);
    /// Cosine annealing from lr0 to lrMin over totalEpochs.
    static LrSchedule cosine(double lr0, Index totalEpochs, double lrMin = 0);
    /// Parses "constant:0.01", "step:0.01:15,25[:0.1]" or "cosine:0.1:30[:0]"; a bare
    /// number is constant. Throws std::invalid_argument naming the problem.
    static LrSchedule parse(const std::string& spec);

    /// The rate for a 0-based epoch.
    double lr(Index epoch) const;
    /// Throws std::invalid_argument naming the offending field.
    void validate() const;

    Kind kind() const { return kind_; }
    double base() const { return base_; }
    /// A one-line description ("cosine:0.1:30:0").
    std::string str() const;

private:
    Kind kind_ = Kind::Constant;
    double base_ = 0.01;
    std::vector<Index> milestones_;
    double gamma_ = 0.1;
    Index totalEpochs_ = 1;
    double lrMin_ = 0;
};

}  // namespace tern::optim
