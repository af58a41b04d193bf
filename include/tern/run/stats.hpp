#pragma once
/// \file What a deployed network costs: per-layer quantization statistics (nonzeros, distinct
/// values, scales) and per-image storage, multiplications and additions.
#include "tern/core/types.hpp"
#include "tern/nn/network.hpp"

#include <functional>
#include <string>
#include <vector>

namespace tern::run {

/// Per quantized layer, at the deployed point.
struct LayerQuant {
    std::string block;
    Index total = 0, nonzeros = 0;
    Index groups = 1;
    Index maxDistinctPerGroup = 0;  ///< distinct values in the most varied group
    std::vector<float> scales;      ///< max |value| per group
    /// The block's set (optim::Optimizer::deployedSet(): "ternary:exact/tensor", "ttq,...",
    /// "gtc,...") and its bits per stored weight (optim::bitsPerWeight() of its levels, or
    /// GTC's learned bits). The defaults are a ternary layer's, as before per-layer sets.
    std::string set;
    double bits = 2;
    bool freeScale = true;          ///< a free scale per group (a multiply may remain)
};

/// Costs of the deployed network, per image.
struct NetworkCost {
    Index nonzeroWeights = 0;  ///< nonzero weights over all conv/FC layers
    Index totalWeights = 0;
    /// Each quantized layer's bits per weight (LayerQuant::bits: 2 ternary, 1 binary, pow2 and
    /// GTC their code width), 32 per float value, 32 per scale.
    double storageBits = 0;
    Index multiplications = 0; ///< after BN folding: ternary layers only scale per output value
    Index additions = 0;
};

/// Quantization statistics of the constrained blocks as they are now.
std::vector<LayerQuant> quantStats(nn::Network& net, Granularity g);
/// The same with each block's own granularity (per-layer sets).
std::vector<LayerQuant> quantStats(nn::Network& net,
                                   const std::function<Granularity(const std::string& block)>& g);
/// Cost of the network as it is now (call at the deployed point). `hasScale` and a layer's
/// LayerQuant::freeScale both: its scale per group remains a multiply.
NetworkCost networkCost(nn::Network& net, const std::vector<LayerQuant>& layers, bool hasScale);

}  // namespace tern::run
