// tern-lsq end to end: generate an HDF5 problem, run the app, read x back; and its error cases
// (missing dataset, shape mismatch, bad flags, missing or malformed file) exit 1 with one line.
#define BOOST_TEST_MODULE optim_lsq_app
#include <boost/test/unit_test.hpp>

#include "testing/helpers.hpp"
#include "tern/optim/problems/least_squares.hpp"

#include <H5Cpp.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <sys/wait.h>

#ifndef TERN_LSQ_EXE
#error "TERN_LSQ_EXE must name the tern-lsq executable"
#endif

using namespace tern;
namespace fs = std::filesystem;

namespace {

struct Result {
    int code = -1;
    std::string err;
};

struct Dir {
    std::string path = testing::tempDir("lsq-app");
    ~Dir() { fs::remove_all(path); }
    std::string operator/(const std::string& name) const { return path + "/" + name; }
};

Result runLsq(const std::string& args, const std::string& dir) {
    const std::string errFile = dir + "/stderr.txt";
    const std::string cmd = std::string(TERN_LSQ_EXE) + " " + args + " > /dev/null 2> " + errFile;
    const int status = std::system(cmd.c_str());
    Result r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::ifstream in(errFile);
    std::stringstream s;
    s << in.rdbuf();
    r.err = s.str();
    return r;
}

/// A ~ N(0,1) (m x n); b = A x* + noise with x* = 0.8 * code.
void makeProblem(Index m, Index n, std::uint64_t seed, float noise, Eigen::MatrixXf& A, Vector& b) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0, 1);
    std::uniform_int_distribution<int> digit(-1, 1);
    A.resize(m, n);
    for (Index i = 0; i < m; ++i)
        for (Index j = 0; j < n; ++j) A(i, j) = normal(rng);
    Vector x(n);
    for (Index j = 0; j < n; ++j) x[j] = 0.8f * static_cast<float>(digit(rng));
    b = A * x;
    for (Index i = 0; i < m; ++i) b[i] += noise * normal(rng);
}

/// Writes A (row-major m x n) and b with the given dims; double precision if `f64`.
void writeProblem(const std::string& path, const Eigen::MatrixXf& A, const Vector& b, bool f64,
                  bool withB = true, bool withA = true) {
    H5::H5File file(path, H5F_ACC_TRUNC);
    const auto& type = f64 ? H5::PredType::NATIVE_DOUBLE : H5::PredType::NATIVE_FLOAT;
    if (withA) {
        const hsize_t dims[2] = {hsize_t(A.rows()), hsize_t(A.cols())};
        H5::DataSpace space(2, dims);
        Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> a =
            A.cast<double>();
        file.createDataSet("A", type, space).write(a.data(), H5::PredType::NATIVE_DOUBLE);
    }
    if (withB) {
        const hsize_t n = hsize_t(b.size());
        H5::DataSpace space(1, &n);
        const Eigen::VectorXd bd = b.cast<double>();
        file.createDataSet("b", type, space).write(bd.data(), H5::PredType::NATIVE_DOUBLE);
    }
}

struct Output {
    Vector x;
    double scale = 0, objective = 0;
    std::string start, starts, polish;  ///< attributes: the winning start, how many, on/off
};

std::string readAttr(const H5::H5File& file, const std::string& name) {
    if (!file.attrExists(name)) return "";
    const H5::Attribute a = file.openAttribute(name);
    std::string v;
    a.read(a.getStrType(), v);
    return v;
}

Output readOutput(const std::string& path) {
    H5::H5File file(path, H5F_ACC_RDONLY);
    Output o;
    H5::DataSet xs = file.openDataSet("x");
    hsize_t n = 0;
    xs.getSpace().getSimpleExtentDims(&n);
    o.x.resize(Index(n));
    xs.read(o.x.data(), H5::PredType::NATIVE_FLOAT);
    file.openDataSet("scale").read(&o.scale, H5::PredType::NATIVE_DOUBLE);
    file.openDataSet("objective").read(&o.objective, H5::PredType::NATIVE_DOUBLE);
    o.start = readAttr(file, "start");
    o.starts = readAttr(file, "starts");
    o.polish = readAttr(file, "polish");
    return o;
}

