// Quantized latent blocks shared by STE, RPR and incremental quantization.
#include "latent_blocks.hpp"

#include "codes.hpp"
#include "tern/core/error.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

namespace tern::optim::detail {

namespace {

/// Every trainable of the quantizers, in block order: slot k of the trainables' update.
std::vector<ParameterBlock*> trainables(const std::vector<LatentBlocks::Block>& blocks) {
    std::vector<ParameterBlock*> out;
    for (const LatentBlocks::Block& b : blocks)
        if (ParameterSet* t = b.q->trainable())
            for (ParameterBlock* p : t->all()) out.push_back(p);
    return out;
}

}  // namespace

LatentBlocks::LatentBlocks(QuantizerFactory factory, const InnerSettings& inner, std::string owner)
    : LatentBlocks(factory ? BlockQuantizerFactory([f = std::move(factory)](const ParameterBlock&) {
                                 return f();
                             })
                           : BlockQuantizerFactory(),
                   inner, std::move(owner)) {}

LatentBlocks::LatentBlocks(BlockQuantizerFactory factory, const InnerSettings& inner, std::string owner)
    : factory_(std::move(factory)), owner_(std::move(owner)), inner_(inner) {
    const std::string where = owner_ + "::" + owner_ + "()";
    if (!factory_) fail(where, "quantizer factory must not be empty");
    const std::unique_ptr<proj::Quantizer> probe = factory_(ParameterBlock{});
    if (!probe) fail(where, "quantizer factory returned nullptr");
    levels_ = probe->levels();
    freeScale_ = probe->freeScale();
    quantizerName_ = probe->name();
    hasTrainables_ = probe->trainable() != nullptr;
    trainablesNonNegative_ = probe->trainablesNonNegative();
    hasPenalty_ = probe->hasPenalty();
}

void LatentBlocks::begin(const std::vector<ParameterBlock*>& blocks) {
    const std::string where = owner_ + "::begin()";
    blocks_.clear();
    for (size_t i = 0; i < blocks.size(); ++i) {
        if (!blocks[i]->constrained) continue;
        requireFinite(blocks[i]->value, where.c_str(), blocks[i]->name.c_str());
        Block b;
        b.param = blocks[i];
        b.slot = static_cast<Index>(i);
        b.latent = blocks[i]->value;
        b.work.resize(b.latent.size());
        b.dLatent = Vector::Zero(b.latent.size());
        b.q = factory_(*blocks[i]);
        if (!b.q) fail(where, "the quantizer factory returned nullptr");
        blocks_.push_back(std::move(b));
    }
}

int LatentBlocks::levels() const {
    if (blocks_.empty()) return levels_;
    int levels = 0;
    for (const Block& b : blocks_) levels = std::max(levels, b.q->levels());
    return levels;
}

bool LatentBlocks::freeScale() const {
    if (blocks_.empty()) return freeScale_;
    return std::any_of(blocks_.begin(), blocks_.end(), [](const Block& b) { return b.q->freeScale(); });
}

DeployedSet LatentBlocks::deployedSet(const Block& b) {
    return {b.q->name(), b.q->levels(), b.q->freeScale(), b.q->bitsPerWeight()};
}

LatentBlocks::Block& LatentBlocks::at(Index k, const char* what) {
    return const_cast<Block&>(std::as_const(*this).at(k, what));
}

const LatentBlocks::Block& LatentBlocks::at(Index k, const char* what) const {
    if (k < 0 || k >= size())
        throw std::out_of_range(TERN_MSG(owner_ << "::" << what << "(): block " << k << " out of range"));
    return blocks_[size_t(k)];
}

LatentBlocks::Block* LatentBlocks::bySlot(Index i) {
    return const_cast<Block*>(std::as_const(*this).bySlot(i));
}

const LatentBlocks::Block* LatentBlocks::bySlot(Index i) const {
    for (const Block& b : blocks_)
        if (b.slot == i) return &b;
    return nullptr;
}

void LatentBlocks::resetTrainables() {
    std::vector<Index> sizes;
    for (const ParameterBlock* t : trainables(blocks_)) sizes.push_back(t->value.size());
    inner_.reset(sizes);
}

bool LatentBlocks::stepTrainables(double lr) {
    bool finite = true;
    Index k = 0;  // slot of the trainables' update, in the order of trainables()
    for (Block& b : blocks_) {
        ParameterSet* t = b.q->trainable();
        if (!t) continue;
        const bool nonNegative = b.q->trainablesNonNegative();
        for (ParameterBlock* p : t->all()) {
            inner_.apply(k++, p->value, p->grad, lr, false);
            // scales (TTQ's Wp, Wn) stay non-negative; GTC's theta takes either sign
            if (nonNegative) p->value = p->value.cwiseMax(Scalar(0));
            finite = finite && p->value.allFinite();
        }
    }
    return finite;
}

void LatentBlocks::resetCodes(const std::function<const Vector&(Block&)>& quantized) {
    for (Block& b : blocks_) b.codes = signCodes(quantized(b));
}

void LatentBlocks::codeStats(EpochStats& stats,
                             const std::function<const Vector&(Block&)>& quantized) {
    CodeStats codes;
    for (Block& b : blocks_) {
        std::vector<std::int64_t> now = signCodes(quantized(b));
        codes.add(now, b.codes);
        b.codes = std::move(now);
    }
    codes.fill(stats);
}

void LatentBlocks::scaleStats(EpochStats& stats) const {
    double wp = 0, wn = 0;
    Index scaled = 0;
    for (const Block& b : blocks_) {
        ParameterSet* t = b.q->trainable();
        if (!t || !t->has("wp") || !t->has("wn")) continue;
        wp += t->at("wp").value.mean();
        wn += t->at("wn").value.mean();
        ++scaled;
    }
    if (scaled == 0) return;
    stats.scalePos = wp / static_cast<double>(scaled);
    stats.scaleNeg = wn / static_cast<double>(scaled);
}

void LatentBlocks::bitStats(EpochStats& stats) const {
    double bits = 0;
    Index counted = 0;
    for (const Block& b : blocks_) {
        const double v = b.q->bitsPerWeight();
        if (std::isnan(v)) continue;
        bits += v;
        ++counted;
    }
    if (counted > 0) stats.bits = bits / static_cast<double>(counted);
}

double LatentBlocks::penalty() const {
    double sum = 0;
    for (const Block& b : blocks_) sum += b.q->penalty();
    return sum;
}

void LatentBlocks::save(StateWriter& out, const std::string& prefix) const {
    std::vector<std::string> names;
    for (const Block& b : blocks_) {
        const std::string& block = b.param->name;
        out.writeInts(prefix + "/codes/" + block, b.codes);
        out.attr(prefix, "quantizer/" + block, b.q->name());
        b.q->saveState(out, prefix + "/quantizer/" + block);
        if (ParameterSet* t = b.q->trainable())
            for (const ParameterBlock* tb : std::as_const(*t).all()) {
                out.write(prefix + "/trainable/" + block + "/" + tb->name, tb->value, tb->shape);
                names.push_back(block + "." + tb->name);
            }
    }
    inner_.save(out, prefix + "/qinner", names);
}

void LatentBlocks::load(const StateReader& in, const std::string& prefix) {
    const std::string where = owner_ + "::load()";
    std::vector<std::string> names;
    for (Block& b : blocks_) {
        const std::string& block = b.param->name;
        const std::string saved = in.attrString(prefix, "quantizer/" + block);
        if (saved != b.q->name())
            fail(where, "state '" + prefix + "' has quantizer '" + saved + "' for block '" + block +
                            "', this optimizer has '" + b.q->name() + "'");
        b.q->loadState(in, prefix + "/quantizer/" + block);
        if (ParameterSet* t = b.q->trainable())
            for (ParameterBlock* tb : t->all()) {
                tb->value = in.read(prefix + "/trainable/" + block + "/" + tb->name, tb->shape);
                names.push_back(block + "." + tb->name);
            }
        b.codes = in.readInts(prefix + "/codes/" + block);
    }
    inner_.load(in, prefix + "/qinner", names);
}

}  // namespace tern::optim::detail
