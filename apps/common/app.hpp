#pragma once
/// \file What every tern app shares: a main() wrapper that turns errors into the documented exit
/// codes and one-line messages, and helpers for boost::program_options (lists, INI --config,
/// defaults shown as shortest text in --help).
///
/// An app (apps/tern_ablate.cpp is one):
/// \code
/// int run(int argc, char** argv) {
///     double lr = 0.1;
///     std::string steps;
///     po::options_description all("tern-x: ...");
///     all.add_options()("lr", app::withDefault(&lr), "learning rate")  // --help: (=0.1)
///         ("lr-steps", po::value(&steps), "epochs, e.g. 10,15")
///         ("config", po::value<std::string>(), "INI file")("help,h", "this help");
///     po::variables_map vm;
///     std::vector<long> epochs;
///     const bool help = app::asUsage([&] {  // an error in here: exit 1 and the --help hint
///         po::store(po::parse_command_line(argc, argv, all), vm);
///         if (vm.count("help")) return true;
///         app::loadConfig(vm, all);  // --config FILE; the command line wins
///         po::notify(vm);
///         epochs = app::parseList<long>(steps, "--lr-steps", "an epoch number");
///         return false;
///     });
///     if (help) return std::cout << all, app::kExitOk;
///     ...  // the work: std::invalid_argument exits 1, another std::exception 2
/// }
/// int main(int argc, char** argv) { return tern::app::runApp("tern-x", argc, argv, run); }
/// \endcode
#include "tern/core/format.hpp"

#include <boost/program_options.hpp>

#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace tern::app {

namespace po = boost::program_options;

/// Exit codes of the apps (their --help and docs/*.md say which apply).
inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 1;          ///< bad command line or input; one line on stderr
inline constexpr int kExitFailed = 2;         ///< the work itself failed; one line on stderr
inline constexpr int kExitInterrupted = 130;  ///< stopped by SIGINT / SIGTERM (128 + SIGINT)

/// A command-line error: runApp() prints "NAME: what" and the hint "(see NAME --help)", exit 1.
class UsageError : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

/// Where runApp() puts the hint "(see NAME --help)" after a usage error's message: on a line of
/// its own (tern-train, tern-export, tern-eval) or after the message (tern-ablate).
enum class HelpHint { NextLine, SameLine };

/// Runs `body(argc, argv)` and returns its exit code; an exception leaving it becomes one line
/// on stderr and an exit code:
///   - UsageError, boost::program_options::error: "NAME: what" + hint, kExitUsage;
///   - std::invalid_argument (bad input found after the command line): "NAME: what", kExitUsage;
///   - any other std::exception: "NAME: what", kExitFailed (as does an unknown exception, with
///     "NAME: unknown error").
int runApp(const char* name, int argc, char** argv, const std::function<int(int, char**)>& body,
           HelpHint hint = HelpHint::NextLine);

/// Calls `parse()` and returns what it returns; any std::exception it throws is rethrown as a
/// UsageError with the same message. Wrap the reading of the command line in it (options, their
/// checks, settings' validate()), so that each of those errors is reported as a usage error.
template <class F>
decltype(auto) asUsage(F&& parse) {
    try {
        return std::forward<F>(parse)();
    } catch (const UsageError&) {
        throw;
    } catch (const std::exception& e) {
        throw UsageError(e.what());
    }
}

/// If the command line in `vm` gives `--<option> FILE`, stores the options of the INI file FILE
/// (names as on the command line, without "--": `lr = 0.05`) into `vm`; options already stored
/// (the command line's) win. Call it after storing the command line and before po::notify().
/// Throws std::invalid_argument "--config: cannot open 'FILE'" (with the option's name), and
/// po::error for an unknown option or a bad value in the file.
void loadConfig(po::variables_map& vm, const po::options_description& options,
                const std::string& option = "config");

/// "a,b,c" -> {a, b, c}; empty items are skipped; an item that is not wholly a T is an error
/// naming the flag and the item: "--lr-steps: 'x' is not an epoch number" (`what`, with its
/// article). Integers read as std::stol, floating point as std::stod.
template <class T>
std::vector<T> parseList(const std::string& s, const char* flag, const char* what) {
    std::vector<T> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ','))
        if (!item.empty()) {
            std::size_t used = 0;
            T v{};
            try {
                if constexpr (std::is_integral_v<T>) v = static_cast<T>(std::stol(item, &used));
                else v = static_cast<T>(std::stod(item, &used));
            } catch (const std::exception&) {
                used = 0;
            }
            if (used != item.size())
                throw std::invalid_argument(std::string(flag) + ": '" + item + "' is not " + what);
            out.push_back(v);
        }
    return out;
}

/// `po::value(x)` with the default `value`, which --help shows as formatShortest(value) for a
/// float or double ("(=0.1)", not "(=0.10000000000000001)") and as `<<` prints it otherwise.
template <class T>
po::typed_value<T>* withDefault(T* x, std::type_identity_t<T> value) {
    if constexpr (std::is_same_v<T, double> || std::is_same_v<T, float>)
        return po::value(x)->default_value(value, formatShortest(value));
    else
        return po::value(x)->default_value(value);
}

/// `po::value(x)` with the default *x, the value it holds now (a settings struct's default):
/// `("lr", app::withDefault(&c.lr), "learning rate")`.
template <class T>
po::typed_value<T>* withDefault(T* x) {
    return withDefault(x, *x);
}

}  // namespace tern::app