/// Every entry is scale * one of `levels` (relative tolerance).
bool inSet(const Vector& x, double scale, const std::vector<double>& levels) {
    for (Index i = 0; i < x.size(); ++i) {
        bool ok = false;
        for (double l : levels) ok = ok || std::abs(x[i] - scale * l) <= 1e-5 * (1 + scale);
        if (!ok) return false;
    }
    return true;
}

}  // namespace

BOOST_AUTO_TEST_CASE(ternary_admm_lies_in_the_set_and_beats_rounding) {
    H5::Exception::dontPrint();
    Dir dir;
    Eigen::MatrixXf A;
    Vector b;
    makeProblem(10, 8, 2, 0.5f, A, b);  // an instance where rounding misses the optimum
    writeProblem(dir / "p.h5", A, b, false);
    optim::problems::LeastSquares p(A, b);
    const double best = optim::problems::bruteForce(p, {-1, 0, 1}, true).objective;

    Result r = runLsq("--in " + dir / "p.h5" + " --out " + dir / "admm.h5", dir.path);
    BOOST_TEST_REQUIRE(r.code == 0, r.err);
    r = runLsq("--in " + dir / "p.h5" + " --out " + dir / "round.h5" +
                   " --method round --no-polish",
               dir.path);
    BOOST_TEST_REQUIRE(r.code == 0, r.err);
    const Output admm = readOutput(dir / "admm.h5"), round = readOutput(dir / "round.h5");
    BOOST_TEST(!fs::exists(dir / "admm.h5.tmp"));
    BOOST_TEST(admm.x.size() == 8);
    BOOST_TEST(admm.scale > 0);
    BOOST_TEST(inSet(admm.x, admm.scale, {-1, 0, 1}));
    BOOST_TEST(admm.objective == p.objective(admm.x), boost::test_tools::tolerance(1e-9));
    BOOST_TEST(admm.objective < round.objective);
    BOOST_TEST(admm.objective >= best * (1 - 1e-5));
    BOOST_TEST_MESSAGE("objective: admm " << admm.objective << ", round " << round.objective
                                          << ", brute force " << best);
}

BOOST_AUTO_TEST_CASE(binary_and_pow2_sets_float64_input) {
    H5::Exception::dontPrint();
    Dir dir;
    Eigen::MatrixXf A;
    Vector b;
    makeProblem(30, 6, 8, 0.1f, A, b);
    writeProblem(dir / "p.h5", A, b, /*f64=*/true);
    Result r = runLsq("--in " + dir / "p.h5" + " --out " + dir / "bin.h5" + " --set binary",
                      dir.path);
    BOOST_TEST_REQUIRE(r.code == 0, r.err);
    const Output bin = readOutput(dir / "bin.h5");
    BOOST_TEST(inSet(bin.x, bin.scale, {-1, 1}));
    r = runLsq("--in " + dir / "p.h5" + " --out " + dir / "pow2.h5" +
                   " --set pow2 --bits 3 --method pgd",
               dir.path);
    BOOST_TEST_REQUIRE(r.code == 0, r.err);
    const Output pow2 = readOutput(dir / "pow2.h5");
    BOOST_TEST(inSet(pow2.x, pow2.scale, {-4, -2, -1, 0, 1, 2, 4}));
    r = runLsq("--in " + dir / "p.h5" + " --out " + dir / "one.h5" + " --scale one", dir.path);
    BOOST_TEST_REQUIRE(r.code == 0, r.err);
    const Output one = readOutput(dir / "one.h5");
    BOOST_TEST(one.scale == 1.0);
    BOOST_TEST(inSet(one.x, 1.0, {-1, 0, 1}));
}

