#pragma once
/// \file BN folding (docs/algorithms.md §9): a trained conv / FC layer, its bias and the batch
/// norm after it become one DeployedLayer with codes (or float weights) and a per-channel
/// scale and shift,
///
///   s_c = gamma_c * a_c / sqrt(v_c + eps),
///   b_c = beta_c + gamma_c * (bias_c - m_c) / sqrt(v_c + eps)
///
/// (without BN: s_c = a_c, b_c = bias_c; float layers: a_c = 1; else a_c is the code scale of
/// c's group: ternary the level of code +1, power of two the a_g of a_g * 2^e).
/// TernaryModel::fromNetwork folds a whole network with it.
#include "tern/core/parameter.hpp"
#include "tern/deploy/layer.hpp"

namespace tern::nn {
class BatchNorm;
}

namespace tern::deploy {

/// Fills the weights, codes, scale and bias of the conv / FC layer `layer` (kind, in, out,
/// kernel, ... already set) from the weight block `weights` (codes if it is constrained:
/// ternary, else power of two, see encodeQuantized(); else the float values), an optional
/// `bias` block and an optional batch norm `bn` that follows the layer; a_c is the scale of
/// the channel's group. Throws std::runtime_error "block '<name>' is not ternary: ... and not
/// power-of-two: ..." for a constrained block that is neither.
void foldLayer(DeployedLayer& layer, const ParameterBlock& weights, const ParameterBlock* bias,
               const nn::BatchNorm* bn, double tolerance);

}  // namespace tern::deploy
