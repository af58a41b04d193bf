// tern-ablate end to end on the synthetic bands data (tiny model, 2 epochs, about 0.2 s a run):
// a 2 x 2 grid with two jobs, skipping complete runs, resuming unfinished ones, forwarding
// SIGINT, a failing run, --dry-run's thread split, method names resolved through the registry
// (an unknown one fails before any run, an alias runs under its canonical name), and
// bench/plot_report.py on the output when gnuplot is installed.
#define BOOST_TEST_MODULE ablate
#include <boost/test/unit_test.hpp>

#include "testing/helpers.hpp"
#include "tern/optim/methods.hpp"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

#include <spawn.h>
#include <sys/wait.h>

#if !defined(TERN_ABLATE_EXE) || !defined(TERN_TRAIN_EXE) || !defined(TERN_PLOT_REPORT)
#error "TERN_ABLATE_EXE, TERN_TRAIN_EXE and TERN_PLOT_REPORT must be defined"
#endif

extern char** environ;

using namespace tern;
namespace fs = std::filesystem;
namespace utf = boost::unit_test;

namespace {

struct Dir {
    std::string path = testing::tempDir("ablate");
    ~Dir() { fs::remove_all(path); }
    std::string operator/(const std::string& name) const { return path + "/" + name; }
};

std::string readText(const std::string& path) {
    std::ifstream f(path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

std::vector<std::string> readLines(const std::string& path) {
    std::ifstream f(path);
    std::vector<std::string> lines;
    for (std::string l; std::getline(f, l);) lines.push_back(l);
    return lines;
}

std::size_t count(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
    return n;
}

struct Result {
    int code = -1;
    std::string output;  ///< stdout and stderr
};

/// Runs a shell command, capturing its output in `dir`.
Result shell(const std::string& cmd, const Dir& dir) {
    const std::string outFile = dir / "output.txt";
    const int status = std::system((cmd + " > '" + outFile + "' 2>&1").c_str());
    Result r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.output = readText(outFile);
    BOOST_TEST_MESSAGE("$ " << cmd << "\n" << r.output);
    return r;
}

/// tern-ablate on the bands data with the tiny model, 2 threads, into dir/out.
std::string ablateCommand(const Dir& dir, const std::string& args, int epochs = 2) {
    return std::string(TERN_ABLATE_EXE) + " --out '" + (dir / "out") +
           "' --dataset mnist --model tiny --data-dir '" + testing::bandsDataDir() + "' --epochs " +
           std::to_string(epochs) + " --threads 2 " + args;
}

Result ablate(const Dir& dir, const std::string& args, int epochs = 2) {
    return shell(ablateCommand(dir, args, epochs), dir);
}

std::string writeGrid(const Dir& dir, const std::string& text) {
    const std::string path = dir / "grid.txt";
    std::ofstream(path) << text;
    return path;
}

/// tern-ablate as ablate() with the grid file dir/grid.txt holding `grid`.
Result ablateGrid(const Dir& dir, const std::string& grid, const std::string& args) {
    return ablate(dir, "--grid '" + writeGrid(dir, grid) + "' " + args);
}

/// results.csv rows (without the header) as column maps.
std::vector<std::map<std::string, std::string>> resultRows(const Dir& dir) {
    const auto lines = readLines(dir / "out/results.csv");
    auto split = [](const std::string& line) {
        std::vector<std::string> cols;
        std::stringstream ss(line);
        for (std::string c; std::getline(ss, c, ',');) cols.push_back(c);
        if (!line.empty() && line.back() == ',') cols.emplace_back();
        return cols;
    };
    std::vector<std::map<std::string, std::string>> rows;
    if (lines.empty()) return rows;
    const auto header = split(lines[0]);
    for (std::size_t i = 1; i < lines.size(); ++i) {
        const auto cols = split(lines[i]);
        BOOST_REQUIRE_EQUAL(cols.size(), header.size());
        std::map<std::string, std::string> row;
        for (std::size_t c = 0; c < cols.size(); ++c) row[header[c]] = cols[c];
        rows.push_back(row);
    }
    return rows;
}

std::size_t metricsRows(const Dir& dir, const std::string& run) {
    const auto lines = readLines(dir / ("out/" + run + "/metrics.csv"));
    return lines.empty() ? 0 : lines.size() - 1;
}

/// Markdown table rows of results.md (lines starting "| " after the header and separator).
std::size_t markdownRows(const Dir& dir) {
    std::size_t n = 0;
    for (const auto& l : readLines(dir / "out/results.md"))
        if (l.rfind("| ", 0) == 0) ++n;
    return n >= 1 ? n - 1 : 0;  // minus the header
}

const std::vector<std::string> kGridRuns{"fp-s1", "admm-free-bn-s1", "fp-s2", "admm-free-bn-s2"};

boost::test_tools::assertion_result havePlotTools(utf::test_unit_id) {
    boost::test_tools::assertion_result r(std::system("command -v gnuplot > /dev/null 2>&1") == 0 &&
                                          fs::exists("/usr/bin/python3"));
    if (!r) r.message() << "gnuplot (Debian gnuplot-nox) or /usr/bin/python3 missing: plots not tested";
    return r;
}

}  // namespace

BOOST_AUTO_TEST_CASE(grid_runs_in_parallel_then_skips_complete_runs) {
    Dir dir;
    const Result first = ablate(dir, "--variants fp,admm-free-bn --seeds 1,2 --jobs 2");
    BOOST_REQUIRE_EQUAL(first.code, 0);
    const auto rows = resultRows(dir);
    BOOST_REQUIRE_EQUAL(rows.size(), 4u);
    for (const auto& row : rows) {
        BOOST_TEST(row.at("status") == "completed");
        BOOST_TEST(row.at("epochs") == "2");
        BOOST_TEST(row.at("model") == "tiny");
        BOOST_TEST(!row.at("final_test_acc").empty());
        BOOST_TEST(!row.at("nonzero_weights").empty());
    }
    BOOST_TEST(rows[0].at("variant") == "fp");
    BOOST_TEST(rows[2].at("method") == "admm");
    BOOST_TEST(markdownRows(dir) == 2u);
    BOOST_TEST(readText(dir / "out/results.md").find("| admm-free-bn | 2 | ") != std::string::npos);

    std::map<std::string, std::string> metrics, logs;
    for (const auto& run : kGridRuns) {
        BOOST_TEST(metricsRows(dir, run) == 2u, run);
        metrics[run] = readText(dir / ("out/" + run + "/metrics.csv"));
        logs[run] = readText(dir / ("out/" + run + ".log"));
        BOOST_TEST(logs[run].find("--threads 1 ") != std::string::npos, run);  // 2 threads / 2 jobs
    }

    const Result second = ablate(dir, "--variants fp,admm-free-bn --seeds 1,2 --jobs 2");
    BOOST_REQUIRE_EQUAL(second.code, 0);
    BOOST_TEST(count(second.output, "skip ") == 4u);
    BOOST_TEST(count(second.output, "start ") == 0u);
    for (const auto& run : kGridRuns) {
        BOOST_TEST(second.output.find("skip " + run + ": completed") != std::string::npos, run);
        BOOST_TEST(readText(dir / ("out/" + run + "/metrics.csv")) == metrics[run], run);
        BOOST_TEST(readText(dir / ("out/" + run + ".log")) == logs[run], run);
    }
    BOOST_TEST(resultRows(dir).size() == 4u);
}

BOOST_AUTO_TEST_CASE(resumes_unfinished_runs) {
    Dir dir;
    const std::string grid = writeGrid(dir, "# one variant\na: --method admm  # tern-train flags\n");
    // Seed 1 completed 1 epoch (asked now for 2); seed 2 was killed after its first checkpoint,
    // before writing its summary.
    for (const std::string seed : {"1", "2"}) {
        const Result pre = shell(std::string(TERN_TRAIN_EXE) +
                                     " --quiet --dataset mnist --model tiny --data-dir '" +
                                     testing::bandsDataDir() + "' --epochs 1 --method admm" +
                                     " --threads 1 --seed " + seed + " --out '" +
                                     (dir / ("out/a-s" + seed)) + "'",
                                 dir);
        BOOST_REQUIRE_EQUAL(pre.code, 0);
    }
    fs::remove(dir / "out/a-s2/summary.json");

    const Result r = ablate(dir, "--grid '" + grid + "' --seeds 1,2 --jobs 2");
    BOOST_REQUIRE_EQUAL(r.code, 0);
    for (const std::string run : {"a-s1", "a-s2"}) {
        BOOST_TEST(r.output.find("resume " + run + " at epoch 2") != std::string::npos, run);
        BOOST_TEST(readText(dir / ("out/" + run + ".log")).find(" --resume") != std::string::npos, run);
        BOOST_TEST(metricsRows(dir, run) == 2u, run);
    }
    for (const auto& row : resultRows(dir)) {
        BOOST_TEST(row.at("status") == "completed");
        BOOST_TEST(row.at("epochs") == "2");
    }
}

BOOST_AUTO_TEST_CASE(sigint_is_forwarded_and_the_run_resumes_later) {
    Dir dir;
    // Far more epochs than the test waits for: the run is certainly in progress at the signal.
    const int epochs = 1000000;
    const std::string cmd = "exec " + ablateCommand(dir, "--variants fp --seeds 1", epochs) + " > '" +
                            (dir / "output.txt") + "' 2>&1";
    const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
    pid_t pid = -1;
    BOOST_REQUIRE_EQUAL(posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ), 0);
    // Signal once the run has finished two epochs (unless tern-ablate exited on its own).
    int status = 0;
    pid_t exited = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (metricsRows(dir, "fp-s1") < 2 && std::chrono::steady_clock::now() < deadline &&
           (exited = ::waitpid(pid, &status, WNOHANG)) == 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (exited == 0) {
        ::kill(pid, SIGINT);
        BOOST_REQUIRE_EQUAL(::waitpid(pid, &status, 0), pid);
    }
    BOOST_TEST_MESSAGE(readText(dir / "output.txt"));
    BOOST_REQUIRE_GE(metricsRows(dir, "fp-s1"), 2u);
    BOOST_REQUIRE(WIFEXITED(status));
    BOOST_TEST(WEXITSTATUS(status) == 130);
    BOOST_TEST(readText(dir / "output.txt").find("interrupted fp-s1 (checkpoint kept)") != std::string::npos);
    BOOST_TEST(fs::exists(dir / "out/fp-s1/checkpoint.h5"));
    BOOST_TEST(resultRows(dir).at(0).at("status") == "interrupted");

    const Result dry = ablate(dir, "--variants fp --seeds 1 --dry-run", epochs);
    BOOST_TEST(dry.code == 0);
    BOOST_TEST(dry.output.find("--out " + (dir / "out/fp-s1") + " --resume") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_failed_run_is_reported_and_the_others_complete) {
    Dir dir;
    const Result r = ablateGrid(dir, "bad: --method admm --projection ternery:exact\ngood: --method twn\n",
                                "--seeds 1 --jobs 2");
    BOOST_TEST(r.code == 2);
    BOOST_TEST(r.output.find("FAILED bad-s1: exit 1: tern-train: ") != std::string::npos);
    BOOST_TEST(r.output.find("unknown projection 'ternery:exact'") != std::string::npos);
    BOOST_TEST(r.output.find("bad-s1.log") != std::string::npos);
    const auto rows = resultRows(dir);
    BOOST_REQUIRE_EQUAL(rows.size(), 2u);
    BOOST_TEST(rows[0].at("status") == "failed");
    BOOST_TEST(rows[1].at("status") == "completed");
}

BOOST_AUTO_TEST_CASE(unknown_variant_fails_with_one_line) {
    Dir dir;
    const Result r = ablate(dir, "--variants fp,nope");
    BOOST_TEST(r.code == 1);
    BOOST_TEST(r.output.find("unknown variant 'nope'. known: fp, fp-nobn, twn, ttq, admm-free-bn") !=
               std::string::npos);
    BOOST_TEST(count(r.output, "\n") == 1u);
    BOOST_TEST(!fs::exists(dir / "out"));
}

BOOST_AUTO_TEST_CASE(an_unknown_method_fails_naming_the_grid_line_before_any_run) {
    Dir dir;
    std::string registry;  // "...unknown method 'nope'; known: fp, bc, ..."
    try {
        optim::findMethod("nope");
    } catch (const std::invalid_argument& e) {
        registry = e.what();
    }
    BOOST_TEST(registry.find("unknown method 'nope'; known: fp, bc, ") != std::string::npos);
    const Result r = ablateGrid(dir, "fp: --method fp\n\nbad: --method nope\n", "--seeds 1");
    BOOST_TEST(r.code == 1);
    BOOST_TEST(r.output == "tern-ablate: " + (dir / "grid.txt") + ":3: variant 'bad': " + registry +
                               " (see tern-ablate --help)\n");
    BOOST_TEST(!fs::exists(dir / "out"));  // not even the first variant ran
}

BOOST_AUTO_TEST_CASE(a_method_alias_runs_and_is_reported_under_its_canonical_name) {
    Dir dir;
    const std::string grid = "a: --method binaryconnect\nb: --method=sgd --lr 0.01\n";
    const Result dry = ablateGrid(dir, grid, "--seeds 1 --dry-run");
    BOOST_TEST(dry.code == 0);
    BOOST_TEST(count(dry.output, "\n") == 2u);
    for (const std::string canonical : {" --method bc --seed 1 ", " --method fp --lr 0.01 --seed "})
        BOOST_TEST(count(dry.output, canonical) == 1u, canonical);
    for (const std::string alias : {"binaryconnect", "sgd"})
        BOOST_TEST(count(dry.output, alias) == 0u, alias);

    // A summary from a run given the alias itself: results.csv and the legend say "bc".
    fs::create_directories(dir / "out/a-s1");
    std::ofstream(dir / "out/a-s1/summary.json")
        << R"({"status": "completed", "epochs_completed": 2,)"
        << R"( "config": {"method": "binaryconnect"}})";
    const Result sum = ablateGrid(dir, grid, "--seeds 1 --summarize-only");
    BOOST_REQUIRE_EQUAL(sum.code, 0);
    const auto rows = resultRows(dir);
    BOOST_REQUIRE_EQUAL(rows.size(), 2u);
    BOOST_TEST(rows[0].at("method") == "bc");
    BOOST_TEST(rows[1].at("status") == "missing");
    BOOST_TEST(sum.output.find("- `a`: `--method bc`") != std::string::npos);
    BOOST_TEST(sum.output.find("- `b`: `--method fp --lr 0.01`") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_corrupt_summary_is_an_error_naming_the_file) {
    Dir dir;
    fs::create_directories(dir / "out/fp-s1");
    const std::string summary = dir / "out/fp-s1/summary.json";
    std::ofstream(summary) << "{\"status\": \"completed\", \"epochs_completed\": ";
    for (const std::string mode : {"--summarize-only", "--dry-run"}) {
        const Result r = ablate(dir, "--variants fp --seeds 1 " + mode);
        BOOST_TEST(r.code == 2, mode);
        BOOST_TEST(r.output.rfind("tern-ablate: " + summary + ": not valid JSON (", 0) == 0, mode);
        BOOST_TEST(count(r.output, "\n") == 1u, mode);
    }
    BOOST_TEST(!fs::exists(dir / "out/results.csv"));
}

BOOST_AUTO_TEST_CASE(dry_run_prints_the_commands_with_the_split_thread_count) {
    Dir dir;
    const Result r = shell(std::string(TERN_ABLATE_EXE) + " --out '" + (dir / "out") +
                               "' --dry-run --jobs 2 --threads 6 --variants fp,admm-one-nobn --k-sweep 0.3 "
                               "--seeds 1 --train-args '--lr 0.05 --dropout 0.3'",
                           dir);
    BOOST_TEST(r.code == 0);
    BOOST_TEST(count(r.output, "\n") == 3u);
    BOOST_TEST(count(r.output, " --threads 3 ") == 3u);
    // the shared --train-args reach every run; the no-BN variant's own --lr replaces the shared one
    BOOST_TEST(count(r.output, " --dropout 0.3 ") == 3u);
    BOOST_TEST(count(r.output, "--lr 0.05 --dropout 0.3") == 2u);
    BOOST_TEST(r.output.find("--lr 0.01 --dropout 0.3 --method admm --alpha one --no-bn --seed 1") !=
               std::string::npos);
    BOOST_TEST(r.output.find("--projection ternary:topk,fraction=0.3") != std::string::npos);
    BOOST_TEST(!fs::exists(dir / "out"));
}

/// Per-layer sets in a grid file: a --projection value holding '=' and ',' (also as
/// --projection=VALUE) reaches tern-train unchanged through the grid line and --variants, and
/// the runs' storage counts each layer's bits.
BOOST_AUTO_TEST_CASE(per_layer_projections_pass_through_a_grid_file) {
    Dir dir;
    const std::string grid =
        "mixed: --method admm --projection conv1=ternary:exact,fc1=pow2:bits=3/filter\n"
        "eq: --method admm --projection=fc1=float,conv1=pow2,bits=2\n"
        "other: --method twn\n";
    const Result dry = ablateGrid(dir, grid, "--variants mixed,eq --seeds 1 --dry-run");
    BOOST_REQUIRE_EQUAL(dry.code, 0);
    BOOST_TEST(count(dry.output, "\n") == 2u);
    BOOST_TEST(dry.output.find("--projection conv1=ternary:exact,fc1=pow2:bits=3/filter ") !=
               std::string::npos);
    BOOST_TEST(dry.output.find("--projection fc1=float,conv1=pow2,bits=2 ") != std::string::npos);

    const Result r = ablateGrid(dir, grid, "--variants mixed,eq --seeds 1");
    BOOST_REQUIRE_EQUAL(r.code, 0);
    const auto rows = resultRows(dir);
    BOOST_REQUIRE_EQUAL(rows.size(), 2u);
    std::map<std::string, double> bits;
    for (const auto& row : rows) {
        BOOST_TEST(row.at("status") == "completed");
        bits[row.at("variant")] = std::stod(row.at("storage_bits"));
    }
    // eq keeps fc1 (the tiny model's largest layer) float: 32 bits a weight against 3
    BOOST_TEST(bits.at("eq") > bits.at("mixed"));
    const std::string summary = readText(dir / "out/mixed-s1/summary.json");
    BOOST_TEST(summary.find("conv1=ternary:exact,fc1=pow2:bits=3/filter") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_resnet_grid_runs_and_is_summarized) {
    Dir dir;
    const std::string grid = "twn: --method twn\nttq: --method ttq --quantize-last\n";
    const std::string cmd = std::string(TERN_ABLATE_EXE) + " --out '" + (dir / "out") +
                            "' --dataset mnist --model resnet20 --data-dir '" +
                            testing::bandsDataDir() + "' --epochs 1 --threads 2 --seeds 1 " +
                            "--train-args '--width 0.25 --batch-size 24' --grid '" +
                            writeGrid(dir, grid) + "' --jobs 2";
    const Result r = shell(cmd, dir);
    BOOST_REQUIRE_EQUAL(r.code, 0);
    const auto rows = resultRows(dir);
    BOOST_REQUIRE_EQUAL(rows.size(), 2u);
    for (const auto& row : rows) {
        BOOST_TEST(row.at("status") == "completed");
        BOOST_TEST(row.at("model") == "resnet20");
    }
    BOOST_TEST(readText(dir / "out/twn-s1/summary.json").find("s3b3.conv2") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(plot_report_draws_every_figure, *utf::precondition(havePlotTools)) {
    Dir dir;
    const std::string plot =
        "/usr/bin/python3 '" TERN_PLOT_REPORT "' '" + (dir / "out") + "' '" + (dir / "fig") + "'";
    BOOST_REQUIRE_EQUAL(ablate(dir, "--variants fp,admm-free-bn --seeds 1,2 --jobs 2").code, 0);
    const Result first = shell(plot, dir);
    BOOST_REQUIRE_EQUAL(first.code, 0);
    BOOST_TEST(first.output.find("skip k_sweep.png") != std::string::npos);
    BOOST_TEST(!fs::exists(dir / "fig/k_sweep.png"));

    // The sweep adds two variants; the four runs above are skipped.
    const std::string sweep = "--variants fp,admm-free-bn --k-sweep 0.3,0.6 --seeds 1,2 --jobs 2";
    BOOST_REQUIRE_EQUAL(ablate(dir, sweep).code, 0);
    BOOST_REQUIRE_EQUAL(shell(plot + " --title 'bands, tiny'", dir).code, 0);
    for (const std::string png :
         {"acc_vs_nonzeros", "acc_vs_bits", "test_acc", "sparsity", "admm", "k_sweep"}) {
        const std::string path = dir / ("fig/" + png + ".png");
        BOOST_TEST((fs::exists(path) && fs::file_size(path) > 1000), path);
    }
    const std::string tables = readText(dir / "fig/tables.md");
    BOOST_TEST(tables.find("| topk-0.3 | 2 | ") != std::string::npos);
    BOOST_TEST(tables.find("## Pareto front") != std::string::npos);
}
