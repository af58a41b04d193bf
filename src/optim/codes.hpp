#pragma once
// Private helper of src/optim: sign codes of a quantized block and the per-epoch flip ratio and
// sparsity that STE, RPR/incremental and projected SGD report.
#include "tern/core/types.hpp"
#include "tern/optim/optimizer.hpp"

#include <cstdint>
#include <vector>

namespace tern::optim::detail {

/// sign(z_i) in {-1, 0, 1} (a scale-free code, so a rescaled group is no flip).
inline std::vector<std::int64_t> signCodes(const Vector& z) {
    std::vector<std::int64_t> c(static_cast<size_t>(z.size()));
    for (Index i = 0; i < z.size(); ++i) c[size_t(i)] = (z[i] > 0) - (z[i] < 0);
    return c;
}

/// Counts codes that changed since `before` (if it has the same size) and zero codes.
class CodeStats {
public:
    void add(const std::vector<std::int64_t>& now, const std::vector<std::int64_t>& before) {
        if (before.size() == now.size())
            for (size_t i = 0; i < now.size(); ++i) flips_ += now[i] != before[i];
        for (std::int64_t c : now) zeros_ += c == 0;
        n_ += static_cast<Index>(now.size());
    }
    /// Writes flipRatio and sparsity (nothing when no code was counted).
    void fill(EpochStats& stats) const {
        if (n_ == 0) return;
        stats.flipRatio = static_cast<double>(flips_) / static_cast<double>(n_);
        stats.sparsity = static_cast<double>(zeros_) / static_cast<double>(n_);
    }

private:
    Index n_ = 0, flips_ = 0, zeros_ = 0;
};

}  // namespace tern::optim::detail
