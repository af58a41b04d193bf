// tern-ablate: runs a grid of tern-train runs (named variants x seeds) as child processes, a few
// at a time with the cores split between them; skips complete runs, resumes unfinished ones,
// forwards Ctrl-C, and summarizes every run into OUT/results.csv and OUT/results.md. This file
// holds the command line and main(); apps/ablate/ the grid, the runs and the results.
#include "ablate/grid.hpp"
#include "ablate/runner.hpp"
#include "ablate/summary.hpp"
#include "ablate/text.hpp"
#include "common/app.hpp"
#include "tern/run/config.hpp"

#include <charconv>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <thread>

namespace app = tern::app;
namespace po = boost::program_options;
namespace fs = std::filesystem;
using namespace tern::ablate;

namespace {

std::vector<std::uint64_t> parseSeeds(const std::string& list) {
    std::vector<std::uint64_t> out;
    for (const std::string& item : splitList(list, "--seeds")) {
        const double v = toNumber(item);
        if (!(v >= 0) || v != std::floor(v) || item.find_first_not_of("0123456789") != std::string::npos)
            throw std::invalid_argument("--seeds: '" + item + "' is not a seed (a non-negative integer)");
        std::uint64_t seed = 0;
        const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), seed);
        if (ec != std::errc() || end != item.data() + item.size())
            throw std::invalid_argument("--seeds: '" + item + "' is not a seed (at most 2^64 - 1)");
        if (std::find(out.begin(), out.end(), seed) != out.end())
            throw std::invalid_argument("--seeds: seed " + item + " is given twice");
        out.push_back(seed);
    }
    return out;
}

/// tern-train next to this executable.
std::string defaultTernTrain(const char* argv0) {
    std::error_code ec;
    fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (ec) self = fs::absolute(argv0);
    return (self.parent_path() / "tern-train").string();
}

