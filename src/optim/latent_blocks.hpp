#pragma once
// Private component of src/optim: quantized latent blocks, shared by STE, RPR and incremental
// quantization. For every constrained block of an optimizer it keeps the float latent W, the
// block's quantizer Q (one instance per block, from a factory), scratch vectors, and the sign
// codes of Q(W) at the last epoch end (flip ratio); the quantizers' trainables (TTQ's Wp, Wn,
// GTC's theta) get their own inner update; save()/load() write and read all of it.
#include "tern/core/parameter.hpp"
#include "tern/core/state.hpp"
#include "tern/optim/optimizer.hpp"
#include "tern/optim/sgd_update.hpp"
#include "tern/optim/ste.hpp"  // QuantizerFactory
#include "tern/proj/projection.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace tern::optim {

namespace detail {

class LatentBlocks {
public:
    struct Block {
        ParameterBlock* param = nullptr;  ///< the objective's block (value, grad, shape)
        Index slot = 0;                   ///< its index in parameters().all()
        Vector latent;                    ///< W
        Vector work;                      ///< scratch (Q(W), masked gradients)
        Vector dLatent;                   ///< pseudo-gradient of W
        std::unique_ptr<proj::Quantizer> q;
        std::vector<std::int64_t> codes;  ///< sign(Q(W)) at the last epoch end
        bool finite = true;               ///< W is finite (checked after every update)
        /// out = Q(W) (the quantizer sees the block's shape).
        void quantize(VecRef out) { q->forward(latent, out, param->shape); }
    };

    /// `owner` names the optimizer in messages ("Ste"). Throws std::invalid_argument if the
    /// factory is empty or returns nullptr (one probe quantizer gives levels() and freeScale()).
    LatentBlocks(QuantizerFactory factory, const InnerSettings& inner, std::string owner);
    /// A quantizer per block (the probe is built for a block named "").
    LatentBlocks(BlockQuantizerFactory factory, const InnerSettings& inner, std::string owner);

    /// The most levels of the blocks' quantizers and whether one has a free scale (before
    /// begin(): the probe's).
    int levels() const;
    bool freeScale() const;
    /// What block b deploys onto: its quantizer's name, levels, free scale and bits.
    static DeployedSet deployedSet(const Block& b);
    /// The quantizer's name(), whether it has trainables, whether they are kept >= 0 and
    /// whether it has a penalty (from the probe).
    const std::string& quantizerName() const { return quantizerName_; }
    bool hasTrainables() const { return hasTrainables_; }
    bool trainablesNonNegative() const { return trainablesNonNegative_; }
    bool hasPenalty() const { return hasPenalty_; }

    /// One Block per constrained block (W = value, which must be finite; a new quantizer).
    void begin(const std::vector<ParameterBlock*>& blocks);
    std::vector<Block>& all() { return blocks_; }
    const std::vector<Block>& all() const { return blocks_; }
    Index size() const { return static_cast<Index>(blocks_.size()); }
    /// The k-th constrained block; std::out_of_range naming `what` otherwise.
    Block& at(Index k, const char* what);
    const Block& at(Index k, const char* what) const;
    /// The block at objective slot i, or nullptr for an unconstrained slot.
    Block* bySlot(Index i);
    const Block* bySlot(Index i) const;

    /// One zero inner-update slot per trainable of the quantizers (call once they exist).
    void resetTrainables();
    /// t -= lr * inner(grad) on every trainable (no weight decay), then t = max(t, 0) where
    /// the block's quantizer keeps them non-negative (TTQ's scales; not GTC's theta).
    /// Returns whether every trainable is finite.
    bool stepTrainables(double lr);
    /// Flip ratio and sparsity of sign(Q(W)) against the codes of the last call into `stats`;
    /// codes := now. `quantized(b)` is Q(W) of b.
    void codeStats(EpochStats& stats, const std::function<const Vector&(Block&)>& quantized);
    /// The mean trained scales (TTQ's Wp, Wn) over the blocks into `stats` (NaN if none).
    void scaleStats(EpochStats& stats) const;
    /// The mean of the quantizers' bitsPerWeight() over the blocks that count bits (GTC) into
    /// `stats.bits` (NaN if none), at their last forward().
    void bitStats(EpochStats& stats) const;
    /// Sum of the quantizers' penalty() at their last forward() (0 without penalties).
    double penalty() const;
    /// sign(Q(W)) for every block, as the starting codes.
    void resetCodes(const std::function<const Vector&(Block&)>& quantized);

    /// Codes, quantizer names and states, trainables and their inner update under `prefix`.
    void save(StateWriter& out, const std::string& prefix) const;
    /// Reads save()'s output; a quantizer of another kind is an error naming the block.
    void load(const StateReader& in, const std::string& prefix);

private:
    BlockQuantizerFactory factory_;
    std::string owner_;
    int levels_ = 0;
    bool freeScale_ = false;
    std::string quantizerName_;
    bool hasTrainables_ = false;
    bool trainablesNonNegative_ = true;
    bool hasPenalty_ = false;
    std::vector<Block> blocks_;
    InnerUpdate inner_;  // the quantizers' trainables
};

}  // namespace detail
}  // namespace tern::optim
