// tern-lsq: constrained least squares from an HDF5 file.
//
//   min_x f(x) = 0.5/m ||A x - b||^2   s.t.  x in C = a*{-1,0,1}^n | a*{-1,1}^n | a*{0,±1,..,±2^(N-1)}^n
//
// Reads datasets A (m x n) and b (m) (float32 or float64) from --in, solves with ADMM, projected
// SGD or by rounding the least-squares solution, and writes x, scale and objective to --out
// (written to --out.tmp, then renamed). Exit codes: 0 ok, 1 usage or input error, 2 anything else.
//
// A mixed-integer heuristic after Takapoui, Moehle, Boyd and Bemporad (2017): the method runs
// from --starts points (start 0: the least-squares solution; start k: x_ls plus Gaussian noise
// of --spread times its rms), each result (and each projected starting point) is polished by
// single-coordinate moves (problems::polish; --no-polish turns it off), and the best objective
// wins.
#include "common/app.hpp"
#include "tern/core/error.hpp"
#include "tern/io/hdf5_file.hpp"
#include "tern/optim/methods.hpp"
#include "tern/optim/problems/least_squares.hpp"
#include "tern/optim/problems/polish.hpp"
#include "tern/proj/projection.hpp"

#include <cmath>
#include <filesystem>
#include <iostream>
#include <limits>
#include <stdexcept>
#include <string>

using namespace tern;
namespace po = boost::program_options;
namespace app = tern::app;

