// Recovering a sparse ternary signal from noisy random measurements (docs/lsq-recovery.md):
//
//   b = A x* + sigma e,   A ~ N(0,1)^{m x n},  x* = a * q*,  q* in {-1,0,1}^n with a given
//   fraction of zeros;   min_x 0.5/m ||Ax - b||^2  s.t.  x in a*{-1,0,1}^n, a >= 0.
//
// Over many random instances, how often each method (ADMM, ADMM without extragradient,
// projected SGD, rounding the least-squares solution) reaches the brute-force optimum (all 3^n
// codes, best scale each), and the mean relative objective gap. Every method's code is scored at
// its best scale (a one-dimensional refit), so the table compares codes.
#include "tern/optim/admm.hpp"
#include "tern/optim/problems/least_squares.hpp"
#include "tern/optim/projected_sgd.hpp"
#include "tern/proj/projection.hpp"

#include <boost/program_options.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <random>

using namespace tern;
using namespace tern::optim;
using problems::LeastSquares;
namespace po = boost::program_options;

namespace {

struct Instance {
    Eigen::MatrixXf A;
    Vector b;
};

Instance makeInstance(Index m, Index n, double zeros, double sigma, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0, 1);
    std::uniform_real_distribution<double> unit(0, 1);
    Instance in{Eigen::MatrixXf(m, n), Vector(m)};
    for (Index i = 0; i < m; ++i)
        for (Index j = 0; j < n; ++j) in.A(i, j) = normal(rng);
    Vector x(n);
    for (Index j = 0; j < n; ++j)
        x[j] = unit(rng) < zeros ? 0.0f : (unit(rng) < 0.5 ? -1.0f : 1.0f);
    in.b = in.A * x;
    for (Index i = 0; i < m; ++i) in.b[i] += static_cast<float>(sigma) * normal(rng);
    return in;
}

Vector codeOf(const Vector& x) {
    return x.unaryExpr([](Scalar v) { return Scalar((v > 0) - (v < 0)); });
}

double refit(const LeastSquares& p, const Vector& x) {
    const Vector q = codeOf(x);
    return p.objective(p.optimalScale(q) * q);
}

struct Options {
    Index m = 12, n = 10, instances = 500, epochs = 4000;
    double zeros = 0.5, sigma = 0.3, lr = 0.1, momentum = 0.5, rho = 1e-2, rhoGrowth = 1.02,
           rhoMax = 3, pgdLr = 0.3;
    Index outerEvery = 10;
    std::uint64_t seed = 1;
};

}  // namespace

int main(int argc, char** argv) try {
    Options o;
    po::options_description desc("lsq_recovery: ternary least-squares recovery benchmark");
    desc.add_options()("help,h", "this help")                                                 //
        ("m", po::value(&o.m)->default_value(o.m), "measurements (rows of A)")                //
        ("n", po::value(&o.n)->default_value(o.n), "signal length (<= 12: brute force)")      //
        ("zeros", po::value(&o.zeros)->default_value(o.zeros), "fraction of zeros in x*")     //
        ("sigma", po::value(&o.sigma)->default_value(o.sigma, "0.3"), "noise standard deviation")    //
        ("instances", po::value(&o.instances)->default_value(o.instances), "random problems")  //
        ("seed", po::value(&o.seed)->default_value(o.seed), "first instance seed")            //
        ("epochs", po::value(&o.epochs)->default_value(o.epochs), "ADMM and PGD epochs (one full-batch step each)")  //
        ("lr", po::value(&o.lr)->default_value(o.lr, "0.1"), "ADMM W-step learning rate")            //
        ("momentum", po::value(&o.momentum)->default_value(o.momentum), "W-step momentum")    //
        ("rho", po::value(&o.rho)->default_value(o.rho), "initial rho")                       //
        ("rho-growth", po::value(&o.rhoGrowth)->default_value(o.rhoGrowth), "rho factor")     //
        ("rho-max", po::value(&o.rhoMax)->default_value(o.rhoMax), "rho clamp")               //
        ("outer-every", po::value(&o.outerEvery)->default_value(o.outerEvery),
         "W-steps per outer iteration")                                                       //
        ("pgd-lr", po::value(&o.pgdLr)->default_value(o.pgdLr, "0.3"), "projected SGD learning rate");
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
        std::cout << desc << '\n';
        return 0;
    }
    po::notify(vm);
    if (o.n < 1 || o.n > 12 || o.m < 1 || o.instances < 1)
        throw std::invalid_argument("need 1 <= n <= 12, m >= 1, instances >= 1");

    const std::shared_ptr<const proj::Projection> projection =
        proj::makeProjection("ternary:exact");
    SgdSettings sgd;
    sgd.momentum = o.momentum;
    sgd.weightDecay = 0;
    TrainSettings train;
    train.maxEpochs = o.epochs;
    train.lr = LrSchedule::constant(o.lr);
    AdmmSettings admm;
    admm.rho = o.rho;
    admm.rhoGrowth = o.rhoGrowth;
    admm.rhoMax = o.rhoMax;
    admm.outerEvery = o.outerEvery;

    const std::vector<std::string> methods = {"admm", "admm-no-eg", "pgd", "round"};
    std::map<std::string, int> optimal;
    std::map<std::string, double> gap, seconds;
    const auto t0 = std::chrono::steady_clock::now();
    for (Index k = 0; k < o.instances; ++k) {
        const Instance in = makeInstance(o.m, o.n, o.zeros, o.sigma, o.seed + std::uint64_t(k));
        LeastSquares p(in.A, in.b);
        const double best = problems::bruteForce(p, {-1, 0, 1}, true).objective;
        const Vector xls = p.solve();
        for (const std::string& method : methods) {
            const auto start = std::chrono::steady_clock::now();
            p.x().value = xls;  // every method starts from the least-squares solution
            if (method == "admm" || method == "admm-no-eg") {
                AdmmSettings a = admm;
                a.extragradient = method == "admm";
                Admm(projection, Granularity::PerTensor, a, sgd, train).optimize(p);
            } else if (method == "pgd") {
                TrainSettings t = train;
                t.lr = LrSchedule::constant(o.pgdLr);
                SgdSettings plain = sgd;
                plain.momentum = 0;
                ProjectedSgd(projection, Granularity::PerTensor, plain, t).optimize(p);
            } else {
                projection->project(xls, p.x().value);
            }
            seconds[method] +=
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            const double f = refit(p, p.x().value);
            optimal[method] += f <= best * (1 + 1e-5) + 1e-9;
            gap[method] += (f - best) / best;
        }
    }
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("m=%ld n=%ld zeros=%.2f sigma=%.2f instances=%ld seed=%lu  (%.1f s)\n",
                static_cast<long>(o.m), static_cast<long>(o.n), o.zeros, o.sigma,
                static_cast<long>(o.instances), static_cast<unsigned long>(o.seed), total);
    std::printf("| method | reaches optimum | mean relative gap | ms / instance |\n");
    std::printf("|---|---|---|---|\n");
    for (const std::string& method : methods)
        std::printf("| %s | %d / %ld (%.1f%%) | %.4f | %.2f |\n", method.c_str(), optimal[method],
                    static_cast<long>(o.instances),
                    100.0 * optimal[method] / static_cast<double>(o.instances),
                    gap[method] / static_cast<double>(o.instances),
                    1e3 * seconds[method] / static_cast<double>(o.instances));
    return 0;
} catch (const std::exception& e) {
    std::cerr << "lsq_recovery: " << e.what() << '\n';
    return 1;
}
