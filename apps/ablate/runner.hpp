#pragma once
/// \file tern-ablate's runs: the plan (one tern-train command per variant and seed, the threads
/// split between the jobs), skip or resume from what a run left, and the execution: child
/// processes `jobs` at a time, a progress line with an ETA, SIGINT / SIGTERM forwarded.
#include "ablate/grid.hpp"
#include "tern/core/types.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace tern::ablate {

enum class State { Pending, Skipped, Running, Done, Failed, Interrupted };

struct Run {
    std::size_t variantIndex = 0;
    std::string variant, name;      ///< name = <variant>-s<seed>
    std::uint64_t seed = 0;
    std::filesystem::path dir, log; ///< OUT/<name>/ and OUT/<name>.log
    std::vector<std::string> args;  ///< tern-train's arguments, without --resume
    Index epochs = 0;
    bool resume = false;
    State state = State::Pending;
    int exitCode = 0;               ///< shell convention: 128 + signal when killed
};

struct Settings {
    std::filesystem::path out;
    std::string dataset, model, dataDir;
    Index epochs = 0;
    std::vector<std::uint64_t> seeds;
    std::vector<Flag> trainArgs;
    std::string ternTrain;
    int jobs = 1, threads = 1;
};

/// Runs in execution order, seed-major: after the first pass over the variants every variant
/// has one result.
std::vector<Run> planRuns(const Settings& s, const std::vector<Variant>& grid);

/// Skip a run that completed at least its epochs; resume one that left a checkpoint (an
/// interrupted run, or a complete one asked for more epochs).
void classify(Run& r);

/// The run's command: `exe`, its arguments, and --resume where it resumes.
std::vector<std::string> commandOf(const Run& r, const std::string& exe);
/// `argv` as one shell command line.
std::string commandLine(const std::vector<std::string>& argv);

/// "FAILED <run>: exit N: <tern-train's error line> (log <path>)".
std::string failureLine(const Run& r);

/// Catches SIGINT and SIGTERM from now on, to forward them to the running runs.
void installSignalHandlers();
/// Whether a SIGINT or SIGTERM was received.
bool interrupted();

/// Runs the pending runs, `s.jobs` at a time, until all finished or a signal stopped them.
void runAll(std::vector<Run>& runs, const Settings& s);

}  // namespace tern::ablate
