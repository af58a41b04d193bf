// Knowledge distillation's soft cross-entropy (include/tern/optim/distill.hpp).
#include "tern/optim/distill.hpp"

#include "tern/core/error.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace tern::optim {

namespace {

/// log softmax(x / T) of one row, in double.
void logSoftmax(const float* x, Index k, double T, std::vector<double>& out) {
    out.resize(static_cast<size_t>(k));
    double m = -INFINITY;
    for (Index j = 0; j < k; ++j) m = std::max(m, double(x[j]) / T);
    double z = 0;
    for (Index j = 0; j < k; ++j) z += std::exp(double(x[j]) / T - m);
    const double logZ = m + std::log(z);
    for (Index j = 0; j < k; ++j) out[size_t(j)] = double(x[j]) / T - logZ;
}

}  // namespace

double softCrossEntropy(const float* teacher, const float* student, Index n, Index k,
                        double temperature, double weight, float* dStudent, float* dTeacher) {
    const char* where = "softCrossEntropy()";
    if (n < 1 || k < 1) fail(where, TERN_MSG("needs n, k >= 1 (got n = " << n << ", k = " << k << ")"));
    requirePositive(temperature, where, "temperature");
    const double T = temperature, inv = 1.0 / static_cast<double>(n);
    std::vector<double> lp, lq;
    double total = 0;
    for (Index i = 0; i < n; ++i) {
        logSoftmax(teacher + i * k, k, T, lp);
        logSoftmax(student + i * k, k, T, lq);
        double row = 0;  // sum_j p_j log q_j
        for (Index j = 0; j < k; ++j) row += std::exp(lp[size_t(j)]) * lq[size_t(j)];
        total -= row;
        if (dStudent)
            for (Index j = 0; j < k; ++j)
                dStudent[i * k + j] += static_cast<float>(
                    weight * T * inv * (std::exp(lq[size_t(j)]) - std::exp(lp[size_t(j)])));
        if (dTeacher)
            for (Index j = 0; j < k; ++j)
                dTeacher[i * k + j] += static_cast<float>(
                    -weight * T * inv * std::exp(lp[size_t(j)]) * (lq[size_t(j)] - row));
    }
    return T * T * inv * total;
}

}  // namespace tern::optim