int run(int argc, char** argv) {
    const tern::run::TrainConfig defaults;
    Settings s;
    std::string out, seeds = "1,2,3", variants, gridFile, kSweepList, trainArgs;
    bool dryRun = false, summarizeOnly = false;
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

    po::options_description gridOpts("Grid");
    gridOpts.add_options()
        ("variants", po::value(&variants), "comma-separated subset of the grid's variants (default: all)")
        ("grid", po::value(&gridFile), "grid file replacing the default grid: one 'name: tern-train flags' per line, '#' comments")
        ("k-sweep", po::value(&kSweepList), "add variants topk-<k>: ADMM keeping a fraction k of nonzero weights, e.g. 0.1,0.2,0.4")
        ("seeds", app::withDefault(&seeds), "seeds; every variant runs once per seed");
    po::options_description common("Every run");
    common.add_options()
        ("dataset", app::withDefault(&s.dataset, defaults.dataset), "mnist | fashion-mnist | cifar10 | folder (with --train-args for its flags)")
        ("model", app::withDefault(&s.model, defaults.model), "lenet5 | gtc-lenet | vgg7 | vgg16 | tiny | resnet20 | resnet32 | resnet44 | resnet56 | resnet18")
        ("data-dir", po::value(&s.dataDir), "dataset directory (default: tern-train's, data/<dataset>)")
        ("epochs", app::withDefault(&s.epochs, defaults.epochs), "epochs per run (a grid line may set its own)")
        ("train-args", po::value(&trainArgs), "more tern-train flags for every run, e.g. \"--lr 0.05 --lr-steps 10,15\"; a variant's own flags win");
    po::options_description exec("Execution");
    exec.add_options()
        ("jobs", app::withDefault(&s.jobs, 1), "runs in parallel")
        ("threads", app::withDefault(&s.threads, cores), "threads in all; each run gets max(1, threads / jobs)")
        ("tern-train", po::value(&s.ternTrain), "tern-train executable (default: the one next to tern-ablate)")
        ("dry-run", po::bool_switch(&dryRun), "print the commands, run nothing")
        ("summarize-only", po::bool_switch(&summarizeOnly), "run nothing; write results.csv and results.md from the runs present");
    po::options_description output("Output");
    output.add_options()
        ("out", po::value(&out), "output directory (required): <variant>-s<seed>/ and <variant>-s<seed>.log per run, results.csv, results.md")
        ("help,h", "this help");
    po::options_description all(
        "tern-ablate: run a grid of tern-train runs (variants x seeds) and summarize them\n\n"
        "Usage: tern-ablate --out DIR [options]");
    all.add(gridOpts).add(common).add(exec).add(output);

    std::vector<Variant> grid;
    std::vector<Run> runs;
    std::string commonFlags;
    const bool help = app::asUsage([&] {
        po::variables_map vm;
        po::store(po::parse_command_line(argc, argv, all), vm);
        if (vm.count("help")) return true;
        po::notify(vm);
        if (out.empty()) throw std::invalid_argument("--out is required");
        if (s.jobs < 1) throw std::invalid_argument("--jobs must be >= 1");
        if (s.threads < 1) throw std::invalid_argument("--threads must be >= 1");
        if (s.epochs < 1) throw std::invalid_argument("--epochs must be >= 1");
        if (summarizeOnly && !fs::is_directory(out))
            throw std::invalid_argument("--summarize-only: '" + out + "' is not a directory");
        s.out = out;
        s.seeds = parseSeeds(seeds);
        s.trainArgs = parseFlags(splitWords(trainArgs), "--train-args");
        rejectFlags(s.trainArgs, kPerRun, "--train-args");
        rejectFlags(s.trainArgs, kShared, "--train-args");
        if (resolveMethod(s.trainArgs, "--train-args"))  // the legend shows the canonical name
            trainArgs = joined(flagWords(s.trainArgs), " ");
        commonFlags = "--dataset " + s.dataset + " --model " + s.model + " --epochs " +
                      std::to_string(s.epochs) +
                      (s.dataDir.empty() ? "" : " --data-dir " + shellQuote(s.dataDir)) +
                      (trim(trainArgs).empty() ? "" : " " + trim(trainArgs));

        grid = gridFile.empty() ? defaultGrid() : readGridFile(gridFile);
        if (vm.count("variants")) grid = selectVariants(grid, variants);
        if (!kSweepList.empty())
            for (Variant& v : kSweep(kSweepList)) grid.push_back(std::move(v));
        for (std::size_t i = 0; i < grid.size(); ++i)
            for (std::size_t j = 0; j < i; ++j)
                if (grid[i].name == grid[j].name)
                    throw std::invalid_argument("variant '" + grid[i].name + "' is defined twice");
        runs = planRuns(s, grid);

        if (!summarizeOnly) {
            if (s.ternTrain.empty()) s.ternTrain = defaultTernTrain(argv[0]);
            if (fs::is_directory(s.ternTrain) || ::access(s.ternTrain.c_str(), X_OK) != 0)
                throw std::invalid_argument("tern-train not found or not executable at '" + s.ternTrain +
                                            "'; give --tern-train PATH");
        }
        return false;
    });
    if (help) {
        std::cout << all << "\nDefault grid:\n";
        for (const Variant& v : defaultGrid()) std::cout << "  " << v.name << ": " << v.text << '\n';
        std::cout << "\nComplete runs are skipped, unfinished ones resumed (--resume). Exit codes: 0 ok, "
                     "1 usage, 2 a run failed, 130 interrupted (run again to resume).\n"
                     "\nExample:\n  tern-ablate --out runs/ablate --dataset mnist --epochs 20 --jobs 2 "
                     "--train-args \"--lr 0.05 --lr-steps 10,15 --weight-decay 5e-4 --dropout 0.3\"\n";
        return app::kExitOk;
    }

    if (summarizeOnly) {
        std::cout << writeResults(s, runs, grid, "");
        return app::kExitOk;
    }
    for (Run& r : runs) classify(r);
    if (dryRun) {
        for (const Run& r : runs)
            if (r.state == State::Skipped)
                std::cout << "# skip " << r.name << ": completed\n";
            else
                std::cout << commandLine(commandOf(r, s.ternTrain)) << " >> "
                          << shellQuote(r.log.string()) << " 2>&1\n";
        return app::kExitOk;
    }
    fs::create_directories(s.out);
    installSignalHandlers();
    runAll(runs, s);
    const std::string md = writeResults(s, runs, grid, commonFlags);
    std::cout << md << std::flush;
    std::cerr << "tern-ablate: wrote " << (s.out / "results.csv").string() << " and "
              << (s.out / "results.md").string() << '\n';
    bool failed = false;
    for (const Run& r : runs)
        if (r.state == State::Failed) {
            std::cerr << "tern-ablate: " << failureLine(r) << '\n';
            failed = true;
        }
    if (interrupted()) {
        std::cerr << "tern-ablate: interrupted; run the same command again to resume\n";
        return app::kExitInterrupted;
    }
    return failed ? app::kExitFailed : app::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
    return app::runApp("tern-ablate", argc, argv, run, app::HelpHint::SameLine);
}
