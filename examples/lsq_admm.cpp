// docs/optim.md's example: ternary least squares with ADMM, then the same with your own loop.
#include "tern/optim/admm.hpp"
#include "tern/optim/callbacks.hpp"
#include "tern/optim/problems/least_squares.hpp"
#include "tern/proj/projection.hpp"

#include <iostream>
#include <random>

int main() {
    using namespace tern;
    // b = A x* + noise with x* ternary
    std::mt19937_64 rng(1);
    std::normal_distribution<float> normal(0, 1);
    Eigen::MatrixXf A(40, 8);
    for (Index i = 0; i < A.rows(); ++i)
        for (Index j = 0; j < A.cols(); ++j) A(i, j) = normal(rng);
    Vector xStar(8);
    xStar << 1, 0, -1, 1, 0, 0, -1, 1;
    Vector b = A * (0.5f * xStar);
    for (Index i = 0; i < b.size(); ++i) b[i] += 0.05f * normal(rng);

    // f(x) = 0.5/m ||Ax - b||^2, one constrained block "x"; start from the least-squares solution
    optim::problems::LeastSquares f(A, b);
    f.x().value = f.solve();

    // C = a*{-1,0,1}^n with the best a, per tensor
    std::shared_ptr<const proj::Projection> C = proj::makeProjection("ternary:exact");

    optim::AdmmSettings admm;  // scaled-form ADMM, extragradient W-step
    admm.rho = 1e-2;
    admm.rhoGrowth = 1.05;
    admm.rhoMax = 3;
    admm.outerEvery = 10;      // 10 W-steps (epochs of one full batch) per G/U-step
    optim::SgdSettings sgd;
    sgd.momentum = 0.5;
    sgd.weightDecay = 0;
    optim::TrainSettings train;
    train.maxEpochs = 1500;
    train.lr = optim::LrSchedule::constant(0.1);

    optim::Admm opt(C, Granularity::PerTensor, admm, sgd, train);
    const optim::TrainReport report =
        opt.optimize(f, {std::make_shared<optim::PrintProgress>(std::cout, 500)});

    // On return x = G lies on C; W stays inside the optimizer (opt.restore(f) brings it back).
    std::cout << "status " << optim::statusName(report.status) << ", f(x) = "
              << f.objective(f.x().value) << ", rho = " << opt.rho() << "\n"
              << "x  = " << f.x().value.transpose() << "\n"
              << "x* = " << (0.5f * xStar).transpose() << "\n";
    return report.status == optim::Status::Diverged ? 1 : 0;
}
