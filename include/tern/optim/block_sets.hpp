#pragma once
/// \file Per-block level sets: each constrained block on its own projection and granularity
/// (a ternary conv layer beside a power-of-two FC layer), and the per-layer projection spec
/// that names them:
///
///     conv2=ternary:exact,fc1=pow2:bits=3          two layers, the others the method's default
///     ternary:exact/filter,fc1=pow2,bits=3/tensor  a default first, then per-layer entries
///     fc1=float                                    fc1 stays float (its block unconstrained)
///
/// The optimization layer sees blocks by name only: an entry "conv2" is the layer of the blocks
/// "conv2.<anything>" (the network's "conv2.weights"), an entry may also name a block exactly
/// ("conv2.weights", least squares' "x"). Which blocks are constrained stays the objective's
/// business (ParameterBlock::constrained); run::train() sets it from the entries.
#include "tern/core/parameter.hpp"
#include "tern/core/state.hpp"
#include "tern/core/types.hpp"
#include "tern/proj/projection.hpp"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tern::optim {

/// One entry of a per-layer projection spec.
struct LayerSetSpec {
    std::string name;  ///< a layer ("conv2") or block ("conv2.weights") name
    std::string spec;  ///< a proj::makeProjection() spec, or "float"
    /// "/tensor" or "/filter" after the spec; nullopt = the method's granularity.
    std::optional<Granularity> granularity;
    bool isFloat() const { return spec == "float"; }
    /// "name=spec[/granularity]".
    std::string str() const;
};

/// A projection spec split into its default and its per-layer entries.
struct ProjectionSpec {
    /// The leading plain spec (without name=): the set of constrained blocks no entry names;
    /// "" = the method's default.
    std::string defaultSpec;
    std::optional<Granularity> defaultGranularity;  ///< "/tensor" or "/filter" after it
    std::vector<LayerSetSpec> layers;              ///< in the order given
    bool perLayer() const { return !layers.empty(); }
    /// The entry for `name`, or nullptr.
    const LayerSetSpec* find(const std::string& name) const;
    /// Entries that name a layer or block with a set (not float).
    bool hasSets() const;
    /// Canonical text: the default spec, then the entries, comma-separated (parses back).
    std::string str() const;
};

/// Splits a projection spec into its default and per-layer entries. A comma-separated item
/// "name=value" starts a layer entry when value starts with a set ("float" or a base name of
/// proj::projectionNames()); any other item continues the spec before it ("pow2,bits=3"), so
/// specs keep their commas: "conv2=ternary:exact,fc1=pow2,bits=3,solver=exact". A spec may end
/// in "/tensor" or "/filter" (its granularity). A text with no entry is one plain spec, as
/// before. Throws std::invalid_argument naming the problem for an empty entry or name, a
/// layer named twice, an option before any set, or an unknown granularity. The specs
/// themselves are checked where they are built (makeProjection()).
ProjectionSpec parseProjectionSpec(const std::string& text);

/// The set of one block: a projection and its granularity; a null projection is float.
struct BlockSet {
    std::shared_ptr<const proj::Projection> projection;  ///< nullptr: float (unconstrained)
    Granularity granularity = Granularity::PerTensor;
    bool isFloat() const { return projection == nullptr; }
    /// "ternary:exact/tensor", "pow2,bits=3,solver=alternate/filter", or "float".
    std::string str() const;
};

/// Block name -> level set, with a default. The single-projection constructors of Admm,
/// ProjectedSgd and Rpr build the uniform one (every constrained block on the default).
///
///     optim::BlockSets sets(proj::makeProjection("ternary:exact"));  // the default, per tensor
///     sets.set("b", proj::makeProjection("pow2,bits=3"));            // block or layer "b"
///     optim::Admm opt(sets, admmSettings, sgd, train);
class BlockSets {
public:
    /// Every block on `projection` with `granularity`. Throws std::invalid_argument on a null
    /// projection.
    BlockSets(std::shared_ptr<const proj::Projection> projection,
              Granularity granularity = Granularity::PerTensor);
    /// Block or layer `name` on `projection` (nullptr: float) with `granularity`. Throws
    /// std::invalid_argument for an empty name or one given twice.
    BlockSets& set(const std::string& name, std::shared_ptr<const proj::Projection> projection,
                   Granularity granularity = Granularity::PerTensor);
    /// The set of the block named `block`: the entry with that name, else the entry of its
    /// layer (the name before its last '.'), else the default.
    const BlockSet& of(const std::string& block) const;
    const BlockSet& defaultSet() const { return default_; }
    const std::vector<std::pair<std::string, BlockSet>>& entries() const { return entries_; }
    /// No entries: every block on the default.
    bool uniform() const { return entries_.empty(); }
    /// The most levels of the default and the entries' sets (Optimizer::levels()).
    int maxLevels() const;
    /// Whether the default or an entry has a free scale (Optimizer::freeScale()).
    bool anyFreeScale() const;
    /// Checks the sets against an objective's blocks before an optimizer uses them: every
    /// entry names a block or a layer of blocks, and no constrained block is on a float entry.
    /// Throws std::invalid_argument "<where>: ..." naming the entry and listing the blocks.
    void check(const std::vector<ParameterBlock*>& blocks, const std::string& where) const;
    /// The set of each constrained block, "block=set;block=set" in block order: what a
    /// checkpoint records and a resume compares.
    std::string resolved(const std::vector<ParameterBlock*>& blocks) const;
    /// Compares the sets a saved optimizer state under `prefix` recorded (attribute "sets"; a
    /// state written before per-block sets: its one "projection" and "granularity" on every
    /// block) with these. Throws std::invalid_argument "<where>: state '<prefix>' has the sets
    /// '...', this optimizer has '...'" when they differ.
    void requireSame(const StateReader& in, const std::string& prefix,
                     const std::vector<ParameterBlock*>& blocks, const std::string& where) const;
    /// "ternary:exact per tensor" or "ternary:exact per tensor; fc1: pow2,bits=3 per filter".
    std::string describe() const;

private:
    BlockSet default_;
    std::vector<std::pair<std::string, BlockSet>> entries_;
};

/// What the sets cost per stored weight, as tern-export codes them (docs/export.md): 1 bit for
/// 2 levels (binary), 1 + ceil(log2(R + 1)) for 2R + 1 levels (ternary 2, pow2 with N bits
/// 1 + ceil(log2(N + 1))), 32 for a continuous set (0 levels) or float.
double bitsPerWeight(int levels);

}  // namespace tern::optim
