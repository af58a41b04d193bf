// The apps' main() wrapper and option helpers (app.hpp).
#include "common/app.hpp"

#include <fstream>
#include <iostream>
#include <new>

namespace tern::app {

int runApp(const char* name, int argc, char** argv, const std::function<int(int, char**)>& body,
           HelpHint hint) {
    const std::string prefix = std::string(name) + ": ";
    const std::string seeHelp = std::string("(see ") + name + " --help)";
    auto usage = [&](const char* what) {
        std::cerr << prefix << what << (hint == HelpHint::NextLine ? "\n" : " ") << seeHelp << '\n';
        return kExitUsage;
    };
    try {
        return body(argc, argv);
    } catch (const UsageError& e) {
        return usage(e.what());
    } catch (const po::error& e) {
        return usage(e.what());
    } catch (const std::invalid_argument& e) {
        std::cerr << prefix << e.what() << '\n';
        return kExitUsage;
    } catch (const std::bad_alloc&) {  // the checks before allocating missed one: say what it is
        std::cerr << prefix << "out of memory: a size in the input files or the flags is more than "
                               "this machine can hold\n";
        return kExitFailed;
    } catch (const std::exception& e) {
        std::cerr << prefix << e.what() << '\n';
        return kExitFailed;
    } catch (...) {
        std::cerr << prefix << "unknown error\n";
        return kExitFailed;
    }
}

void loadConfig(po::variables_map& vm, const po::options_description& options,
                const std::string& option) {
    if (!vm.count(option)) return;
    const std::string path = vm[option].as<std::string>();
    std::ifstream f(path);
    if (!f) throw std::invalid_argument("--" + option + ": cannot open '" + path + "'");
    po::store(po::parse_config_file(f, options), vm);
}

}  // namespace tern::app
