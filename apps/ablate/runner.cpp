// tern-ablate's runs (runner.hpp): planning, skip and resume, and the scheduler that starts
// tern-train children, draws the progress line and forwards signals.
#include "ablate/runner.hpp"

#include "ablate/summary.hpp"
#include "ablate/text.hpp"
#include "tern/core/format.hpp"

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
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace tern::ablate {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

Index epochsOf(const std::vector<Flag>& flags, const std::string& variant) {
    const auto it = std::find_if(flags.begin(), flags.end(),
                                 [](const Flag& f) { return f.name == "--epochs"; });
    const double e = it->values.size() == 1 ? toNumber(it->values[0]) : NAN;
    if (!(e >= 1) || e != std::floor(e))
        throw std::invalid_argument("variant '" + variant + "': --epochs must be a positive integer");
    return static_cast<Index>(e);
}

}  // namespace

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
            r.args = flagWords(flags);
            runs.push_back(std::move(r));
        }
    return runs;
}

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

namespace {

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

}  // namespace

void installSignalHandlers() {
    struct sigaction sa {};
    sa.sa_handler = onSignal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: a signal cuts the poll sleep short
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

bool interrupted() { return gSignalCount != 0; }

namespace {

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

}  // namespace

std::string failureLine(const Run& r) {
    const std::string why = failureReason(r.log);
    return "FAILED " + r.name + ": exit " + std::to_string(r.exitCode) +
           (why.empty() ? "" : ": " + why) + " (log " + r.log.string() + ")";
}

namespace {

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

}  // namespace

void runAll(std::vector<Run>& runs, const Settings& s) { Scheduler(runs, s).run(); }

}  // namespace tern::ablate
