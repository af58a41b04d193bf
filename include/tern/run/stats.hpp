#pragma once
/// \file What a deployed network costs: per-layer quantization statistics (nonzeros, distinct
/// values, scales) and per-image storage, multiplications and additions.
#include "tern/core/types.hpp"
#include "tern/nn/network.hpp"

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
};

/// Costs of the deployed network, per image.
struct NetworkCost {
    Index nonzeroWeights = 0;  ///< nonzero weights over all conv/FC layers
    Index totalWeights = 0;
    double storageBits = 0;    ///< 2 bits per ternary weight, 32 per float value, 32 per scale
    Index multiplications = 0; ///< after BN folding: ternary layers only scale per output value
    Index additions = 0;
};

/// Quantization statistics of the constrained blocks as they are now.
std::vector<LayerQuant> quantStats(nn::Network& net, Granularity g);
/// Cost of the network as it is now (call at the deployed point).
NetworkCost networkCost(nn::Network& net, const std::vector<LayerQuant>& layers, bool hasScale);

}  // namespace tern::run
