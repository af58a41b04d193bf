#pragma once
/// \file The per-layer quantizer of Generalized Ternary Connect (GTC; Parajuli, Raghavan & Chai,
/// seed 004; docs/algorithms.md section 7, docs/gtc.md): signed powers of two with a trained
/// exponent map and a bit count read off the exponent range. The Quantizer interface is in
/// projection.hpp.
#include "tern/proj/projection.hpp"

#include <memory>
#include <string>

namespace tern::proj {

/// Hyper-parameters of GtcQuantizer.
struct GtcSettings {
    /// Relative zero threshold: w~_i = 0 where |w_i| <= eps * max_j |w_j| (per block). The paper's
    /// sign operator "returns zero if the operand is close to zero" and leaves the threshold
    /// open. Relative to the largest weight, the unrounded exponents of the kept weights span
    /// less than |theta2| * log2(1/eps), whatever the layer's scale; with eps = 2^-7 the start
    /// theta = (0, 1) uses at most 8 exponents (4 bits), and a Gaussian layer loses ~2-3% of its
    /// weights to zero. 0 keeps every nonzero weight. Must be in [0, 1).
    Scalar eps = 0.0078125f;
    /// Initial theta1 (the exponent's offset); 0 with theta2 = 1 is the identity in log domain.
    Scalar theta1 = 0.0f;
    /// Initial theta2 (the exponent's slope).
    Scalar theta2 = 1.0f;
    /// Throws std::invalid_argument "GtcSettings::validate(): <field> ..." naming the field.
    void validate() const;
};

/// Exponent range and bit count of one GTC layer (of the last forward()).
struct GtcBits {
    /// bits = 1 + ceil(log2(M - m + 1)) (one sign bit); 1 when no weight is nonzero.
    int bits = 1;
    /// M: the largest rounded exponent among the nonzero outputs (0 when there is none).
    int maxExponent = 0;
    /// m: the smallest rounded exponent among the nonzero outputs (0 when there is none).
    int minExponent = 0;
    /// 2^bits: this layer's term of the paper's bit cost B(theta) = sum_l 2^bits_l.
    double cost = 2;
    /// Nonzero outputs (the entries M and m are taken over).
    Index nonzeros = 0;
};

/// Generalized Ternary Connect's quantizer (seed 004, equations 5-10), one (theta1, theta2) pair
/// per block:
///
///   thr     = eps * max_i |w_i|
///   e_i     = theta1 + theta2 * log2|w_i|                 (|w_i| > thr)
///   k_i     = clamp(round(e_i), -126, 127)                (float's normal exponents)
///   w~_i    = sign(w_i) * 2^k_i  if |w_i| > thr;  0 otherwise
///   M, m    = max_i k_i, min_i k_i over the nonzero outputs (zeros never enter)
///   bits    = 1 + ceil(log2(M - m + 1)),   cost = 2^bits
///
/// Gradients are straight-through (identity through round and ceil, as in the paper):
///
///   dL/dtheta1 = sum_i g_i * sign(w_i) * 2^k_i * ln 2
///   dL/dtheta2 = sum_i g_i * sign(w_i) * 2^k_i * ln 2 * log2|w_i|
///   dL/dw_i    = g_i * theta2 * 2^k_i / |w_i|   (nonzero outputs: through the exponent map)
///              = g_i                            (|w_i| <= thr: identity, as TTQ's zero region)
///
/// with g = dL/dw~, the sums over the nonzero outputs; an entry whose round(e_i) is clamped gets
/// no gradient (the clamp is flat there). The bit penalty lambda * 2^bits has, through ceil and
/// round by identity and through max/min at the entries iM = argmax_i e_i, im = argmin_i e_i
/// (first index on ties),
///
///   c          = lambda * 2^bits / (M - m + 1)
///   dP/dtheta1 = c - c = 0
///   dP/dtheta2 = c * (log2|w_iM| - log2|w_im|)
///   dP/dw_iM  += c * theta2 / (|w_iM| ln 2) * sign(w_iM),   dP/dw_im -= the same at im
///
/// The threshold is treated as a constant (no gradient through max|w|). theta1, theta2 live in
/// trainable() as blocks "theta1" and "theta2" of shape {1} (unconstrained, no weight decay),
/// from the constructor on. backward() overwrites their `grad`; addBitPenaltyGradient() adds to
/// it. One instance per quantized block (it keeps the block's theta and what the last forward()
/// saw).
class GtcQuantizer final : public Quantizer {
public:
    /// The lowest and highest exponent k an output can take (float's normal range).
    static constexpr int kMinExponent = -126;
    static constexpr int kMaxExponent = 127;