BOOST_AUTO_TEST_CASE(input_errors_exit_1_with_one_line) {
    H5::Exception::dontPrint();
    Dir dir;
    Eigen::MatrixXf A;
    Vector b;
    makeProblem(10, 4, 9, 0.1f, A, b);
    writeProblem(dir / "noB.h5", A, b, false, /*withB=*/false);
    writeProblem(dir / "noA.h5", A, b, false, true, /*withA=*/false);
    writeProblem(dir / "mismatch.h5", A, b.head(9), false);
    writeProblem(dir / "ok.h5", A, b, false);
    { std::ofstream(dir / "junk.h5") << "not an hdf5 file\n"; }
    const std::string out = " --out " + dir / "x.h5";
    struct Case {
        std::string args, message;
    };
    const std::vector<Case> cases = {
        {"--in " + dir / "noB.h5" + out, "has no dataset 'b'"},
        {"--in " + dir / "noA.h5" + out, "has no dataset 'A'"},
        {"--in " + dir / "mismatch.h5" + out, "b has 9 entries but A has 10 rows"},
        {"--in " + dir / "missing.h5" + out, "does not exist"},
        {"--in " + dir / "junk.h5" + out, "cannot open"},
        {"--in " + dir / "ok.h5" + out + " --set quaternary", "--set must be ternary, binary"},
        {"--in " + dir / "ok.h5" + out + " --method magic", "--method must be admm, pgd or round"},
        {"--in " + dir / "ok.h5" + out + " --scale half", "--scale must be free or one"},
        {"--in " + dir / "ok.h5" + out + " --set pow2 --bits 0", "--bits must be in [1, 16]"},
        {"--in " + dir / "ok.h5" + out + " --epochs abc", "epochs"},
        {"--in " + dir / "ok.h5", "out"},
        {"--in " + dir / "ok.h5" + out + " --frobnicate", "frobnicate"},
        {"--in " + dir / "ok.h5" + out + " --starts 0", "--starts must be in [1, 10000]"},
        {"--in " + dir / "ok.h5" + out + " --starts -2", "--starts must be in [1, 10000]"},
        {"--in " + dir / "ok.h5" + out + " --starts two", "starts"},
        {"--in " + dir / "ok.h5" + out + " --spread -1", "--spread must be finite and >= 0"},
        {"--in " + dir / "ok.h5" + out + " --spread nan", "--spread must be finite and >= 0"},
        {"--in " + dir / "ok.h5" + out + " --no-polish=yes", "no-polish"},
    };
    for (const Case& c : cases) {
        BOOST_TEST_CONTEXT("args: " << c.args) {
            const Result r = runLsq(c.args, dir.path);
            BOOST_TEST(r.code == 1);
            BOOST_TEST(r.err.find(c.message) != std::string::npos, r.err);
            BOOST_TEST(r.err.rfind("tern-lsq: ", 0) == 0u);
            BOOST_TEST(std::count(r.err.begin(), r.err.end(), '\n') == 1);
        }
    }
    BOOST_TEST(!fs::exists(dir / "x.h5"));
    BOOST_TEST(runLsq("--help", dir.path).code == 0);
}

