#pragma once
/// \file One layer of a deployed (exported) network: ternary or power-of-two codes, or float
/// weights, with the per-channel scale s_c and shift b_c that BN folding produced
/// (deploy/folding.hpp).
#include "tern/core/types.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace tern::deploy {

/// Kinds of layer in a deployed graph.
enum class DeployedKind {
    Conv,
    Fc,
    Relu,
    Pool,        ///< max pooling (kernel, stride, padding)
    Add,         ///< element-wise sum of two inputs (residual blocks)
    GlobalPool,  ///< global average pooling: C x H x W -> C
    Shortcut,    ///< option-A shortcut: subsample by `stride`, zero-pad channels in -> out
};

/// "conv", "fc", "relu", "pool", "add", "gap", "shortcut".
std::string kindName(DeployedKind k);

/// How a conv / FC layer's weights are stored (docs/export.md section 2).
enum class WeightCoding {
    Float,       ///< float32 weights (an unquantized layer)
    Ternary,     ///< codes in {-1, 0, +1}, 2 bits each, levels a_g and -r_g a_g per group
    PowerOfTwo,  ///< sign + exponent codes: a_g * (+-2^e) per group, `bits` bits each
};

/// "float", "ternary", "pow2" (the model file's `coding` attribute).
std::string codingName(WeightCoding c);
/// Inverse of codingName(). Throws std::invalid_argument "unknown weight coding '<s>'; known:
/// float, ternary, pow2".
WeightCoding parseCoding(const std::string& s);

/// One layer of a deployed model.
struct DeployedLayer {
    std::string name;  ///< the trained layer's name ("conv1", "fc2", "relu1", "pool1")
    DeployedKind kind = DeployedKind::Relu;
    /// The layers this one reads: indices of earlier layers of the model, -1 for the model's
    /// input; empty = the layer before (a chain; TernaryModel fills it in). Add reads two.
    std::vector<int> inputs;

    // Conv / Fc
    Index in = 0;       ///< input channels (conv, shortcut) or input features (fc)
    Index out = 0;      ///< output channels / features (conv, fc, shortcut)
    Index kernel = 1;   ///< conv: square kernel; pool: window
    Index stride = 1;   ///< conv / pool / shortcut stride
    Index padding = 0;  ///< conv / pool padding (both sides)
    Shape weightShape;  ///< OIHW (conv) or {out, in} (fc)
    WeightCoding coding = WeightCoding::Float;  ///< codes (ternary, power of two) or floats
    /// Ternary: codes in {-1, 0, +1}; power of two: 0 or +-(e - exponentMin + 1); weightShape
    /// order.
    std::vector<std::int8_t> codes;
    Vector weights;                  ///< float layers: the trained float weights
    Index groups = 1;                ///< codes: scale groups (1 = per tensor, out = per filter)
    /// Ternary, per group: magnitude of the negative level relative to the positive one
    /// (1 for sign-symmetric sets; TTQ's Wn/Wp otherwise). Code -1 means -negRatio. Empty for
    /// power-of-two layers.
    Vector negRatio;
    /// Codes, per group: a_g (ternary: the positive level; power of two: the scale of 2^e;
    /// 1 for an all-zero group).
    Vector groupScale;
    int exponentMin = 0;  ///< power of two: m, the exponent of code +-1
    int exponentMax = 0;  ///< power of two: M, the largest exponent (|code| <= M - m + 1)
    Vector scale;         ///< per output channel s_c (BN folded)
    Vector bias;          ///< per output channel b_c (BN folded)
    bool foldedBatchNorm = false;  ///< a BN was folded into scale/bias
    /// Codes, every s_c == 1 and every effectiveWeights() value 0 or +-2^k: the layer needs
    /// additions and shifts only (updateMultiplicationFree()).
    bool multiplicationFree = false;
    std::string sourceBlock;  ///< "conv1.weights"

    /// Conv or Fc (a layer with weights).
    bool weighted() const { return kind == DeployedKind::Conv || kind == DeployedKind::Fc; }
    /// Ternary codes.
    bool ternary() const { return coding == WeightCoding::Ternary; }
    /// Power-of-two codes.
    bool powerOfTwo() const { return coding == WeightCoding::PowerOfTwo; }
    /// Codes of either kind (a quantized layer), not float weights.
    bool quantized() const { return coding != WeightCoding::Float; }
    /// Bits per stored weight: 2 (ternary), the power-of-two code width
    /// (powerOfTwoCodeBits(exponentMin, exponentMax), deploy/codes.hpp), 32 (float).
    int codeBits() const;
    /// Some s_c differs from 1 (the layer multiplies its outputs).
    bool scaled() const { return (scale.array() != 1.0f).any(); }
    /// Nonzero codes or nonzero weights (float).
    Index nonzeros() const;
    /// The weight each code stands for, before s_c: ternary code > 0 -> 1, < 0 ->
    /// -negRatio[g]; power of two sign(code) * 2^(exponentMin + |code| - 1); float layers
    /// their weights.
    Vector effectiveWeights() const;
    /// Sets multiplicationFree from the codes and s_c (see there): after folding, a gain, or
    /// scale propagation changed them.
    void updateMultiplicationFree();
    /// Dims of one image ({C, H, W} or {F}) after this layer, given `src` before it. Throws
    /// std::runtime_error "<where>: layer '<name>' (<kind>) expects ..., input CxHxW" if they
    /// do not fit.
    std::vector<Index> outputDims(const std::vector<Index>& src, const std::string& where) const;
    /// The same for the dims of every input (Add: two equal ones).
    std::vector<Index> outputDimsAll(const std::vector<std::vector<Index>>& srcs,
                                     const std::string& where) const;
    /// How many inputs the kind reads (2 for Add, else 1).
    int arity() const { return kind == DeployedKind::Add ? 2 : 1; }
};

/// "1x28x28" for messages.
std::string dimsString(const std::vector<Index>& dims);

}  // namespace tern::deploy
