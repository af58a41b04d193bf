// One layer of a deployed model: weights each code stands for, shape propagation.
#include "tern/deploy/layer.hpp"

#include "tern/core/error.hpp"
#include "tern/deploy/codes.hpp"

#include <cmath>

#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace tern::deploy {

std::string kindName(DeployedKind k) {
    switch (k) {
    case DeployedKind::Conv: return "conv";
    case DeployedKind::Fc: return "fc";
    case DeployedKind::Relu: return "relu";
    case DeployedKind::Pool: return "pool";
    case DeployedKind::Add: return "add";
    case DeployedKind::GlobalPool: return "gap";
    case DeployedKind::Shortcut: return "shortcut";
    }
    return "?";
}

std::string codingName(WeightCoding c) {
    switch (c) {
    case WeightCoding::Float: return "float";
    case WeightCoding::Ternary: return "ternary";
    case WeightCoding::PowerOfTwo: return "pow2";
    }
    return "?";
}

WeightCoding parseCoding(const std::string& s) {
    for (WeightCoding c : {WeightCoding::Float, WeightCoding::Ternary, WeightCoding::PowerOfTwo})
        if (s == codingName(c)) return c;
    fail("parseCoding()", "unknown weight coding '" + s + "'; known: float, ternary, pow2");
}

std::string dimsString(const std::vector<Index>& d) {
    std::ostringstream s;
    for (size_t i = 0; i < d.size(); ++i) s << (i ? "x" : "") << d[i];
    return s.str();
}

int DeployedLayer::codeBits() const {
    switch (coding) {
    case WeightCoding::Float: return 32;
    case WeightCoding::Ternary: return 2;
    case WeightCoding::PowerOfTwo: return powerOfTwoCodeBits(exponentMin, exponentMax);
    }
    return 32;
}

Index DeployedLayer::nonzeros() const {
    if (quantized())
        return std::count_if(codes.begin(), codes.end(), [](std::int8_t c) { return c != 0; });
    return (weights.array() != 0.0f).count();
}

Vector DeployedLayer::effectiveWeights() const {
    if (!quantized()) return weights;
    Vector w(static_cast<Index>(codes.size()));
    const Index per = groups > 0 ? w.size() / groups : w.size();
    for (Index i = 0; i < w.size(); ++i) {
        const int c = codes[i];
        if (powerOfTwo())  // exact: a power of two in float's range (checked on load)
            w[i] = c == 0 ? 0.0f
                          : static_cast<Scalar>(std::ldexp(c > 0 ? 1.0 : -1.0,
                                                           exponentMin + std::abs(c) - 1));
        else
            w[i] = c > 0 ? 1.0f : (c < 0 ? -negRatio[i / per] : 0.0f);
    }
    return w;
}

void DeployedLayer::updateMultiplicationFree() {
    // Products with 0 and +-2^k are shifts (an exponent add for a float input): power-of-two
    // codes always; ternary ones when the negative level -r_g is one too (r_g = 1: {-1, 0, 1}).
    bool shifts = powerOfTwo();
    if (ternary()) {
        shifts = true;
        for (Index g = 0; g < negRatio.size() && shifts; ++g) {
            int e = 0;
            shifts = std::frexp(std::abs(double(negRatio[g])), &e) == 0.5;
        }
    }
    multiplicationFree = shifts && !scaled();
}

std::vector<Index> DeployedLayer::outputDims(const std::vector<Index>& src,
                                             const std::string& where) const {
    auto bad = [&](const std::string& what) {
        throw std::runtime_error(where + ": layer '" + name + "' (" + kindName(kind) + ") " + what +
                                 ", input " + dimsString(src));
    };
    Index features = 1;
    for (Index d : src) features *= d;
    switch (kind) {
    case DeployedKind::Conv: {
        if (src.size() != 3 || src[0] != in) bad(TERN_MSG("expects " << in << " channels"));
        const Index h = (src[1] + 2 * padding - kernel) / stride + 1;
        const Index w = (src[2] + 2 * padding - kernel) / stride + 1;
        if (h < 1 || w < 1) bad("has no output");
        return {out, h, w};
    }
    case DeployedKind::Fc:
        if (features != in) bad(TERN_MSG("expects " << in << " input features"));
        return {out};
    case DeployedKind::Pool: {
        if (src.size() != 3 || src[1] + 2 * padding < kernel || src[2] + 2 * padding < kernel)
            bad("input too small");
        return {src[0], (src[1] + 2 * padding - kernel) / stride + 1,
                (src[2] + 2 * padding - kernel) / stride + 1};
    }
    case DeployedKind::Relu:
    case DeployedKind::Add: return src;
    case DeployedKind::GlobalPool:
        if (src.size() != 3) bad("expects C x H x W");
        return {src[0]};
    case DeployedKind::Shortcut:
        if (src.size() != 3 || src[0] != in || out < in)
            bad(TERN_MSG("expects " << in << " channels (padded to " << out << ")"));
        return {out, (src[1] - 1) / stride + 1, (src[2] - 1) / stride + 1};
    }
    return src;
}

std::vector<Index> DeployedLayer::outputDimsAll(const std::vector<std::vector<Index>>& srcs,
                                                const std::string& where) const {
    if (static_cast<int>(srcs.size()) != arity())
        throw std::runtime_error(where + ": layer '" + name + "' (" + kindName(kind) + ") reads " +
                                 std::to_string(arity()) + " input(s), given " +
                                 std::to_string(srcs.size()));
    if (kind == DeployedKind::Add && srcs[0] != srcs[1])
        throw std::runtime_error(where + ": layer '" + name + "' (add) adds " +
                                 dimsString(srcs[0]) + " and " + dimsString(srcs[1]));
    return outputDims(srcs[0], where);
}

}  // namespace tern::deploy
