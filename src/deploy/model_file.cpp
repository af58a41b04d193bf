// The tern-model file, written and read in one pass through io's checkpoint writer and reader
// (include/tern/deploy/model_file.hpp, docs/export.md).
#include "tern/deploy/model_file.hpp"

#include "tern/core/error.hpp"
#include "tern/deploy/codes.hpp"
#include "tern/io/checkpoint.hpp"
#include "tern/io/integrity.hpp"

#include <cmath>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace tern::deploy {

namespace {

DeployedKind parseKind(const std::string& s, const std::string& where) {
    if (s == "conv") return DeployedKind::Conv;
    if (s == "fc") return DeployedKind::Fc;
    if (s == "relu") return DeployedKind::Relu;
    if (s == "pool") return DeployedKind::Pool;
    if (s == "add") return DeployedKind::Add;
    if (s == "gap") return DeployedKind::GlobalPool;
    if (s == "shortcut") return DeployedKind::Shortcut;
    throw std::runtime_error(where + ": unknown layer type '" + s +
                             "'; known: conv, fc, relu, pool, add, gap, shortcut");
}

std::int64_t i64(Index v) { return static_cast<std::int64_t>(v); }

}  // namespace

void saveModel(const TernaryModel& m, const std::string& path, bool int8Codes) {
    m.check();
    const auto& input = m.input();
    // Version 3 only when a layer has power-of-two codes: a build that reads version 2 cannot
    // decode them and must refuse the file, while a ternary model stays readable by it.
    bool powerOfTwo = false;
    for (const auto& l : m.layers()) powerOfTwo = powerOfTwo || l.powerOfTwo();
    // Version 4 only for what version 3 cannot express: a graph (residual connections), the
    // add / gap / shortcut layers, a padded pool.
    bool graph = !m.isChain();
    for (const auto& l : m.layers())
        graph = graph || l.kind == DeployedKind::Add || l.kind == DeployedKind::GlobalPool ||
                l.kind == DeployedKind::Shortcut || (l.kind == DeployedKind::Pool && l.padding > 0);
    // Written to path + ".tmp", renamed onto `path` by close(); removed if anything throws.
    io::CheckpointWriter w(path, kModelFormat, graph ? 4 : powerOfTwo ? 3 : 2);
    std::string order;
    for (const auto& l : m.layers()) {
        if (!order.empty()) order += ',';
        order += l.name;
    }
    w.attr("", "layers", order);
    w.attr("", "classes", std::int64_t{m.classes()});
    w.attr("", "input_channels", i64(input[0]));
    w.attr("", "input_height", i64(input[1]));
    w.attr("", "input_width", i64(input[2]));
    w.attr("", "multiplication_free", std::int64_t{m.multiplicationFree()});
    w.attr("", "float32_bits", m.float32Bits());
    w.attr("", "code_encoding",
           std::string("ternary: 2 bits per code, 4 per byte, first code in the low bits; "
                       "00 = 0, 01 = +1, 10 = -1") +
               (powerOfTwo ? "; pow2: `bits` bits per code in one little-endian bit stream, "
                             "top bit the sign, the low bits |code| (0 = zero); value = "
                             "group_scale * sign * 2^(exponent_min + |code| - 1)"
                           : ""));
    // Version 2: scale propagation (TernaryModel::propagateScales()).
    const ScaleFolding& f = m.folding();
    w.attr("", "scales_propagated", std::int64_t{f.propagated});
    w.attr("", "input_form", f.rawInput ? "raw" : "normalized");
    w.attr("", "logit_scale", f.logitScale);
    for (const auto& [k, v] : m.info()) w.attr("source", k, v);
    if (!m.mean().empty()) {
        const auto c = static_cast<Index>(m.mean().size());
        w.write("normalization/mean", Eigen::Map<const Vector>(m.mean().data(), c), Shape{c});
        w.write("normalization/std", Eigen::Map<const Vector>(m.stddev().data(), c), Shape{c});
        if (!f.inputOffset.empty())
            w.write("normalization/offset", Eigen::Map<const Vector>(f.inputOffset.data(), c),
                    Shape{c});
    }
    for (size_t i = 0; i < m.layers().size(); ++i) {
        const DeployedLayer& l = m.layers()[i];
        const std::string g = "layers/" + l.name;
        if (l.weighted()) {
            w.write(g + "/scale", l.scale, Shape{l.out});
            w.write(g + "/bias", l.bias, Shape{l.out});
            w.writeInts(g + "/weight_shape", l.weightShape.dims);
            if (l.quantized()) {
                w.write(g + "/group_scale", l.groupScale, Shape{l.groups});
                if (l.ternary()) w.write(g + "/neg_ratio", l.negRatio, Shape{l.groups});
                const std::vector<std::uint8_t> packed =
                    l.ternary() ? packCodes(l.codes) : packPowerOfTwoCodes(l.codes, l.codeBits());
                w.writeBytes(g + "/codes_packed", packed, Shape{static_cast<Index>(packed.size())});
                if (int8Codes) w.writeBytes(g + "/codes", l.codes, l.weightShape);
            } else {
                w.write(g + "/weights", l.weights, l.weightShape);
            }
            if (l.powerOfTwo()) {
                w.attr(g, "exponent_min", std::int64_t{l.exponentMin});
                w.attr(g, "exponent_max", std::int64_t{l.exponentMax});
                // GTC's count (sign + exponents, no zero), beside the stored width `bits`
                w.attr(g, "gtc_bits", std::int64_t{gtcBits(l.exponentMin, l.exponentMax)});
            }
            w.attr(g, "in", i64(l.in));
            w.attr(g, "out", i64(l.out));
            w.attr(g, "ternary", std::int64_t{l.ternary()});  // what version 1 and 2 readers use
            w.attr(g, "coding", codingName(l.coding));
            w.attr(g, "bits", std::int64_t{l.codeBits()});
            w.attr(g, "groups", i64(l.groups));
            w.attr(g, "folded_batch_norm", std::int64_t{l.foldedBatchNorm});
            w.attr(g, "multiplication_free", std::int64_t{l.multiplicationFree});
            w.attr(g, "source_block", l.sourceBlock);
        }
        w.attr(g, "type", kindName(l.kind));
        w.attr(g, "index", static_cast<std::int64_t>(i));
        if (graph) {
            std::string inputs;
            for (int j : l.inputs)
                inputs += (inputs.empty() ? "" : ",") +
                          (j < 0 ? std::string("input") : m.layers()[static_cast<size_t>(j)].name);
            w.attr(g, "inputs", inputs);
            if (l.kind == DeployedKind::Pool) w.attr(g, "padding", i64(l.padding));
            if (l.kind == DeployedKind::Shortcut) {
                w.attr(g, "in", i64(l.in));
                w.attr(g, "out", i64(l.out));
                w.attr(g, "stride", i64(l.stride));
            }
        }
        if (l.kind == DeployedKind::Conv || l.kind == DeployedKind::Pool) {
            w.attr(g, "kernel", i64(l.kernel));
            w.attr(g, "stride", i64(l.stride));
        }
        if (l.kind == DeployedKind::Conv) w.attr(g, "padding", i64(l.padding));
    }
    w.close();
}

