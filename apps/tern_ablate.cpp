// tern-ablate: runs a grid of tern-train runs (named variants x seeds) as child processes, a few
// at a time with the cores split between them; skips complete runs, resumes unfinished ones,
// forwards Ctrl-C, and summarizes every run into OUT/results.csv and OUT/results.md.
#include "common/app.hpp"
#include "common/json.hpp"
#include "tern/core/format.hpp"
#include "tern/run/config.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

extern char** environ;

namespace app = tern::app;
namespace po = boost::program_options;
namespace fs = std::filesystem;
using tern::Index;
using Clock = std::chrono::steady_clock;

namespace {

// ------------------------------------------------------------------------------ text helpers

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return "";
    return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

std::vector<std::string> splitWords(const std::string& s) {
    std::istringstream in(s);
    std::vector<std::string> out;
    for (std::string w; in >> w;) out.push_back(w);
    return out;
}

/// "a, b,c" -> {"a", "b", "c"}; an empty item is an error naming `option`.
std::vector<std::string> splitList(const std::string& s, const std::string& option) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    for (std::string item; std::getline(ss, item, ',');) {
        item = trim(item);
        if (item.empty()) throw std::invalid_argument(option + ": empty item in '" + s + "'");
        out.push_back(item);
    }
    if (out.empty()) throw std::invalid_argument(option + ": empty list");
    return out;
}

std::string joined(const std::vector<std::string>& v, const std::string& sep) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
    return out;
}

