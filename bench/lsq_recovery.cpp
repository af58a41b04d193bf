// Recovering a sparse ternary signal from noisy random measurements (docs/lsq-recovery.md):
//
//   b = A x* + sigma e,   A ~ N(0,1)^{m x n},  x* = q*,  q* in {-1,0,1}^n with a given
//   fraction of zeros;   min_x 0.5/m ||Ax - b||^2  s.t.  x in a*{-1,0,1}^n, a >= 0.
//
// Over many random instances, how often each method reaches the brute-force optimum (all 3^n
// codes, best scale each): rounding the least-squares solution, projected SGD and ADMM with
// tern-lsq's default settings, each with and without the polishing pass (problems::polish),
// and multi-start ADMM + polish (tern-lsq --starts K) for K = 1, 2, 4, 8, 16. Every result's
// code is scored at its best scale (a one-dimensional refit), so the table compares codes.
#include "tern/optim/methods.hpp"
#include "tern/optim/problems/least_squares.hpp"
#include "tern/optim/problems/polish.hpp"
#include "tern/proj/projection.hpp"

#include <boost/program_options.hpp>

#include <algorithm>
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

const std::vector<Scalar> kLevels = {-1, 0, 1};

/// A method's result: f at the best scale of its code, and the seconds it took.
struct Outcome {
    double f = 0, seconds = 0;
};

double since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// f at the best scale of x's code.
double refit(const LeastSquares& p, const Vector& x) {
    const Vector q = x.unaryExpr([](Scalar v) { return Scalar((v > 0) - (v < 0)); });
    return p.objective(p.optimalScale(q) * q);
}

/// Polishes the ternary code of x (free scale); returns f of the polished code.
double polished(const LeastSquares& p, const proj::Projection& projection, const Vector& x) {
    Vector z(x.size());
    const Scalar a = projection.project(x, z)[0].scale;
    return problems::polish(p, kLevels, true, problems::nearestCode(z, a, kLevels)).objective;
}

struct Options {
    Index m = 12, n = 10, instances = 500, epochs = 3000, outerEvery = 10, maxStarts = 16;
    double zeros = 0.5, sigma = 0.3, spread = 4, rhoGrowth = 1.05, momentum = 0.5;
    std::uint64_t seed = 1, startSeed = 1;
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t k = v.size() / 2;
    return v.size() % 2 ? v[k] : 0.5 * (v[k - 1] + v[k]);
}

}  // namespace

