#pragma once
/// \file Quantizers (forward map + pseudo-gradient): the straight-through estimator over any
/// projection, and trained ternary quantization (TTQ); GTC's quantizer is in gtc.hpp. The
/// Quantizer interface is in projection.hpp.
#include "tern/proj/gtc.hpp"
#include "tern/proj/projection.hpp"

#include <memory>
#include <optional>
#include <string>

namespace tern::proj {

/// Straight-through estimator (BinaryConnect, BWN, TWN; docs/algorithms.md section 2):
///
///   forward:  wq = P_C(latent)                 (per tensor or per filter)
///   backward: dL/dlatent_i = dL/dwq_i * [|latent_i| <= clip]   (clip = nullopt: identity)
///
/// Stateless apart from the projection it holds; one instance may serve many blocks.
class SteQuantizer final : public Quantizer {
public:
    /// Throws std::invalid_argument on a null projection or a clip that is not > 0.
    SteQuantizer(std::shared_ptr<const Projection> projection, Granularity granularity,
                 std::optional<Scalar> clip = 1.0f);
    /// "ste:<projection spec>[,granularity=filter][,clip=<x>|none]"; round-trips through
    /// makeQuantizer().
    std::string name() const override;
    int levels() const override { return projection_->levels(); }
    bool freeScale() const override { return projection_->freeScale(); }
    void forward(CVecRef latent, VecRef wq, const Shape& shape) override;
    void backward(CVecRef latent, CVecRef dWq, VecRef dLatent) override;
    /// The projection used in forward().
    const Projection& projection() const { return *projection_; }
    /// Per tensor or per filter.
    Granularity granularity() const { return granularity_; }
    /// Gradient clip, or nullopt.
    std::optional<Scalar> clip() const { return clip_; }

private:
    std::shared_ptr<const Projection> projection_;
    Granularity granularity_;
    std::optional<Scalar> clip_;
};

/// Trained ternary quantization (Zhu, Han, Mao & Dally, ICLR 2017; docs/algorithms.md section 4),
/// with one (Wp, Wn) pair per group (per tensor, or per filter as in seed 003):
///
///   delta = t * max_i |W_i|                   (per group, fixed at forward())
///   Wt_i  = +Wp if W_i > delta;  0 if |W_i| <= delta;  -Wn if W_i < -delta
///   dL/dWp   =  sum_{W_i >  delta} dL/dWt_i
///   dL/dWn   = -sum_{W_i < -delta} dL/dWt_i
///   dL/dW_i  = Wp*dL/dWt_i (positive), 1*dL/dWt_i (zero region), Wn*dL/dWt_i (negative)
///
/// Wp and Wn live in trainable() as blocks "wp" and "wn" of shape {groups} (unconstrained, no
/// weight decay). They are created by init() or the first forward(), initialised to the mean
/// |W| of the positive / negative region of each group (falling back to the group's mean |W|,
/// or 1 for an all-zero group). backward() overwrites their `grad`. An optimizer must update
/// them (they are ordinary parameters). One instance per quantized block: it keeps that block's
/// scales and the thresholds of the last forward().
class TtqQuantizer final : public Quantizer {
public:
    /// Throws std::invalid_argument unless 0 <= thresholdFraction < 1.
    explicit TtqQuantizer(Scalar thresholdFraction = 0.05f,
                          Granularity granularity = Granularity::PerTensor);
    /// "ttq[,t=<x>][,granularity=filter]"; round-trips through makeQuantizer().
    std::string name() const override;
    /// Ternary {-Wn, 0, +Wp} per group, with trained scales.
    int levels() const override { return 3; }
    bool freeScale() const override { return true; }
    /// Creates and initialises Wp, Wn from the latent weights (as the first forward() would).
    /// Calling it again re-initialises them (seed 003's incremental schedule does that).
    void init(CVecRef latent, const Shape& shape);
    /// Wp, Wn of each group := mean |W| of the selected positive / negative entries beyond the
    /// threshold (seed 003: the newly ternarized part). Groups without such entries keep their
    /// scales (or get init()'s values if the scales do not exist yet).
    void initFrom(CVecRef latent, const Shape& shape,
                  const std::vector<std::uint8_t>& select) override;
    void forward(CVecRef latent, VecRef wq, const Shape& shape) override;
    void backward(CVecRef latent, CVecRef dWq, VecRef dLatent) override;
    /// Blocks "wp", "wn" (empty until init() / the first forward()).
    ParameterSet* trainable() override { return &scales_; }
    /// Writes <prefix>/wp, <prefix>/wn and the attribute <prefix>:groups.
    void saveState(StateWriter& out, const std::string& prefix) const override;
    /// Reads what saveState() wrote; creates the blocks if needed. Throws std::invalid_argument
    /// if their group count differs from the one already in use.
    void loadState(const StateReader& in, const std::string& prefix) override;
    /// t.
    Scalar thresholdFraction() const { return t_; }
    /// Per tensor or per filter.
    Granularity granularity() const { return granularity_; }
    /// Whether Wp, Wn exist yet.
    bool initialized() const { return scales_.has("wp"); }
    /// Per-group thresholds delta of the last forward() (empty before).
    const Vector& thresholds() const { return delta_; }

private:
    Index groupsFor(CVecRef latent, const Shape& shape, const char* where) const;
    void ensureBlocks(Index groups);
    Scalar t_;
    Granularity granularity_;
    ParameterSet scales_;
    Vector delta_;  // per group, from the last forward()
};

/// Plain STE over a projection. See SteQuantizer.
std::unique_ptr<Quantizer> makeSte(std::shared_ptr<const Projection> projection,
                                   Granularity granularity, std::optional<Scalar> clip = 1.0f);
/// TTQ with threshold t * max|W|. See TtqQuantizer.
std::unique_ptr<Quantizer> makeTtq(Scalar thresholdFraction = 0.05f,
                                   Granularity granularity = Granularity::PerTensor);
/// Quantizer from a spec: "ste:<projection spec>[,granularity=tensor|filter][,clip=<x>|none]"
/// (e.g. "ste:ternary:twn", "ste:binary:scaled,clip=none"), "ttq[,t=0.05][,granularity=filter]"
/// or "gtc[,eps=0.0078125][,theta1=0][,theta2=1]" (GtcQuantizer, gtc.hpp).
/// Unknown names or options throw std::invalid_argument listing the valid ones.
std::unique_ptr<Quantizer> makeQuantizer(const std::string& spec);

}  // namespace tern::proj
