#pragma once
/// \file Knowledge distillation's loss (Hinton, Vinyals & Dean 2015; GTC, seed 004, eq. 11): the
/// softmax cross-entropy between a teacher's and a student's predictions, with its gradient
/// into both. Plain arithmetic on (rows x classes) logits, shared by nn::Network's frozen
/// teacher and Ste's joint teacher (GTC).
#include "tern/core/types.hpp"

namespace tern::optim {

/// D = T^2 / n * sum_i sum_k -p_ik log q_ik, with p_i = softmax(t_i / T) (teacher),
/// q_i = softmax(s_i / T) (student), over n rows of k logits (row-major). The factor T^2 keeps
/// the gradient's size independent of T (Hinton et al.); at T = 1 it is the paper's D.
///
///   dD/ds_ik = T / n * (q_ik - p_ik)
///   dD/dt_ik = -T / n * p_ik * (log q_ik - sum_j p_ij log q_ij)
///
/// Adds `weight` times these into dStudent and dTeacher (either may be nullptr), and returns D
/// (without the weight). Accumulates in double. Throws std::invalid_argument for n < 1, k < 1 or
/// a temperature that is not > 0.
double softCrossEntropy(const float* teacher, const float* student, Index n, Index k,
                        double temperature, double weight, float* dStudent, float* dTeacher);

}  // namespace tern::optim