namespace {
TernaryModel loadModelUnguarded(const std::string& path);
}  // namespace

TernaryModel loadModel(const std::string& path) {
    // a file without tern's checksum is read in a child process first (libhdf5 may crash on it)
    io::readUnverifiedSafely(path, "TernaryModel::load()", [&] { loadModelUnguarded(path); });
    return loadModelUnguarded(path);
}

namespace {

TernaryModel loadModelUnguarded(const std::string& path) {
    const std::string where = "TernaryModel::load(): '" + path + "'";
    std::unique_ptr<io::CheckpointReader> r;
    try {
        r = std::make_unique<io::CheckpointReader>(path, kModelFormat, kModelVersion);
    } catch (const std::runtime_error& e) {
        if (std::string(e.what()).find("format 'tern-checkpoint'") != std::string::npos)
            throw std::runtime_error(where +
                                     " is a tern checkpoint, not a model file; export it "
                                     "first (tern-export --checkpoint " +
                                     path + " --out model.h5)");
        throw;
    }
    std::vector<DeployedLayer> layers;
    std::vector<Index> input;
    int classes = 0;
    double float32Bits = 0;
    std::vector<std::pair<std::string, std::string>> info;
    std::vector<float> mean, stddev;
    ScaleFolding folding;  // version 1: nothing propagated, normalized input
    try {
        classes = static_cast<int>(r->attrInt("", "classes"));
        input = {r->attrInt("", "input_channels"), r->attrInt("", "input_height"),
                 r->attrInt("", "input_width")};
        if (r->hasAttr("", "float32_bits")) float32Bits = r->attrDouble("", "float32_bits");
        if (r->hasGroup("source"))
            for (const auto& k : infoKeys())
                if (r->hasAttr("source", k)) info.emplace_back(k, r->attrString("source", k));
        if (r->has("normalization/mean")) {
            const Index c = input[0];
            const Vector mu = r->read("normalization/mean", Shape{c});
            const Vector sd = r->read("normalization/std", Shape{c});
            mean.assign(mu.data(), mu.data() + c);
            stddev.assign(sd.data(), sd.data() + c);
        }
        if (r->version() >= 2) {
            folding.propagated = r->attrInt("", "scales_propagated") != 0;
            const std::string form = r->attrString("", "input_form");
            if (form != "raw" && form != "normalized")
                throw std::runtime_error(where + ": input_form is '" + form +
                                         "', expected raw or normalized");
            folding.rawInput = form == "raw";
            folding.logitScale = r->attrDouble("", "logit_scale");
            if (r->has("normalization/offset")) {
                const Vector off = r->read("normalization/offset", Shape{input[0]});
                folding.inputOffset.assign(off.data(), off.data() + input[0]);
            }
        }
        std::stringstream order(r->attrString("", "layers"));
        for (std::string name; std::getline(order, name, ',');) {
            const std::string g = "layers/" + name;
            DeployedLayer l;
            l.name = name;
            l.kind = parseKind(r->attrString(g, "type"), where);
            const bool graphKind = l.kind == DeployedKind::Add ||
                                   l.kind == DeployedKind::GlobalPool ||
                                   l.kind == DeployedKind::Shortcut;
            if (graphKind && r->version() < 4)
                throw std::runtime_error(where + ": layer '" + name + "' (" + kindName(l.kind) +
                                         ") in a version " + std::to_string(r->version()) +
                                         " file (graph layers came with version 4)");
            if (r->version() >= 4) {
                std::stringstream ins(r->attrString(g, "inputs"));
                for (std::string in; std::getline(ins, in, ',');) {
                    int found = in == "input" ? -1 : -2;
                    for (size_t j = 0; j < layers.size() && found == -2; ++j)
                        if (layers[j].name == in) found = static_cast<int>(j);
                    if (found == -2)
                        throw std::runtime_error(where + ": layer '" + name + "' reads '" + in +
                                                 "', which is not an earlier layer (or input)");
                    l.inputs.push_back(found);
                }
                if (l.kind == DeployedKind::Pool) l.padding = r->attrInt(g, "padding");
                if (l.kind == DeployedKind::Shortcut) {
                    l.in = r->attrInt(g, "in");
                    l.out = r->attrInt(g, "out");
                    l.stride = r->attrInt(g, "stride");
                    if (l.in < 1 || l.out < l.in || l.stride < 1)
                        throw std::runtime_error(where + ": layer '" + name +
                                                 "' has a bad shortcut (in, out, stride)");
                }
            }
            if (l.kind == DeployedKind::Conv || l.kind == DeployedKind::Pool) {
                l.kernel = r->attrInt(g, "kernel");
                l.stride = r->attrInt(g, "stride");
                if (l.kernel < 1 || l.stride < 1)
                    throw std::runtime_error(where + ": layer '" + name +
                                             "' has kernel/stride < 1");
            }
            if (l.kind == DeployedKind::Conv) l.padding = r->attrInt(g, "padding");
            if (l.padding < 0 || (l.kind == DeployedKind::Pool && l.padding >= l.kernel))
                throw std::runtime_error(where + ": layer '" + name + "' has the padding " +
                                         std::to_string(l.padding));
            if (l.weighted()) {
                l.in = r->attrInt(g, "in");
                l.out = r->attrInt(g, "out");
                if (l.in < 1 || l.out < 1)
                    throw std::runtime_error(where + ": layer '" + name + "' has in/out < 1");
                // Versions 1 and 2 before `coding`: ternary codes or float weights.
                const bool ternaryAttr = r->attrInt(g, "ternary") != 0;
                l.coding = ternaryAttr ? WeightCoding::Ternary : WeightCoding::Float;
                if (r->hasAttr(g, "coding")) {
                    try {
                        l.coding = parseCoding(r->attrString(g, "coding"));
                    } catch (const std::invalid_argument& e) {
                        throw std::runtime_error(where + ": layer '" + name + "': " + e.what());
                    }
                    if (ternaryAttr != l.ternary())
                        throw std::runtime_error(where + ": layer '" + name + "' has coding '" +
                                                 codingName(l.coding) + "' but ternary = " +
                                                 (ternaryAttr ? "1" : "0"));
                }
                if (l.powerOfTwo() && r->version() < 3)
                    throw std::runtime_error(where + ": layer '" + name +
                                             "' has power-of-two codes in a version " +
                                             std::to_string(r->version()) +
                                             " file (they came with version 3)");
                l.groups = r->attrInt(g, "groups");
                l.foldedBatchNorm = r->attrInt(g, "folded_batch_norm") != 0;
                l.multiplicationFree = r->attrInt(g, "multiplication_free") != 0;
                l.sourceBlock = r->attrString(g, "source_block");
                l.weightShape = Shape(r->readInts(g + "/weight_shape"));
                double elements = 1;  // in double: a damaged shape must not overflow Index
                for (Index d : l.weightShape.dims) {
                    if (d < 1)
                        throw std::runtime_error(where + ": layer '" + name +
                                                 "' has a bad weight shape");
                    elements *= static_cast<double>(d);
                }
                if (l.weightShape.dims.empty() || elements > 1e12)
                    throw std::runtime_error(where + ": layer '" + name +
                                             "' has a bad weight shape (" +
                                             std::to_string(l.weightShape.dims.size()) +
                                             " dims, " + std::to_string(elements) + " elements)");
                l.scale = r->read(g + "/scale", Shape{l.out});
                l.bias = r->read(g + "/bias", Shape{l.out});
                if (l.quantized()) {
                    if (l.groups < 1 || l.groups > l.out)
                        throw std::runtime_error(where + ": layer '" + name + "' has " +
                                                 std::to_string(l.groups) + " groups for " +
                                                 std::to_string(l.out) + " outputs");
                    l.groupScale = r->read(g + "/group_scale", Shape{l.groups});
                    if (l.ternary()) l.negRatio = r->read(g + "/neg_ratio", Shape{l.groups});
                    const Index n = l.weightShape.size();
                    int bits = 2;
                    long range = 1;
                    if (l.powerOfTwo()) {
                        const std::int64_t lo = r->attrInt(g, "exponent_min"),
                                           hi = r->attrInt(g, "exponent_max");
                        range = long(hi - lo + 1);
                        if (lo < -149 || hi > 127 || range < 1 || range > kMaxPowerOfTwoExponents)
                            throw std::runtime_error(
                                where + ": layer '" + name +
                                TERN_MSG("' has the exponents " << lo << ".." << hi << " (1 to "
                                                                << kMaxPowerOfTwoExponents
                                                                << " of them within -149..127 expected)"));
                        l.exponentMin = static_cast<int>(lo);
                        l.exponentMax = static_cast<int>(hi);
                        bits = l.codeBits();
                    }
                    if (r->hasAttr(g, "bits") && r->attrInt(g, "bits") != bits)
                        throw std::runtime_error(where + ": layer '" + name +
                                                 TERN_MSG("' says bits = " << r->attrInt(g, "bits")
                                                                           << ", its codes take "
                                                                           << bits));
                    const Index bytes = (n * bits + 7) / 8;
                    const auto packed = r->readBytes(g + "/codes_packed", Shape{bytes});
                    try {
                        l.codes = l.ternary() ? unpackCodes(packed, n)
                                              : unpackPowerOfTwoCodes(packed, n, bits,
                                                                      static_cast<int>(range));
                    } catch (const std::invalid_argument& e) {
                        throw std::runtime_error(where + ": layer '" + name + "': " + e.what());
                    }
                    if (r->has(g + "/codes") &&
                        r->readSignedBytes(g + "/codes", l.weightShape) != l.codes)
                        throw std::runtime_error(where + ": layer '" + name +
                                                 "': int8 codes and packed codes differ");
                } else {
                    if (r->hasAttr(g, "bits") && r->attrInt(g, "bits") != 32)
                        throw std::runtime_error(where + ": layer '" + name +
                                                 TERN_MSG("' says bits = " << r->attrInt(g, "bits")
                                                                           << ", float weights take 32"));
                    l.weights = r->read(g + "/weights", l.weightShape);
                }
            }
            layers.push_back(std::move(l));
        }
    } catch (const std::logic_error& e) {  // out_of_range, invalid_argument: missing / wrong shape
        throw std::runtime_error(where + ": not a valid model file: " + e.what());
    }
    // Values a corrupt or diverged file may hold: refused here, not found as NaN logits.
    auto finite = [&](const Vector& v, const std::string& layer, const char* field) {
        for (Index i = 0; i < v.size(); ++i)
            if (!std::isfinite(v[i]))
            {
                std::ostringstream m;
                m << where << ": layer '" << layer << "' " << field << "[" << i << "] is " << v[i]
                  << " (a corrupt model file)";
                throw std::runtime_error(m.str());
            }
    };
    for (const DeployedLayer& l : layers) {
        finite(l.scale, l.name, "scale");
        finite(l.bias, l.name, "bias");
        finite(l.groupScale, l.name, "group_scale");
        finite(l.negRatio, l.name, "neg_ratio");
        finite(l.weights, l.name, "weights");
    }
    if (!std::isfinite(folding.logitScale) || folding.logitScale == 0)
        throw std::runtime_error(where + ": logit_scale is " + std::to_string(folding.logitScale) +
                                 " (a corrupt model file)");
    for (size_t c = 0; c < folding.inputOffset.size(); ++c)
        if (!std::isfinite(folding.inputOffset[c]))
            throw std::runtime_error(where + ": normalization/offset[" + std::to_string(c) +
                                     "] is " + std::to_string(folding.inputOffset[c]) +
                                     " (a corrupt model file)");
    TernaryModel m(std::move(layers), std::move(input), classes, float32Bits);
    try {
        m.setNormalization(std::move(mean), std::move(stddev));
    } catch (const std::invalid_argument& e) {
        throw std::runtime_error(where + ": " + e.what());
    }
    try {
        m.setFolding(std::move(folding));
    } catch (const std::invalid_argument& e) {
        throw std::runtime_error(where + ": " + e.what());
    }
    for (const auto& [k, v] : info) m.addInfo(k, v);
    return m;
}

}  // namespace

void TernaryModel::save(const std::string& path, bool int8Codes) const {
    saveModel(*this, path, int8Codes);
}

TernaryModel TernaryModel::load(const std::string& path) { return loadModel(path); }

}  // namespace tern::deploy
