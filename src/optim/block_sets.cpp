// Per-block level sets and the per-layer projection spec (include/tern/optim/block_sets.hpp).
#include "tern/optim/block_sets.hpp"

#include "tern/core/error.hpp"
#include "tern/core/format.hpp"

#include <algorithm>
#include <cmath>

namespace tern::optim {

namespace {

/// "spec/filter" -> ("spec", PerFilter); no '/' -> (spec, nullopt).
std::pair<std::string, std::optional<Granularity>> splitGranularity(const std::string& spec) {
    const std::size_t slash = spec.rfind('/');
    if (slash == std::string::npos) return {spec, std::nullopt};
    const std::string g = spec.substr(slash + 1);
    if (g != "tensor" && g != "filter")
        fail("parseProjectionSpec()",
             "granularity '" + g + "' after '" + spec.substr(0, slash) + "' must be tensor or filter");
    return {spec.substr(0, slash), parseGranularity(g)};
}

/// Whether `value` (the text after "name=") starts with a set: float or a projection's base.
bool startsWithSet(const std::string& value) {
    if (value == "float" || value.rfind("float/", 0) == 0) return true;
    const std::string base = value.substr(0, value.find_first_of(":/,"));
    const std::vector<std::string> names = proj::projectionNames();
    return std::any_of(names.begin(), names.end(), [&](const std::string& n) {
        return n.substr(0, n.find(':')) == base;
    });
}

/// The layer of a block: the name before its last '.' ("" when it has none).
std::string layerOf(const std::string& block) {
    const std::size_t dot = block.rfind('.');
    return dot == std::string::npos ? std::string() : block.substr(0, dot);
}

std::string withGranularity(const std::string& spec, const std::optional<Granularity>& g) {
    return g ? spec + "/" + granularityName(*g) : spec;
}

}  // namespace

// ---------------------------------------------------------------- the spec

std::string LayerSetSpec::str() const { return name + "=" + withGranularity(spec, granularity); }

const LayerSetSpec* ProjectionSpec::find(const std::string& name) const {
    for (const LayerSetSpec& l : layers)
        if (l.name == name) return &l;
    return nullptr;
}

bool ProjectionSpec::hasSets() const {
    return std::any_of(layers.begin(), layers.end(), [](const LayerSetSpec& l) { return !l.isFloat(); });
}

std::string ProjectionSpec::str() const {
    std::vector<std::string> items;
    if (!defaultSpec.empty()) items.push_back(withGranularity(defaultSpec, defaultGranularity));
    for (const LayerSetSpec& l : layers) items.push_back(l.str());
    return joined(items, ",");
}

ProjectionSpec parseProjectionSpec(const std::string& text) {
    const char* where = "parseProjectionSpec()";
    ProjectionSpec out;
    // Comma-separated items; "name=<set>..." opens an entry, anything else continues the spec
    // in front of it (its options: "pow2,bits=3").
    std::vector<std::string> items;
    for (std::size_t pos = 0;;) {
        const std::size_t comma = text.find(',', pos);
        items.push_back(text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
        if (comma == std::string::npos) break;
        pos = comma + 1;
    }
    bool anyEntry = false;
    for (const std::string& item : items) {
        const std::size_t eq = item.find('=');
        anyEntry = anyEntry || (eq != std::string::npos && startsWithSet(item.substr(eq + 1)));
    }
    // "fc1=pow3": a name whose value is no set (else the whole text reaches makeProjection)
    const std::string& first = items.front();
    const std::size_t firstEq = first.find('=');
    if (firstEq != std::string::npos && firstEq < first.find(':') && !startsWithSet(first.substr(firstEq + 1)))
        fail(where, "'" + first + "' in '" + text + "': '" + first.substr(firstEq + 1) +
                        "' is not a set (known: float, " + joined(proj::projectionNames()) + ")");
    if (!anyEntry) {  // one plain spec, as before per-layer sets
        std::tie(out.defaultSpec, out.defaultGranularity) = splitGranularity(text);
        return out;
    }
    std::string defaultText;
    std::vector<std::pair<std::string, std::string>> raw;  // name, spec text
    for (const std::string& item : items) {
        if (item.empty())
            fail(where, "empty entry in '" + text + "' (two commas, or one at an end)");
        const std::size_t eq = item.find('=');
        if (eq != std::string::npos && startsWithSet(item.substr(eq + 1))) {
            const std::string name = item.substr(0, eq);
            if (name.empty()) fail(where, "entry '" + item + "' of '" + text + "' has no layer name");
            if (name.find_first_of(":/ ") != std::string::npos)
                fail(where, "layer name '" + name + "' in '" + text + "' is not a name");
            for (const auto& [n, s] : raw)
                if (n == name) fail(where, "layer '" + name + "' is given twice in '" + text + "'");
            raw.emplace_back(name, item.substr(eq + 1));
        } else if (!raw.empty()) {
            raw.back().second += "," + item;
        } else {
            defaultText += (defaultText.empty() ? "" : ",") + item;
        }
    }
    if (!defaultText.empty()) {
        std::tie(out.defaultSpec, out.defaultGranularity) = splitGranularity(defaultText);
    }
    for (const auto& [name, spec] : raw) {
        LayerSetSpec l;
        l.name = name;
        std::tie(l.spec, l.granularity) = splitGranularity(spec);
        if (l.isFloat() && l.granularity)
            fail(where, "layer '" + name + "' is float: it has no granularity");
        out.layers.push_back(std::move(l));
    }
    return out;
}

// ---------------------------------------------------------------- the sets

std::string BlockSet::str() const {
    return projection ? projection->name() + "/" + granularityName(granularity) : "float";
}

BlockSets::BlockSets(std::shared_ptr<const proj::Projection> projection, Granularity granularity) {
    if (!projection) fail("BlockSets::BlockSets()", "the default projection must not be null");
    default_ = {std::move(projection), granularity};
}

BlockSets& BlockSets::set(const std::string& name, std::shared_ptr<const proj::Projection> projection,
                          Granularity granularity) {
    if (name.empty()) fail("BlockSets::set()", "the block or layer name must not be empty");
    for (const auto& [n, s] : entries_)
        if (n == name) fail("BlockSets::set()", "'" + name + "' has a set already");
    entries_.emplace_back(name, BlockSet{std::move(projection), granularity});
    return *this;
}

const BlockSet& BlockSets::of(const std::string& block) const {
    for (const auto& [n, s] : entries_)
        if (n == block) return s;
    const std::string layer = layerOf(block);
    if (!layer.empty())
        for (const auto& [n, s] : entries_)
            if (n == layer) return s;
    return default_;
}

int BlockSets::maxLevels() const {
    int levels = default_.projection->levels();
    for (const auto& [n, s] : entries_)
        if (s.projection) levels = std::max(levels, s.projection->levels());
    return levels;
}

bool BlockSets::anyFreeScale() const {
    bool free = default_.projection->freeScale();
    for (const auto& [n, s] : entries_) free = free || (s.projection && s.projection->freeScale());
    return free;
}

void BlockSets::check(const std::vector<ParameterBlock*>& blocks, const std::string& where) const {
    std::vector<std::string> names;
    for (const ParameterBlock* b : blocks) names.push_back(b->name);
    for (const auto& entry : entries_) {
        const std::string& n = entry.first;  // a structured binding cannot be captured (C++17)
        const bool named = std::any_of(blocks.begin(), blocks.end(), [&](const ParameterBlock* b) {
            return b->name == n || layerOf(b->name) == n;
        });
        if (!named)
            fail(where, "the set of '" + n + "' names no block or layer; blocks: " + joined(names));
    }
    for (const ParameterBlock* b : blocks)
        if (b->constrained && of(b->name).isFloat())
            fail(where, "block '" + b->name + "' is constrained but its set is float (mark it "
                        "unconstrained: ParameterBlock::constrained = false)");
}

std::string BlockSets::resolved(const std::vector<ParameterBlock*>& blocks) const {
    std::vector<std::string> items;
    for (const ParameterBlock* b : blocks)
        if (b->constrained) items.push_back(b->name + "=" + of(b->name).str());
    return joined(items, ";");
}

void BlockSets::requireSame(const StateReader& in, const std::string& prefix,
                            const std::vector<ParameterBlock*>& blocks,
                            const std::string& where) const {
    const std::string mine = resolved(blocks);
    const std::string theirs =
        in.hasAttr(prefix, "sets")
            ? in.attrString(prefix, "sets")
            : BlockSets(proj::makeProjection(in.attrString(prefix, "projection")),
                        parseGranularity(in.attrString(prefix, "granularity")))
                  .resolved(blocks);
    if (theirs != mine)
        fail(where, "state '" + prefix + "' has the sets '" + theirs + "', this optimizer has '" +
                        mine + "'");
}

std::string BlockSets::describe() const {
    std::string s = default_.projection->name() + " per " + granularityName(default_.granularity);
    for (const auto& [n, set] : entries_)
        s += "; " + n + ": " +
             (set.projection ? set.projection->name() + " per " + granularityName(set.granularity)
                             : std::string("float"));
    return s;
}

double bitsPerWeight(int levels) {
    if (levels <= 0) return 32;  // continuous: float32
    if (levels % 2 == 0) return std::ceil(std::log2(static_cast<double>(levels)));
    // 2R + 1 levels: a sign bit and |code| in 0..R (docs/export.md, section 1.3)
    const int r = (levels - 1) / 2;
    return 1 + std::ceil(std::log2(static_cast<double>(r + 1)));
}

}  // namespace tern::optim
