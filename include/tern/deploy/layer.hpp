#pragma once
/// \file One layer of a deployed (exported) ternary network: codes or float weights with the
/// per-channel scale s_c and shift b_c that BN folding produced (deploy/folding.hpp).
#include "tern/core/types.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace tern::deploy {

/// Kinds of layer in a deployed graph.
enum class DeployedKind { Conv, Fc, Relu, Pool };

/// "conv", "fc", "relu", "pool".
std::string kindName(DeployedKind k);

/// One layer of a deployed model.
struct DeployedLayer {
    std::string name;  ///< the trained layer's name ("conv1", "fc2", "relu1", "pool1")
    DeployedKind kind = DeployedKind::Relu;

    // Conv / Fc
    Index in = 0;       ///< input channels (conv) or input features (fc)
    Index out = 0;      ///< output channels / features
    Index kernel = 1;   ///< conv: square kernel; pool: window
    Index stride = 1;   ///< conv / pool stride
    Index padding = 0;  ///< conv padding (both sides)
    Shape weightShape;  ///< OIHW (conv) or {out, in} (fc)
    bool ternary = false;            ///< weights are ternary codes (else float weights)
    std::vector<std::int8_t> codes;  ///< ternary: codes in {-1, 0, +1}, weightShape order
    Vector weights;                  ///< float layers: the trained float weights
    Index groups = 1;                ///< ternary: scale groups (1 = per tensor, out = per filter)
    /// Ternary, per group: magnitude of the negative level relative to the positive one
    /// (1 for sign-symmetric sets; TTQ's Wn/Wp otherwise). Code -1 means -negRatio.
    Vector negRatio;
    Vector groupScale;  ///< ternary, per group: a_g (the positive level; 1 for an all-zero group)
    Vector scale;       ///< per output channel s_c (BN folded)
    Vector bias;        ///< per output channel b_c (BN folded)
    bool foldedBatchNorm = false;     ///< a BN was folded into scale/bias
    bool multiplicationFree = false;  ///< ternary, sign-symmetric and every s_c == 1
    std::string sourceBlock;          ///< "conv1.weights"

    /// Conv or Fc (a layer with weights).
    bool weighted() const { return kind == DeployedKind::Conv || kind == DeployedKind::Fc; }
    /// Some s_c differs from 1 (the layer multiplies its outputs).
    bool scaled() const { return (scale.array() != 1.0f).any(); }
    /// Nonzero codes (ternary) or nonzero weights (float).
    Index nonzeros() const;
    /// The weight each code stands for, before s_c: code > 0 -> 1, < 0 -> -negRatio[g].
    Vector effectiveWeights() const;
    /// Dims of one image ({C, H, W} or {F}) after this layer, given `src` before it. Throws
    /// std::runtime_error "<where>: layer '<name>' (<kind>) expects ..., input CxHxW" if they
    /// do not fit.
    std::vector<Index> outputDims(const std::vector<Index>& src, const std::string& where) const;
};

/// "1x28x28" for messages.
std::string dimsString(const std::vector<Index>& dims);

}  // namespace tern::deploy
