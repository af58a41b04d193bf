#include "tern/nn/loss.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace tern::nn {

Loss parseLoss(const std::string& name) {
    if (name == "ce" || name == "softmax") return Loss::SoftmaxCrossEntropy;
    if (name == "hinge") return Loss::Hinge;
    if (name == "sqhinge") return Loss::SquaredHinge;
    throw std::invalid_argument("parseLoss(): unknown loss '" + name +
                                "'; known: ce, hinge, sqhinge");
}

std::string lossName(Loss loss) {
    switch (loss) {
        case Loss::SoftmaxCrossEntropy: return "ce";
        case Loss::Hinge: return "hinge";
        case Loss::SquaredHinge: return "sqhinge";
    }
    return "?";
}

std::vector<int> argmaxRows(const std::vector<float>& logits, Index rows, Index classes) {
    std::vector<int> out(static_cast<size_t>(rows));
    for (Index i = 0; i < rows; ++i) {
        const float* r = logits.data() + i * classes;
        out[size_t(i)] = static_cast<int>(std::max_element(r, r + classes) - r);
    }
    return out;
}

double lossAndGradient(Loss loss, const float* logits, const std::int32_t* labels, Index n,
                       Index k, float* diff, Index* correct) {
    double total = 0;
    Index right = 0;
    const double inv = 1.0 / static_cast<double>(n);
    for (Index i = 0; i < n; ++i) {
        const float* s = logits + i * k;
        const int y = labels[i];
        const Index arg = std::max_element(s, s + k) - s;
        right += (arg == y);
        float* g = diff ? diff + i * k : nullptr;
        if (loss == Loss::SoftmaxCrossEntropy) {
            const double m = s[arg];
            double z = 0;
            for (Index j = 0; j < k; ++j) z += std::exp(double(s[j]) - m);
            const double logZ = m + std::log(z);
            total += logZ - s[y];
            if (g)
                for (Index j = 0; j < k; ++j)
                    g[j] = static_cast<float>((std::exp(double(s[j]) - logZ) - (j == y)) * inv);
        } else {
            for (Index j = 0; j < k; ++j) {
                const double t = (j == y) ? 1.0 : -1.0;
                const double margin = 1.0 - t * s[j];
                const bool active = margin > 0;
                if (loss == Loss::Hinge) {
                    total += active ? margin : 0.0;
                    if (g) g[j] = static_cast<float>(active ? -t * inv : 0.0);
                } else {
                    total += active ? margin * margin : 0.0;
                    if (g) g[j] = static_cast<float>(active ? -2.0 * t * margin * inv : 0.0);
                }
            }
        }
    }
    if (correct) *correct = right;
    return total * inv;
}

}  // namespace tern::nn