/// A word as a POSIX shell would need it (for the logged and --dry-run command lines).
std::string shellQuote(const std::string& w) {
    const char* plain = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%";
    if (!w.empty() && w.find_first_not_of(plain) == std::string::npos) return w;
    std::string q = "'";
    for (char c : w) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

/// Parses all of `s` as a number, or returns NaN.
double toNumber(const std::string& s) {
    std::size_t used = 0;
    double v = NAN;
    try {
        v = std::stod(s, &used);
    } catch (const std::exception&) {
        return NAN;
    }
    return used == s.size() ? v : NAN;
}

std::string fixed(double v, int decimals) {
    if (!std::isfinite(v)) return "-";
    std::ostringstream o;
    o << std::fixed << std::setprecision(decimals) << v;
    return o.str();
}

// ------------------------------------------------------------------------- summary.json

/// summary.json's scalars, flattened: "status", "cost.nonzero_weights", "config.method", ...
/// (app::flattenScalars: strings as they are, numbers as shortest text, null ""). Arrays
/// ("layers", "model") are left out, so a config key never collides with a top-level one.
using FlatJson = std::map<std::string, std::string>;

/// The run's summary.json, flattened; empty when absent (tern-train writes it whole, through a
/// temporary file). Throws std::runtime_error naming the file when it is there but not JSON.
FlatJson readSummary(const fs::path& runDir) {
    const fs::path path = runDir / "summary.json";
    if (!fs::exists(path)) return {};
    return app::flattenScalars(app::readJsonFile(path.string()));
}

std::string field(const FlatJson& j, const std::string& key) {
    const auto it = j.find(key);
    return it == j.end() ? "" : it->second;
}

// ---------------------------------------------------------------------------- flags, grid

/// One tern-train option and its values: {"--lr", {"0.05"}}, {"--no-bn", {}}.
struct Flag {
    std::string name;
    std::vector<std::string> values;
};

/// Groups words into flags: a word starting with "--" opens a flag, the words after it are its
/// values; "--lr=0.05" is split at '='.
std::vector<Flag> parseFlags(const std::vector<std::string>& words, const std::string& where) {
    std::vector<Flag> out;
    for (const std::string& w : words) {
        if (w.size() > 2 && w.rfind("--", 0) == 0) {
            const auto eq = w.find('=');
            out.push_back({w.substr(0, eq), {}});
            if (eq != std::string::npos) out.back().values.push_back(w.substr(eq + 1));
        } else if (out.empty()) {
            throw std::invalid_argument(where + ": '" + w + "' is not a --flag");
        } else {
            out.back().values.push_back(w);
        }
    }
    return out;
}

/// Flags of `over` replace those of the same name in `base`, others are appended. tern-train
/// rejects a flag given twice, so the layers (tern-ablate's options, --train-args, the
/// variant) are merged rather than concatenated.
void overlay(std::vector<Flag>& base, const std::vector<Flag>& over) {
    for (const Flag& f : over) {
        auto it = std::find_if(base.begin(), base.end(), [&](const Flag& b) { return b.name == f.name; });
        if (it != base.end()) *it = f;
        else base.push_back(f);
    }
}

/// Throws if `flags` sets one of `reserved` (flag -> what to do instead).
void rejectFlags(const std::vector<Flag>& flags, const std::map<std::string, std::string>& reserved,
                 const std::string& where) {
    for (const Flag& f : flags)
        if (const auto it = reserved.find(f.name); it != reserved.end())
            throw std::invalid_argument(where + ": " + f.name + " is set by tern-ablate (" +
                                        it->second + ")");
}

/// Flags tern-ablate sets per run.
const std::map<std::string, std::string> kPerRun{
    {"--seed", "use --seeds"},
    {"--out", "each run writes OUT/<variant>-s<seed>"},
    {"--resume", "unfinished runs are resumed automatically"},
    {"--threads", "use tern-ablate --threads"}};
/// tern-ablate's own options, not to be repeated in --train-args.
const std::map<std::string, std::string> kShared{{"--dataset", "use tern-ablate --dataset"},
                                                 {"--model", "use tern-ablate --model"},
                                                 {"--data-dir", "use tern-ablate --data-dir"},
                                                 {"--epochs", "use tern-ablate --epochs"}};

struct Variant {
    std::string name;
    std::string text;  ///< the tern-train flags as given (for the legend of results.md)
    std::vector<Flag> flags;
};

Variant makeVariant(const std::string& name, const std::string& text, const std::string& where) {
    if (name.empty() ||
        name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.+") !=
            std::string::npos)
        throw std::invalid_argument(where + ": variant name '" + name +
                                    "' must be letters, digits and -_.+ (it names a directory)");
    Variant v{name, trim(text), parseFlags(splitWords(text), where + ": variant '" + name + "'")};
    rejectFlags(v.flags, kPerRun, where + ": variant '" + name + "'");
    return v;
}

/// The handout study: float baseline, the STE family, ADMM with a free or unit scale, with and
/// without batch norm (alpha = 1 without BN is the multiplication-free network), PGD and RPR.
/// Without batch norm LeNet-5 diverges at the usual lr 0.05, so the no-BN variants (and their
/// float reference fp-nobn) use lr 0.01; a variant's flag wins over --train-args.
std::vector<Variant> defaultGrid() {
    const std::vector<std::pair<std::string, std::string>> table{
        {"fp", "--method fp"},
        {"fp-nobn", "--method fp --no-bn --lr 0.01"},
        {"twn", "--method twn"},
        {"ttq", "--method ttq"},
        {"admm-free-bn", "--method admm --alpha free"},
        {"admm-one-bn", "--method admm --alpha one"},
        {"admm-free-nobn", "--method admm --alpha free --no-bn --lr 0.01"},
        {"admm-one-nobn", "--method admm --alpha one --no-bn --lr 0.01"},
        {"bc", "--method bc"},
        {"pgd", "--method pgd"},
        {"rpr", "--method rpr"}};
    std::vector<Variant> grid;
    for (const auto& [name, flags] : table) grid.push_back(makeVariant(name, flags, "default grid"));
    return grid;
}

/// Grid file: one `name: tern-train flags...` per line; '#' starts a comment.
std::vector<Variant> readGridFile(const std::string& path) {
    std::ifstream f(path);
    if (!f) throw std::invalid_argument("--grid: cannot open '" + path + "'");
    std::vector<Variant> grid;
    int lineNo = 0;
    for (std::string line; std::getline(f, line);) {
        ++lineNo;
        line = trim(line.substr(0, line.find('#')));
        if (line.empty()) continue;
        const std::string where = path + ":" + std::to_string(lineNo);
        const auto colon = line.find(':');
        if (colon == std::string::npos)
            throw std::invalid_argument(where + ": expected 'name: tern-train flags', got '" + line + "'");
        grid.push_back(makeVariant(trim(line.substr(0, colon)), line.substr(colon + 1), where));
    }
    if (grid.empty()) throw std::invalid_argument("--grid: '" + path + "' defines no variants");
    return grid;
}

/// `topk-<k>`: ADMM onto ternary sets with a fraction k of nonzeros (the sparsity sweep).
std::vector<Variant> kSweep(const std::string& list) {
    std::vector<Variant> out;
    for (const std::string& k : splitList(list, "--k-sweep")) {
        const double v = toNumber(k);
        if (!(v > 0 && v <= 1))
            throw std::invalid_argument("--k-sweep: '" + k + "' is not a fraction in (0, 1]");
        out.push_back(makeVariant("topk-" + k,
                                  "--method admm --projection ternary:topk,fraction=" + k, "--k-sweep"));
    }
    return out;
}

/// The grid with only the variants named in `names`, in the order given.
std::vector<Variant> selectVariants(const std::vector<Variant>& grid, const std::string& names) {
    std::vector<Variant> out;
    for (const std::string& n : splitList(names, "--variants")) {
        const auto it = std::find_if(grid.begin(), grid.end(), [&](const Variant& v) { return v.name == n; });
        if (it == grid.end()) {
            std::vector<std::string> known;
            for (const auto& v : grid) known.push_back(v.name);
            throw std::invalid_argument("--variants: unknown variant '" + n +
                                        "'. known: " + joined(known, ", "));
        }
        out.push_back(*it);
    }
    return out;
}

// ------------------------------------------------------------------------------------ runs

enum class State { Pending, Skipped, Running, Done, Failed, Interrupted };

struct Run {
    std::size_t variantIndex = 0;
    std::string variant, name;      ///< name = <variant>-s<seed>
    std::uint64_t seed = 0;
    fs::path dir, log;              ///< OUT/<name>/ and OUT/<name>.log
    std::vector<std::string> args;  ///< tern-train's arguments, without --resume
    Index epochs = 0;
    bool resume = false;
    State state = State::Pending;
    int exitCode = 0;               ///< shell convention: 128 + signal when killed
};

struct Settings {
    fs::path out;
    std::string dataset, model, dataDir;
    Index epochs = 0;
    std::vector<std::uint64_t> seeds;
    std::vector<Flag> trainArgs;
    std::string ternTrain;
    int jobs = 1, threads = 1;
};

Index epochsOf(const std::vector<Flag>& flags, const std::string& variant) {
    const auto it = std::find_if(flags.begin(), flags.end(),
                                 [](const Flag& f) { return f.name == "--epochs"; });
    const double e = it->values.size() == 1 ? toNumber(it->values[0]) : NAN;
    if (!(e >= 1) || e != std::floor(e))
        throw std::invalid_argument("variant '" + variant + "': --epochs must be a positive integer");
    return static_cast<Index>(e);
}

/// Runs in execution order, seed-major: after the first pass over the variants every variant
/// has one result.
std::vector<Run> planRuns(const Settings& s, const std::vector<Variant>& grid) {
    std::vector<Flag> base{{"--dataset", {s.dataset}},
                           {"--model", {s.model}},
                           {"--epochs", {std::to_string(s.epochs)}}};
    if (!s.dataDir.empty()) base.push_back({"--data-dir", {s.dataDir}});
    overlay(base, s.trainArgs);
    const int threadsPerJob = std::max(1, s.threads / s.jobs);
    std::vector<Run> runs;
    for (std::uint64_t seed : s.seeds)
        for (std::size_t vi = 0; vi < grid.size(); ++vi) {
            Run r;
            r.variantIndex = vi;
            r.variant = grid[vi].name;
            r.seed = seed;
            r.name = r.variant + "-s" + std::to_string(seed);
            r.dir = s.out / r.name;
            r.log = s.out / (r.name + ".log");
            std::vector<Flag> flags = base;
            overlay(flags, grid[vi].flags);
            overlay(flags, {{"--seed", {std::to_string(seed)}},
                            {"--threads", {std::to_string(threadsPerJob)}},
                            {"--out", {r.dir.string()}}});
            r.epochs = epochsOf(flags, r.variant);
            for (const Flag& f : flags) {
                r.args.push_back(f.name);
                r.args.insert(r.args.end(), f.values.begin(), f.values.end());
            }
            runs.push_back(std::move(r));
        }
    return runs;
}

/// Skip a run that completed at least its epochs; resume one that left a checkpoint (an
/// interrupted run, or a complete one asked for more epochs).
void classify(Run& r) {
    const FlatJson s = readSummary(r.dir);
    const double epochsCompleted = toNumber(field(s, "epochs_completed"));
    if (field(s, "status") == "completed" && epochsCompleted >= static_cast<double>(r.epochs))
        r.state = State::Skipped;
    else
        r.resume = fs::exists(r.dir / "checkpoint.h5");
}

std::vector<std::string> commandOf(const Run& r, const std::string& exe) {
    std::vector<std::string> argv{exe};
    argv.insert(argv.end(), r.args.begin(), r.args.end());
    if (r.resume) argv.push_back("--resume");
    return argv;
}

std::string commandLine(const std::vector<std::string>& argv) {
    std::vector<std::string> q;
    for (const auto& a : argv) q.push_back(shellQuote(a));
    return joined(q, " ");
}

Index metricsRows(const fs::path& runDir) {
    std::ifstream f(runDir / "metrics.csv");
    Index lines = 0;
    for (std::string l; std::getline(f, l);)
        if (!l.empty()) ++lines;
    return std::max<Index>(0, lines - 1);  // minus the header
}

/// Epochs a run has behind it; a pending run that will start afresh has none.
Index epochsDone(const Run& r) {
    if (r.state == State::Pending && !r.resume) return 0;
    return std::min(r.epochs, metricsRows(r.dir));
}

/// Why a run failed, from its log: tern-train's last "tern-train: ..." line (its one-line error),
/// else the log's last line.
std::string failureReason(const fs::path& log) {
    std::ifstream f(log);
    std::string last, error;
    for (std::string l; std::getline(f, l);) {
        l = trim(l);
        if (l.empty()) continue;
        last = l;
        if (l.rfind("tern-train: ", 0) == 0) error = l;
    }
    return error.empty() ? last : error;
}

// ------------------------------------------------------------------------ progress, signals

volatile std::sig_atomic_t gSignal = 0;       ///< the last SIGINT / SIGTERM received
volatile std::sig_atomic_t gSignalCount = 0;  ///< how many were received

void onSignal(int sig) {
    gSignal = sig;
    gSignalCount = gSignalCount + 1;
}

void installSignalHandlers() {
    struct sigaction sa {};
    sa.sa_handler = onSignal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: a signal cuts the poll sleep short
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

/// The overall progress line on stderr (redrawn in place on a tty, a line every 30 s
/// otherwise) and event lines above it.
class Progress {
public:
    explicit Progress(const std::vector<Run>& runs)
        : runs_(runs), tty_(isatty(STDERR_FILENO) != 0), start_(Clock::now()), last_(start_) {
        for (const Run& r : runs_) epochsAtStart_ += epochsDone(r);
    }

    void event(const std::string& line) {
        if (drawn_) std::cerr << "\r\033[K";
        std::cerr << "tern-ablate: " << line << '\n';
        if (drawn_) std::cerr << status() << std::flush;
    }

    void tick() {
        const auto now = Clock::now();
        if (now - last_ < (tty_ ? std::chrono::seconds(1) : std::chrono::seconds(30))) return;
        last_ = now;
        show();
    }

    void finish() {
        show();
        if (tty_) std::cerr << '\n';
        drawn_ = false;
    }

private:
    void show() {
        if (tty_) {
            std::cerr << '\r' << status() << "\033[K" << std::flush;
            drawn_ = true;
        } else {
            std::cerr << status() << '\n';
        }
    }

    /// Runs done/total, running, failed, epochs done/total, elapsed, and an ETA from the epochs
    /// finished since this invocation started (all jobs together).
    std::string status() const {
        Index done = 0, running = 0, failed = 0, epochs = 0, total = 0, left = 0;
        for (const Run& r : runs_) {
            const Index e = epochsDone(r);
            epochs += e;
            total += r.epochs;
            if (r.state == State::Done || r.state == State::Skipped) ++done;
            if (r.state == State::Failed) ++failed;
            if (r.state == State::Running) ++running;
            if (r.state != State::Done && r.state != State::Skipped && r.state != State::Failed)
                left += r.epochs - e;
        }
        const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
        const double rate = static_cast<double>(epochs - epochsAtStart_) / std::max(elapsed, 1e-9);
        std::ostringstream o;
        o << "tern-ablate: runs " << done << "/" << runs_.size() << " done, " << running
          << " running, " << failed << " failed | epochs " << epochs << "/" << total << " | "
          << tern::formatDuration(elapsed) << " elapsed, ETA "
          << (left == 0 ? tern::formatDuration(0) : rate > 0 ? tern::formatDuration(static_cast<double>(left) / rate) : "?");
        return o.str();
    }

    const std::vector<Run>& runs_;
    bool tty_;
    Clock::time_point start_, last_;
    Index epochsAtStart_ = 0;
    bool drawn_ = false;
};

// ------------------------------------------------------------------------------- execution

std::string timestamp() {
    const std::time_t t = std::time(nullptr);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", std::localtime(&t));
    return buf;
}

/// Starts argv[0] with stdin from /dev/null and stdout + stderr appended to `log`.
pid_t spawn(const std::vector<std::string>& argv, const fs::path& log) {
    std::vector<char*> cargv;
    for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    pid_t pid = -1;
    const int err = posix_spawn(&pid, cargv[0], &fa, nullptr, cargv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (err != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(err));
    return pid;
}

std::string failureLine(const Run& r) {
    const std::string why = failureReason(r.log);
    return "FAILED " + r.name + ": exit " + std::to_string(r.exitCode) +
           (why.empty() ? "" : ": " + why) + " (log " + r.log.string() + ")";
}

/// Runs the pending runs, `jobs` at a time, until all finished or a signal stopped them.
class Scheduler {
public:
    Scheduler(std::vector<Run>& runs, const Settings& s) : runs_(runs), s_(s), progress_(runs) {}

    void run() {
        for (const Run& r : runs_)
            if (r.state == State::Skipped)
                progress_.event("skip " + r.name + ": completed (" + std::to_string(r.epochs) + " epochs)");
        std::size_t next = 0;
        int forwarded = 0;
        for (;;) {
            if (gSignalCount != forwarded) {  // tern-train checkpoints and exits 130 on either
                forwarded = gSignalCount;
                for (const auto& [pid, r] : running_) ::kill(pid, gSignal);
                progress_.event("stopping " + std::to_string(running_.size()) +
                                " running run(s); each writes its checkpoint");
            }
            reap();
            while (gSignalCount == 0 && running_.size() < static_cast<std::size_t>(s_.jobs) &&
                   next < runs_.size()) {
                Run& r = runs_[next++];
                if (r.state == State::Pending) start(r);
            }
            if (running_.empty() && (gSignalCount != 0 || next == runs_.size())) break;
            progress_.tick();
            const timespec poll{0, 50'000'000};
            nanosleep(&poll, nullptr);
        }
        progress_.finish();
    }

private:
    void start(Run& r) {
        const auto argv = commandOf(r, s_.ternTrain);
        {
            std::ofstream log(r.log, std::ios::app);
            log << "# tern-ablate " << timestamp() << "\n$ " << commandLine(argv) << '\n';
        }
        const Index from = epochsDone(r) + 1;
        pid_t pid = -1;
        try {
            pid = spawn(argv, r.log);
        } catch (const std::exception& e) {
            r.state = State::Failed;
            r.exitCode = 127;  // as a shell reports a command it cannot run
            progress_.event("FAILED " + r.name + ": " + e.what());
            return;
        }
        r.state = State::Running;
        running_[pid] = &r;
        progress_.event(r.resume ? "resume " + r.name + " at epoch " + std::to_string(from)
                                 : "start " + r.name);
    }

    void reap() {
        int status = 0;
        pid_t pid;
        while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
            const auto it = running_.find(pid);
            if (it == running_.end()) continue;
            Run& r = *it->second;
            running_.erase(it);
            const bool killed = WIFSIGNALED(status);
            r.exitCode = killed ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
            if (r.exitCode == 0) {
                r.state = State::Done;
                std::string line = "done " + r.name + ": ";
                try {  // a summary that is not JSON stops writeResults(), naming the file
                    const FlatJson sum = readSummary(r.dir);
                    line += "test acc " + fixed(100 * toNumber(field(sum, "final_test_acc")), 2) +
                            "%, " + fixed(toNumber(field(sum, "seconds")), 1) + " s";
                } catch (const std::exception& e) {
                    line += e.what();
                }
                progress_.event(line);
            } else if (gSignalCount != 0 && (r.exitCode == 130 || killed)) {
                // Also a child killed before it installed its handler: it wrote no checkpoint
                // and will start (or resume an older one) next time.
                r.state = State::Interrupted;
                progress_.event("interrupted " + r.name +
                                (fs::exists(r.dir / "checkpoint.h5") ? " (checkpoint kept)" : ""));
            } else {
                r.state = State::Failed;
                progress_.event(failureLine(r));
            }
        }
    }

    std::vector<Run>& runs_;
    const Settings& s_;
    Progress progress_;
    std::map<pid_t, Run*> running_;
};

// --------------------------------------------------------------------------------- results

/// results.csv: its columns after variant and seed, and where summary.json keeps them.
const std::vector<std::pair<std::string, std::string>> kCsvColumns{
    {"dataset", "config.dataset"},
    {"model", "config.model"},
    {"method", "config.method"},
    {"alpha", "config.alpha"},
    {"bn", "config.bn"},
    {"status", "status"},
    {"final_test_acc", "final_test_acc"},
    {"best_test_acc", "best_test_acc"},
    {"nonzero_weights", "cost.nonzero_weights"},
    {"total_weights", "cost.total_weights"},
    {"storage_bits", "cost.storage_bits"},
    {"multiplications", "cost.multiplications"},
    {"additions", "cost.additions"},
    {"seconds", "seconds"},
    {"epochs", "epochs_completed"}};

std::string csvField(const std::string& v) {
    if (v.find_first_of(",\"\n") == std::string::npos) return v;
    std::string q = "\"";
    for (char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
}

double mean(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? NAN : s / static_cast<double>(v.size());
}

/// "mean ± sample std" in `decimals`, or just the mean for a single value.
std::string meanStd(const std::vector<double>& v, int decimals) {
    const double m = mean(v);
    if (v.size() < 2) return fixed(m, decimals);
    double ss = 0;
    for (double x : v) ss += (x - m) * (x - m);
    return fixed(m, decimals) + " ± " + fixed(std::sqrt(ss / static_cast<double>(v.size() - 1)), decimals);
}

void writeFile(const fs::path& path, const std::string& text) {
    std::ofstream f(path);
    f << text;
    if (!f) throw std::runtime_error("cannot write " + path.string());
}

/// The distinct values of `key` over the summaries, joined by '/' ("mnist", "mnist/cifar10").
std::string distinct(const std::vector<std::vector<FlatJson>>& summaries, const std::string& key) {
    std::vector<std::string> values;
    for (const auto& group : summaries)
        for (const FlatJson& sum : group)
            if (std::find(values.begin(), values.end(), field(sum, key)) == values.end())
                values.push_back(field(sum, key));
    return values.empty() ? "-" : joined(values, "/");
}

/// Writes OUT/results.csv (one row per run of the grid, "missing" where a run has no summary)
/// and OUT/results.md (one row per variant, over its completed runs); returns the Markdown.
/// `commonFlags`: what this invocation gave every run ("" = not known, e.g. --summarize-only).
std::string writeResults(const Settings& s, const std::vector<Run>& runs,
                         const std::vector<Variant>& grid, const std::string& commonFlags) {
    std::vector<const Run*> ordered;
    for (const Run& r : runs) ordered.push_back(&r);
    std::stable_sort(ordered.begin(), ordered.end(),
                     [](const Run* a, const Run* b) { return a->variantIndex < b->variantIndex; });

    std::ostringstream csv;
    csv << "variant,seed";
    for (const auto& c : kCsvColumns) csv << ',' << c.first;
    csv << '\n';
    std::vector<std::vector<FlatJson>> completed(grid.size());
    std::vector<std::string> incomplete;
    for (const Run* r : ordered) {
        const FlatJson sum = readSummary(r->dir);
        const std::string status =
            !sum.empty() ? field(sum, "status") : r->state == State::Failed ? "failed" : "missing";
        csv << r->variant << ',' << r->seed;
        for (const auto& [column, key] : kCsvColumns)
            csv << ',' << csvField(column == "status" ? status : field(sum, key));
        csv << '\n';
        if (status == "completed") completed[r->variantIndex].push_back(sum);
        else incomplete.push_back(r->name + " (" + status + ")");
    }
    writeFile(s.out / "results.csv", csv.str());

    std::ostringstream md;
    md << "# tern-ablate: " << distinct(completed, "config.dataset") << ", "
       << distinct(completed, "config.model") << ", " << distinct(completed, "config.epochs")
       << " epochs\n\n"
       << "Test accuracy after the last epoch, mean ± sample std over the completed seeds; costs "
          "per image of the deployed network.\n\n"
       << "| variant | n | final test acc (%) | best test acc (%) | nonzero weights | storage (KiB) "
          "| multiplications |\n|---|--:|--:|--:|--:|--:|--:|\n";
    for (std::size_t vi = 0; vi < grid.size(); ++vi) {
        if (completed[vi].empty()) continue;
        auto column = [&](const std::string& key, double scale) {
            std::vector<double> v;
            for (const FlatJson& sum : completed[vi]) v.push_back(scale * toNumber(field(sum, key)));
            return v;
        };
        md << "| " << grid[vi].name << " | " << completed[vi].size() << " | "
           << meanStd(column("final_test_acc", 100), 2) << " | "
           << fixed(mean(column("best_test_acc", 100)), 2) << " | "
           << fixed(mean(column("cost.nonzero_weights", 1)), 0) << " | "
           << fixed(mean(column("cost.storage_bits", 1.0 / 8192)), 1) << " | "
           << fixed(mean(column("cost.multiplications", 1)), 0) << " |\n";
    }
    md << "\nVariants (tern-train flags"
       << (commonFlags.empty() ? "" : "; every run also gets `" + commonFlags + "`") << "):\n\n";
    for (const Variant& v : grid) md << "- `" << v.name << "`: `" << v.text << "`\n";
    if (!incomplete.empty()) md << "\nNot included: " << joined(incomplete, ", ") << ".\n";
    writeFile(s.out / "results.md", md.str());
    return md.str();
}

// ------------------------------------------------------------------------------ command line

std::vector<std::uint64_t> parseSeeds(const std::string& list) {
    std::vector<std::uint64_t> out;
    for (const std::string& item : splitList(list, "--seeds")) {
        const double v = toNumber(item);
        if (!(v >= 0) || v != std::floor(v) || item.find_first_not_of("0123456789") != std::string::npos)
            throw std::invalid_argument("--seeds: '" + item + "' is not a seed (a non-negative integer)");
        const std::uint64_t seed = std::stoull(item);
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
        ("dataset", app::withDefault(&s.dataset, defaults.dataset), "mnist | fashion-mnist | cifar10")
        ("model", app::withDefault(&s.model, defaults.model), "lenet5 | vgg7 | tiny")
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
    Scheduler(runs, s).run();
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
    if (gSignalCount != 0) {
        std::cerr << "tern-ablate: interrupted; run the same command again to resume\n";
        return app::kExitInterrupted;
    }
    return failed ? app::kExitFailed : app::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
    return app::runApp("tern-ablate", argc, argv, run, app::HelpHint::SameLine);
}
