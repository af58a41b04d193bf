#pragma once
// Private helper of src/optim: the per-block quantizers of STE and RPR/incremental, whose
// trainable blocks (TTQ's Wp, Wn) get their own inner update, and their checkpoint state.
#include "tern/core/error.hpp"
#include "tern/core/state.hpp"
#include "tern/optim/sgd_update.hpp"
#include "tern/proj/projection.hpp"

#include <string>
#include <utility>
#include <vector>

namespace tern::optim::detail {

/// A block's quantizer, with the block's name (the key of its state in a checkpoint).
struct NamedQuantizer {
    std::string block;
    proj::Quantizer* q = nullptr;
};

/// Every trainable block of the quantizers, in order: slot k of the trainables' inner update.
inline std::vector<ParameterBlock*> trainableBlocks(const std::vector<NamedQuantizer>& qs) {
    std::vector<ParameterBlock*> out;
    for (const NamedQuantizer& n : qs)
        if (ParameterSet* t = n.q->trainable())
            for (ParameterBlock* b : t->all()) out.push_back(b);
    return out;
}

/// One zero inner-update slot per trainable block.
inline void resetTrainables(InnerUpdate& inner, const std::vector<NamedQuantizer>& qs) {
    std::vector<Index> sizes;
    for (const ParameterBlock* t : trainableBlocks(qs)) sizes.push_back(t->value.size());
    inner.reset(sizes);
}

/// t -= lr * inner(grad) on every trainable block (no weight decay), then t = max(t, 0): the
/// scales stay non-negative. Returns whether every block is finite.
inline bool stepTrainables(InnerUpdate& inner, const std::vector<NamedQuantizer>& qs, double lr) {
    bool finite = true;
    const std::vector<ParameterBlock*> ts = trainableBlocks(qs);
    for (size_t k = 0; k < ts.size(); ++k) {
        inner.apply(static_cast<Index>(k), ts[k]->value, ts[k]->grad, lr, false);
        ts[k]->value = ts[k]->value.cwiseMax(Scalar(0));
        finite = finite && ts[k]->value.allFinite();
    }
    return finite;
}

/// Writes, under `prefix`: attribute "quantizer/<block>" (the quantizer's name), the
/// quantizer's own state at "<prefix>/quantizer/<block>", each trainable block at
/// "<prefix>/trainable/<block>/<name>", and the trainables' inner-update slots at
/// "<prefix>/qinner".
inline void saveQuantizers(StateWriter& out, const std::string& prefix,
                           const std::vector<NamedQuantizer>& qs, const InnerUpdate& inner) {
    std::vector<std::string> names;
    for (const NamedQuantizer& n : qs) {
        out.attr(prefix, "quantizer/" + n.block, n.q->name());
        n.q->saveState(out, prefix + "/quantizer/" + n.block);
        if (ParameterSet* t = n.q->trainable())
            for (const ParameterBlock* tb : std::as_const(*t).all()) {
                out.write(prefix + "/trainable/" + n.block + "/" + tb->name, tb->value, tb->shape);
                names.push_back(n.block + "." + tb->name);
            }
    }
    inner.save(out, prefix + "/qinner", names);
}

/// Reads what saveQuantizers() wrote. A quantizer of another kind than the one saved is an
/// error naming `where`, the block and both names.
inline void loadQuantizers(const StateReader& in, const std::string& prefix,
                           const std::vector<NamedQuantizer>& qs, InnerUpdate& inner,
                           const char* where) {
    std::vector<std::string> names;
    for (const NamedQuantizer& n : qs) {
        const std::string saved = in.attrString(prefix, "quantizer/" + n.block);
        if (saved != n.q->name())
            fail(where, "state '" + prefix + "' has quantizer '" + saved + "' for block '" +
                            n.block + "', this optimizer has '" + n.q->name() + "'");
        n.q->loadState(in, prefix + "/quantizer/" + n.block);
        if (ParameterSet* t = n.q->trainable())
            for (ParameterBlock* tb : t->all()) {
                tb->value = in.read(prefix + "/trainable/" + n.block + "/" + tb->name, tb->shape);
                names.push_back(n.block + "." + tb->name);
            }
    }
    inner.load(in, prefix + "/qinner", names);
}

}  // namespace tern::optim::detail