BOOST_AUTO_TEST_CASE(multi_start_and_polish_reach_the_brute_force_optimum) {
    // Fewer measurements than unknowns (m = 8, n = 10), noisy: one ADMM run from the
    // least-squares solution misses the optimum; 8 starts + polishing find it.
    H5::Exception::dontPrint();
    Dir dir;
    Eigen::MatrixXf A;
    Vector b;
    makeProblem(8, 10, 12, 0.3f, A, b);
    writeProblem(dir / "p.h5", A, b, false);
    optim::problems::LeastSquares p(A, b);
    const double best = optim::problems::bruteForce(p, {-1, 0, 1}, true).objective;
    auto solve = [&](const std::string& name, const std::string& flags) {
        const Result r = runLsq("--in " + dir / "p.h5" + " --out " + dir / name + " " + flags,
                                dir.path);
        BOOST_TEST_REQUIRE(r.code == 0, r.err);
        return readOutput(dir / name);
    };
    const Output multi = solve("multi.h5", "");
    const Output again = solve("again.h5", "");
    const Output single = solve("single.h5", "--starts 1 --no-polish");
    const Output polished = solve("polished.h5", "--starts 1");
    const Output round = solve("round.h5", "--method round --no-polish");
    const Output roundPolished = solve("round-polished.h5", "--method round");
    const Output pgd = solve("pgd.h5", "--method pgd --starts 3 --spread 2 --seed 5");
    BOOST_TEST_MESSAGE("objective: brute force " << best << ", admm x8 + polish "
                       << multi.objective << " (start " << multi.start << "), admm x1 "
                       << single.objective << ", + polish " << polished.objective << ", round "
                       << round.objective << ", + polish " << roundPolished.objective
                       << ", pgd x3 + polish " << pgd.objective);
    // attributes: the defaults are 8 starts for admm, 1 for round and pgd, polishing on
    BOOST_TEST(multi.starts == "8");
    BOOST_TEST(multi.polish == "on");
    BOOST_TEST(std::stoi(multi.start) >= 0);
    BOOST_TEST(std::stoi(multi.start) < 8);
    BOOST_TEST(single.starts == "1");
    BOOST_TEST(single.start == "0");
    BOOST_TEST(single.polish == "off");
    BOOST_TEST(roundPolished.starts == "1");
    BOOST_TEST(pgd.starts == "3");
    // every result lies in the set and reports its own objective
    for (const Output* o : {&multi, &single, &polished, &round, &roundPolished, &pgd}) {
        BOOST_TEST(inSet(o->x, o->scale, {-1, 0, 1}));
        BOOST_TEST(o->objective == p.objective(o->x), boost::test_tools::tolerance(1e-9));
        BOOST_TEST(o->objective >= best * (1 - 1e-5));
    }
    // polishing and more starts never hurt; the seed makes runs reproducible
    BOOST_TEST(polished.objective <= single.objective * (1 + 1e-6));
    BOOST_TEST(roundPolished.objective <= round.objective * (1 + 1e-6));
    BOOST_TEST(multi.objective <= polished.objective * (1 + 1e-6));
    BOOST_TEST(multi.objective == best, boost::test_tools::tolerance(1e-6));
    BOOST_TEST(single.objective > best * (1 + 1e-6));
    BOOST_TEST(again.x == multi.x);
    BOOST_TEST(again.start == multi.start);
}

BOOST_AUTO_TEST_CASE(polish_keeps_fixed_scale_and_other_sets) {
    H5::Exception::dontPrint();
    Dir dir;
    Eigen::MatrixXf A;
    Vector b;
    makeProblem(12, 6, 11, 0.3f, A, b);
    writeProblem(dir / "p.h5", A, b, false);
    optim::problems::LeastSquares p(A, b);
    struct Case {
        std::string flags;
        std::vector<double> levels;
        bool freeScale;
    };
    const std::vector<Case> cases = {
        {"--scale one", {-1, 0, 1}, false},
        {"--set binary --starts 2", {-1, 1}, true},
        {"--set binary --scale one --method round", {-1, 1}, false},
        {"--set pow2 --bits 2 --method pgd", {-2, -1, 0, 1, 2}, true},
    };
    for (const Case& c : cases) {
        BOOST_TEST_CONTEXT("flags: " << c.flags) {
            Result r = runLsq("--in " + dir / "p.h5" + " --out " + dir / "a.h5 " + c.flags,
                              dir.path);
            BOOST_TEST_REQUIRE(r.code == 0, r.err);
            r = runLsq("--in " + dir / "p.h5" + " --out " + dir / "b.h5 --no-polish " + c.flags,
                       dir.path);
            BOOST_TEST_REQUIRE(r.code == 0, r.err);
            const Output on = readOutput(dir / "a.h5"), off = readOutput(dir / "b.h5");
            BOOST_TEST(inSet(on.x, on.scale, c.levels));
            if (!c.freeScale) BOOST_TEST(on.scale == 1.0);
            BOOST_TEST(on.objective <= off.objective * (1 + 1e-6));
            BOOST_TEST(on.objective == p.objective(on.x), boost::test_tools::tolerance(1e-9));
        }
    }
}
