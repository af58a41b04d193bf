#pragma once
/// \file Classification losses on plain (N, K) logits.
#include "tern/core/types.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace tern::nn {

enum class Loss {
    SoftmaxCrossEntropy,  ///< mean_i -log softmax(s_i)[y_i]
    Hinge,                ///< one-vs-all L1 hinge: mean_i sum_j max(0, 1 - t_ij s_ij), t = +-1
    SquaredHinge          ///< one-vs-all L2 hinge: mean_i sum_j max(0, 1 - t_ij s_ij)^2
};

/// "ce" | "hinge" | "sqhinge"; unknown names throw std::invalid_argument listing them.
Loss parseLoss(const std::string& name);
std::string lossName(Loss loss);

/// Loss averaged over the n rows of `logits` (row-major n x k); writes d loss / d logits into
/// `diff` (may be nullptr) and the number of rows whose arg-max equals the label into
/// `correct`. Accumulates in double.
/// The predicted class of each of `rows` rows of `classes` logits (the first maximum).
std::vector<int> argmaxRows(const std::vector<float>& logits, Index rows, Index classes);

double lossAndGradient(Loss loss, const float* logits, const std::int32_t* labels, Index n,
                       Index k, float* diff, Index* correct);

}  // namespace tern::nn