    /// Validates the settings; theta starts at (settings.theta1, settings.theta2).
    explicit GtcQuantizer(GtcSettings settings = {});
    /// "gtc[,eps=<x>][,theta1=<x>][,theta2=<x>]" (defaults left out); round-trips through
    /// makeQuantizer().
    std::string name() const override;
    /// Every value the clamped exponents allow: 0 and +-2^k for k in [-126, 127]. The levels a
    /// layer actually uses are counted by bits().
    int levels() const override { return 2 * (kMaxExponent - kMinExponent + 1) + 1; }
    /// Powers of two: no multiplying scale.
    bool freeScale() const override { return false; }
    /// wq = w~(latent). Throws std::invalid_argument on size mismatches, an empty block, a
    /// non-finite latent entry, or a non-finite theta1 / theta2 (named).
    void forward(CVecRef latent, VecRef wq, const Shape& shape) override;
    /// dLatent = dL/dw (above), and writes dL/dtheta1, dL/dtheta2 into trainable()'s grads, at
    /// the threshold and theta of the last forward(). dLatent may alias dWq.
    void backward(CVecRef latent, CVecRef dWq, VecRef dLatent) override;
    /// Blocks "theta1" and "theta2", shape {1}.
    ParameterSet* trainable() override { return &theta_; }
    /// Writes <prefix>/theta1, <prefix>/theta2 and the attribute <prefix>:eps.
    void saveState(StateWriter& out, const std::string& prefix) const override;
    /// Reads what saveState() wrote. Throws std::invalid_argument if the stored eps differs from
    /// this quantizer's or a stored theta is not finite.
    void loadState(const StateReader& in, const std::string& prefix) override;
    /// theta1, theta2 take either sign (the paper learns theta1 < 0).
    bool trainablesNonNegative() const override { return false; }
    /// The bit cost.
    bool hasPenalty() const override { return true; }
    /// bits().cost = 2^bits of the last forward(). Throws before the first.
    double penalty() const override { return bits().cost; }
    /// addBitPenaltyGradient(lambda, dLatent).
    void addPenaltyGradient(double lambda, VecRef dLatent) override {
        addBitPenaltyGradient(lambda, dLatent);
    }
    /// bits().bits of the last forward(). Throws before the first.
    double bitsPerWeight() const override { return bits().bits; }

    /// Exponent range, bits and cost 2^bits of the last forward(). Throws before the first.
    GtcBits bits() const;
    /// Adds the gradient of lambda * 2^bits (STE, above) to theta1's and theta2's grads, at the
    /// last forward(). lambda must be >= 0 (the paper's lambda2).
    void addBitPenaltyGradient(double lambda);
    /// The same, and adds its gradient with respect to the latent weights to dLatent (the
    /// latent of the last forward(); only the argmax and argmin entries change).
    void addBitPenaltyGradient(double lambda, VecRef dLatent);

    /// The settings (eps and the initial theta).
    const GtcSettings& settings() const { return s_; }
    /// Current theta1, theta2 (trainable()'s values).
    Scalar theta1() const { return theta_.at("theta1").value[0]; }
    Scalar theta2() const { return theta_.at("theta2").value[0]; }
    /// The zero threshold eps * max|w| of the last forward() (0 before).
    Scalar threshold() const { return thr_; }

private:
    void penalty(double lambda, VecRef* dLatent, const char* where);
    GtcSettings s_;
    ParameterSet theta_;
    // What the last forward() saw
    bool forwarded_ = false;
    Index size_ = 0;
    Scalar thr_ = 0;
    double t1_ = 0, t2_ = 0;  // theta used
    GtcBits bits_;
    Index argMax_ = -1, argMin_ = -1;  // argmax / argmin of the unrounded exponent e
    Scalar wMax_ = 0, wMin_ = 0;       // the latent weights there
    bool maxClamped_ = false, minClamped_ = false;
};

/// GTC's quantizer. See GtcQuantizer.
std::unique_ptr<Quantizer> makeGtc(GtcSettings settings = {});

}  // namespace tern::proj