namespace {

/// A usage or input problem: exit code 1 (runApp maps std::invalid_argument to 1).
struct InputError : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

struct Problem {
    Eigen::MatrixXf A;
    Vector b;
};

/// Reads a float32/float64 dataset (b may also be m x 1) into doubles, with its dims.
std::vector<double> readFloats(const io::Hdf5Reader& file, const std::string& name,
                               std::vector<Index>& dims) {
    const std::string& path = file.path();
    if (!file.has(name)) throw InputError("'" + path + "' has no dataset '" + name + "'");
    const io::DatasetInfo info = file.info(name);
    if (info.valueClass != io::DatasetInfo::Class::Float)
        throw InputError("dataset '" + name + "' in '" + path +
                         "' is not floating point (float32 or float64 expected)");
    dims = info.shape.dims;
    return file.readDoubles(name);
}

Problem readProblem(const std::string& path) {
    if (!std::filesystem::exists(path)) throw InputError("input file '" + path + "' does not exist");
    std::vector<Index> adims, bdims;
    std::vector<double> a, b;
    try {
        const io::Hdf5Reader file(path);
        a = readFloats(file, "A", adims);
        b = readFloats(file, "b", bdims);
    } catch (const InputError&) {
        throw;
    } catch (const std::exception& e) {  // cannot open or read: an input problem
        throw InputError(e.what());
    }
    if (adims.size() != 2)
        throw InputError("dataset 'A' in '" + path + "' must be 2-D (m x n), got rank " +
                         std::to_string(adims.size()));
    const Index m = adims[0], n = adims[1];
    if (m == 0 || n == 0)
        throw InputError("dataset 'A' in '" + path + "' is empty (" + std::to_string(m) + " x " +
                         std::to_string(n) + ")");
    const bool column = bdims.size() == 2 && bdims[1] == 1;
    if (bdims.size() != 1 && !column)
        throw InputError("dataset 'b' in '" + path + "' must be 1-D (m), got rank " +
                         std::to_string(bdims.size()));
    if (bdims[0] != m)
        throw InputError("shape mismatch in '" + path + "': b has " + std::to_string(bdims[0]) +
                         " entries but A has " + std::to_string(m) + " rows");
    Problem p{Eigen::MatrixXf(m, n), Vector(m)};
    for (Index i = 0; i < m; ++i) {
        for (Index j = 0; j < n; ++j) p.A(i, j) = static_cast<float>(a[size_t(i * n + j)]);
        p.b[i] = static_cast<float>(b[size_t(i)]);
    }
    if (!p.A.allFinite() || !p.b.allFinite())
        throw InputError("'" + path + "' has a non-finite entry in A or b");
    return p;
}

/// One start's result: x = scale * code on C and f(x).
struct Candidate {
    Vector x;
    double scale = 0, objective = 0;
};

void writeResult(const std::string& out, const Candidate& best, const std::string& method,
                 const std::string& set, long start, long starts, bool polish) {
    const Vector& x = best.x;
    io::Hdf5Writer file(out);  // written to out.tmp, renamed onto out by close()
    file.writeFloats("x", x, Shape{x.size()});
    file.writeDouble("scale", best.scale);
    file.writeDouble("objective", best.objective);
    file.attr("method", method);
    file.attr("set", set);
    file.attr("start", std::to_string(start));  // the winning start (0: least squares)
    file.attr("starts", std::to_string(starts));
    file.attr("polish", polish ? "on" : "off");
    file.close();
}

struct Options {
    std::string in, out, set = "ternary", scale = "free", method = "admm";
    int bits = 3;
    double rho = -1, rhoGrowth = 1.05, lr = -1, momentum = 0.5;
    long epochs = 3000, outerEvery = 10;
    long starts = 8;    ///< admm's default; round and pgd default to 1 (see --starts)
    double spread = 4;  ///< random starts: x_ls + spread * rms(x_ls) * N(0, I)
    std::uint64_t seed = 1;
    bool verbose = false, noPolish = false;
};

int run(int argc, char** argv) {
    Options o;
    po::options_description io("Input/output");
    io.add_options()("help,h", "print this help")                                          //
        ("in", po::value(&o.in)->required(), "HDF5 file with datasets A (m x n) and b (m)")  //
        ("out", po::value(&o.out)->required(), "HDF5 file to write: x, scale, objective")    //
        ("verbose,v", po::bool_switch(&o.verbose), "print progress to stderr");
    po::options_description set("Constraint set");
    set.add_options()("set", po::value(&o.set)->default_value(o.set), "ternary | binary | pow2")  //
        ("scale", po::value(&o.scale)->default_value(o.scale),
         "free (x = a*code, a >= 0 fitted) | one (a = 1)")  //
        ("bits", po::value(&o.bits)->default_value(o.bits),
         "pow2 levels {0, +-1, ..., +-2^(bits-1)}");
    po::options_description method("Method");
    method.add_options()("method", po::value(&o.method)->default_value(o.method),
                         "admm | pgd (tern-train's names and aliases) | round (project the "
                         "least-squares solution)")  //
        ("epochs", po::value(&o.epochs)->default_value(o.epochs), "W-steps (full batch)")  //
        ("lr", po::value(&o.lr), "step size (default: 0.35/L for admm, 1/L for pgd; "
                                 "L = largest eigenvalue of A^T A / m)")  //
        ("momentum", app::withDefault(&o.momentum), "admm W-step momentum")  //
        ("rho", po::value(&o.rho), "admm initial rho (default 0.003 L; rhoMax = L)")  //
        ("rho-growth", app::withDefault(&o.rhoGrowth), "admm rho factor per outer iteration")  //
        ("outer-every", po::value(&o.outerEvery)->default_value(o.outerEvery),
         "admm W-steps per outer iteration")  //
        ("starts", po::value(&o.starts),
         "starting points, best result kept (default: 8 for admm, 1 for pgd and round); "
         "start 0 is the least-squares solution")  //
        ("spread", app::withDefault(&o.spread),
         "starts k >= 1: x_ls + spread * rms(x_ls) * N(0, I), drawn from --seed")  //
        ("no-polish", po::bool_switch(&o.noPolish),
         "skip the polishing pass (single-coordinate moves) after each start")  //
        ("seed", po::value(&o.seed)->default_value(o.seed), "random seed");
    po::options_description all("tern-lsq: min 0.5/m ||Ax - b||^2 subject to x in a level set");
    all.add(io).add(set).add(method);

    po::variables_map vm;
    try {
        po::store(po::parse_command_line(argc, argv, all), vm);
        if (vm.count("help")) {
            std::cout << all << '\n';
            return 0;
        }
        po::notify(vm);
    } catch (const po::error& e) {
        throw InputError(std::string(e.what()) + " (see --help)");
    }
    if (o.set != "ternary" && o.set != "binary" && o.set != "pow2")
        throw InputError("--set must be ternary, binary or pow2 (got '" + o.set + "')");
    if (o.scale != "free" && o.scale != "one")
        throw InputError("--scale must be free or one (got '" + o.scale + "')");
    // admm and pgd (and their aliases) resolve in the method registry; round is no optimizer
    std::string name = o.method;
    if (name != "round") {
        try {
            name = optim::findMethod(o.method).name;
        } catch (const std::invalid_argument&) {
            name.clear();
        }
    }
    if (name != "admm" && name != "pgd" && name != "round")
        throw InputError("--method must be admm, pgd or round (got '" + o.method + "')");
    if (o.set == "pow2" && (o.bits < 1 || o.bits > 16))
        throw InputError("--bits must be in [1, 16] (got " + std::to_string(o.bits) + ")");
    if (o.epochs < 1) throw InputError("--epochs must be >= 1 (got " + std::to_string(o.epochs) + ")");
    if (vm.count("lr") && !(o.lr > 0)) throw InputError("--lr must be > 0");
    if (vm.count("rho") && !(o.rho > 0)) throw InputError("--rho must be > 0");
    if (vm.count("starts") && (o.starts < 1 || o.starts > 10000))
        throw InputError("--starts must be in [1, 10000] (got " + std::to_string(o.starts) + ")");
    if (!(std::isfinite(o.spread) && o.spread >= 0))
        throw InputError("--spread must be finite and >= 0");

    const Problem data = readProblem(o.in);
    optim::problems::LeastSquares p(data.A, data.b);
    const std::string spec = o.set == "ternary" ? "ternary:exact,scale=" + o.scale
                             : o.set == "binary" ? "binary:scaled,scale=" + o.scale
                                                 : "pow2,bits=" + std::to_string(o.bits) +
                                                       ",scale=" + o.scale;
    const std::shared_ptr<const proj::Projection> projection = proj::makeProjection(spec);
    const double L = p.lipschitz(o.seed);
    // float32 holds the problem: A^T A / m must be finite and nonzero for a step size 1/L
    if (!std::isfinite(L) || !(L > 0))
        throw InputError("'" + o.in + "': A is badly scaled (L = largest eigenvalue of A^T A / m = " +
                         formatShortest(L) + " in float32); rescale A and b");
    const bool freeScale = o.scale == "free";
    std::vector<Scalar> levels;  // the codes of C
    if (o.set == "ternary") levels = {-1, 0, 1};
    else if (o.set == "binary") levels = {-1, 1};
    else {
        levels = {0};
        for (int k = 0; k < o.bits; ++k) {
            levels.push_back(std::ldexp(Scalar(1), k));
            levels.push_back(-std::ldexp(Scalar(1), k));
        }
    }
    const long starts = vm.count("starts") ? o.starts : name == "admm" ? 8 : 1;

    const Vector xls = p.solve();
    optim::TrainSettings train;
    train.maxEpochs = o.epochs;
    train.seed = o.seed;
    optim::MethodConfig m;  // the registry's admm or pgd, with this problem's defaults
    m.method = name;
    m.projection = spec;
    optim::SgdSettings sgd;
    sgd.weightDecay = 0;
    std::string status = "done";
    if (name == "admm") {
        train.lr = optim::LrSchedule::constant(vm.count("lr") ? o.lr : 0.35 / L);
        sgd.momentum = o.momentum;
        m.admm.rho = vm.count("rho") ? o.rho : 0.003 * L;
        m.admm.rhoMax = std::max(m.admm.rho, L);
        m.admm.rhoGrowth = o.rhoGrowth;
        m.admm.outerEvery = o.outerEvery;
    } else if (name == "pgd") {
        train.lr = optim::LrSchedule::constant(vm.count("lr") ? o.lr : 1.0 / L);
        sgd.momentum = 0;
    }
    m.inner = sgd;

    // Every start runs the method and is polished; the lowest objective wins (ties: the first).
    Candidate best;
    best.objective = std::numeric_limits<double>::infinity();
    long winner = 0;
    for (long k = 0; k < starts; ++k) {
        const Vector x0 = optim::problems::startingPoint(xls, k, o.seed, o.spread);
        p.x().value = x0;
        if (name == "round") projection->project(x0, p.x().value);
        else status = optim::statusName(optim::makeOptimizer(m, train)->optimize(p).status);
        if (status == "diverged") {
            if (vm.count("lr"))
                std::cerr << "tern-lsq: " << name << " diverged with --lr " << o.lr
                          << "; try a smaller --lr (L = " << L << ": stable below about "
                          << 1.9 / L << ")\n";
            else
                std::cerr << "tern-lsq: " << name << " diverged with its default step (L = " << L
                          << "); the data are likely badly scaled (entries of A or b far from 1, "
                             "or float32 overflow): rescale A and b\n";
            return app::kExitFailed;
        }
        // x = a q on C; with a free scale, refit a for f given the code q (can only lower f).
        Candidate c;
        c.x = p.x().value;
        const std::vector<proj::GroupResult> g = projection->project(c.x, c.x);
        c.scale = g[0].scale;
        if (freeScale && c.scale > 0) {
            const Vector q = c.x / static_cast<Scalar>(c.scale);
            const Scalar a = p.optimalScale(q);
            if (p.objective(a * q) < p.objective(c.x)) {
                c.x = a * q;
                c.scale = a;
            }
        }
        c.objective = p.objective(c.x);
        const double before = c.objective;
        if (!o.noPolish) {
            // polish: single-coordinate moves of the code, the scale refitted (free) or kept;
            // the projected starting point is polished too (nearly free, and a different basin)
            std::vector<Candidate> seeds = {c};
            if (name != "round") {
                Candidate s;
                s.x = x0;
                s.scale = projection->project(x0, s.x)[0].scale;
                seeds.push_back(s);
            }
            for (const Candidate& from : seeds) {
                const Vector q0 = optim::problems::nearestCode(
                    from.x, static_cast<Scalar>(from.scale), levels);
                const optim::problems::PolishResult r = optim::problems::polish(
                    p, levels, freeScale, q0, freeScale ? Scalar(1) : static_cast<Scalar>(c.scale));
                if (r.objective < c.objective) {
                    c.x = r.scale * r.code;
                    c.scale = r.scale;
                    c.objective = r.objective;
                }
            }
        }
        if (o.verbose)
            std::cerr << "tern-lsq: start " << k << ": " << name << " (" << status
                      << ") objective " << before << (o.noPolish ? "" : ", polished ")
                      << (o.noPolish ? "" : std::to_string(c.objective)) << '\n';
        if (c.objective < best.objective) {
            best = c;
            winner = k;
        }
    }
    if (o.verbose)
        std::cerr << "tern-lsq: " << name << " (" << status << ") on " << spec << ": objective "
                  << best.objective << ", scale " << best.scale << " (start " << winner << " of "
                  << starts << "), least-squares objective " << p.objective(xls) << '\n';
    writeResult(o.out, best, name, spec, winner, starts, !o.noPolish);
    return app::kExitOk;
}

}  // namespace

int main(int argc, char** argv) { return app::runApp("tern-lsq", argc, argv, run); }