int main(int argc, char** argv) try {
    Options o;
    po::options_description desc("lsq_recovery: ternary least-squares recovery benchmark");
    desc.add_options()("help,h", "this help")                                                 //
        ("m", po::value(&o.m)->default_value(o.m), "measurements (rows of A)")                //
        ("n", po::value(&o.n)->default_value(o.n), "signal length (<= 12: brute force)")      //
        ("zeros", po::value(&o.zeros)->default_value(o.zeros), "fraction of zeros in x*")     //
        ("sigma", po::value(&o.sigma)->default_value(o.sigma, "0.3"), "noise std deviation")  //
        ("instances", po::value(&o.instances)->default_value(o.instances), "random problems")  //
        ("seed", po::value(&o.seed)->default_value(o.seed), "first instance seed")            //
        ("epochs", po::value(&o.epochs)->default_value(o.epochs),
         "ADMM and PGD W-steps (tern-lsq --epochs)")                                          //
        ("outer-every", po::value(&o.outerEvery)->default_value(o.outerEvery),
         "ADMM W-steps per outer iteration (tern-lsq --outer-every)")                         //
        ("rho-growth", po::value(&o.rhoGrowth)->default_value(o.rhoGrowth, "1.05"),
         "ADMM rho factor (tern-lsq --rho-growth)")                                           //
        ("max-starts", po::value(&o.maxStarts)->default_value(o.maxStarts),
         "largest K of multi-start ADMM (rows for K = 1, 2, 4, ... up to it)")                //
        ("spread", po::value(&o.spread)->default_value(o.spread, "4"),
         "random starts: x_ls + spread * rms(x_ls) * N(0, I) (tern-lsq --spread)")            //
        ("start-seed", po::value(&o.startSeed)->default_value(o.startSeed),
         "seed of the random starts (tern-lsq --seed)");
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
        std::cout << desc << '\n';
        return 0;
    }
    po::notify(vm);
    if (o.n < 1 || o.n > 12 || o.m < 1 || o.instances < 1 || o.maxStarts < 1)
        throw std::invalid_argument("need 1 <= n <= 12, m >= 1, instances >= 1, max-starts >= 1");

    const std::string spec = "ternary:exact,scale=free";
    const std::shared_ptr<const proj::Projection> projection = proj::makeProjection(spec);
    std::vector<Index> ks;
    for (Index k = 1; k <= o.maxStarts; k *= 2) ks.push_back(k);
    std::vector<std::string> methods = {"round",       "round+polish", "pgd",
                                        "pgd+polish",  "admm",         "admm+polish"};
    for (const Index k : ks) methods.push_back("admm+polish x" + std::to_string(k));
    for (const Index k : ks) methods.push_back("polish x" + std::to_string(k));
    for (const Index k : ks) methods.push_back("tern-lsq x" + std::to_string(k));
    std::map<std::string, int> optimal;
    std::map<std::string, std::vector<double>> times;

    const auto t0 = std::chrono::steady_clock::now();
    for (Index inst = 0; inst < o.instances; ++inst) {
        const Instance in =
            makeInstance(o.m, o.n, o.zeros, o.sigma, o.seed + std::uint64_t(inst));
        LeastSquares p(in.A, in.b);
        const double best = problems::bruteForce(p, kLevels, true).objective;
        std::map<std::string, Outcome> out;
        // tern-lsq's defaults (apps/tern_lsq.cpp), from L = lambda_max(A^T A / m)
        const double L = p.lipschitz(o.startSeed);
        TrainSettings train;
        train.maxEpochs = o.epochs;
        train.seed = o.startSeed;
        MethodConfig admm;
        admm.method = "admm";
        admm.projection = spec;
        SgdSettings sgd;
        sgd.weightDecay = 0;
        sgd.momentum = o.momentum;
        admm.inner = sgd;
        admm.admm.rho = 0.003 * L;
        admm.admm.rhoMax = std::max(admm.admm.rho, L);
        admm.admm.rhoGrowth = o.rhoGrowth;
        admm.admm.outerEvery = o.outerEvery;
        TrainSettings admmTrain = train;
        admmTrain.lr = LrSchedule::constant(0.35 / L);
        MethodConfig pgd = admm;
        pgd.method = "pgd";
        sgd.momentum = 0;
        pgd.inner = sgd;
        TrainSettings pgdTrain = train;
        pgdTrain.lr = LrSchedule::constant(1.0 / L);

        auto start = std::chrono::steady_clock::now();
        const Vector xls = p.solve();
        Vector z(o.n);
        projection->project(xls, z);
        out["round"] = {refit(p, z), since(start)};
        out["round+polish"] = {polished(p, *projection, z), since(start)};

        start = std::chrono::steady_clock::now();
        p.x().value = xls;
        makeOptimizer(pgd, pgdTrain)->optimize(p);
        out["pgd"] = {refit(p, p.x().value), since(start)};
        out["pgd+polish"] = {polished(p, *projection, p.x().value), since(start)};

        // Multi-start: start k from problems::startingPoint (k = 0: x_ls), ADMM, polish; the
        // best of the first K. "polish xK" polishes the projected starts without ADMM;
        // "tern-lsq xK" keeps the better of the two per start, as tern-lsq does.
        double bestAdmm = std::numeric_limits<double>::infinity(), admmSeconds = 0;
        double bestPolish = bestAdmm, polishSeconds = 0;
        for (Index k = 0; k < ks.back(); ++k) {
            const Vector x0 = problems::startingPoint(xls, k, o.startSeed, o.spread);
            start = std::chrono::steady_clock::now();
            bestPolish = std::min(bestPolish, polished(p, *projection, x0));
            polishSeconds += since(start);

            start = std::chrono::steady_clock::now();
            p.x().value = x0;
            makeOptimizer(admm, admmTrain)->optimize(p);
            const double plain = since(start);
            const double f = polished(p, *projection, p.x().value);
            if (k == 0) {
                out["admm"] = {refit(p, p.x().value), plain};
                out["admm+polish"] = {f, since(start)};
            }
            bestAdmm = std::min(bestAdmm, f);
            admmSeconds += since(start);
            if (std::find(ks.begin(), ks.end(), k + 1) != ks.end()) {
                out["admm+polish x" + std::to_string(k + 1)] = {bestAdmm, admmSeconds};
                out["polish x" + std::to_string(k + 1)] = {bestPolish, polishSeconds};
                out["tern-lsq x" + std::to_string(k + 1)] = {std::min(bestAdmm, bestPolish),
                                                             admmSeconds + polishSeconds};
            }
        }
        for (const auto& [method, r] : out) {
            optimal[method] += r.f <= best * (1 + 1e-6) + 1e-12;
            times[method].push_back(r.seconds);
        }
    }
    std::printf("m=%ld n=%ld zeros=%.2f sigma=%.2f instances=%ld seed=%lu spread=%.2f  (%.1f s)\n",
                static_cast<long>(o.m), static_cast<long>(o.n), o.zeros, o.sigma,
                static_cast<long>(o.instances), static_cast<unsigned long>(o.seed), o.spread,
                since(t0));
    std::printf("| method | reaches optimum | median ms / instance |\n");
    std::printf("|---|---|---|\n");
    for (const std::string& method : methods)
        std::printf("| %s | %d / %ld (%.1f%%) | %.3f |\n", method.c_str(), optimal[method],
                    static_cast<long>(o.instances),
                    100.0 * optimal[method] / static_cast<double>(o.instances),
                    1e3 * median(times[method]));
    return 0;
} catch (const std::exception& e) {
    std::cerr << "lsq_recovery: " << e.what() << '\n';
    return 1;
}
