// tern-ablate's grid (grid.hpp): flags, variants, the default grid, grid files, the k-sweep.
#include "ablate/grid.hpp"

#include "ablate/text.hpp"
#include "tern/optim/methods.hpp"

#include <algorithm>
#include <fstream>
#include <stdexcept>
#include <utility>

namespace tern::ablate {

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

std::vector<std::string> flagWords(const std::vector<Flag>& flags) {
    std::vector<std::string> words;
    for (const Flag& f : flags) {
        words.push_back(f.name);
        words.insert(words.end(), f.values.begin(), f.values.end());
    }
    return words;
}

void overlay(std::vector<Flag>& base, const std::vector<Flag>& over) {
    for (const Flag& f : over) {
        auto it = std::find_if(base.begin(), base.end(), [&](const Flag& b) { return b.name == f.name; });
        if (it != base.end()) *it = f;
        else base.push_back(f);
    }
}

void rejectFlags(const std::vector<Flag>& flags, const std::map<std::string, std::string>& reserved,
                 const std::string& where) {
    for (const Flag& f : flags)
        if (const auto it = reserved.find(f.name); it != reserved.end())
            throw std::invalid_argument(where + ": " + f.name + " is set by tern-ablate (" +
                                        it->second + ")");
}

bool resolveMethod(std::vector<Flag>& flags, const std::string& where) {
    bool replaced = false;
    for (Flag& f : flags) {
        if (f.name != "--method") continue;
        if (f.values.size() != 1)
            throw std::invalid_argument(where + ": --method takes one method name");
        std::string name;
        try {
            name = optim::findMethod(f.values[0]).name;
        } catch (const std::invalid_argument& e) {
            throw std::invalid_argument(where + ": " + e.what());
        }
        replaced = replaced || name != f.values[0];
        f.values[0] = name;
    }
    return replaced;
}

const std::map<std::string, std::string> kPerRun{
    {"--seed", "use --seeds"},
    {"--out", "each run writes OUT/<variant>-s<seed>"},
    {"--resume", "unfinished runs are resumed automatically"},
    {"--threads", "use tern-ablate --threads"}};
const std::map<std::string, std::string> kShared{{"--dataset", "use tern-ablate --dataset"},
                                                 {"--model", "use tern-ablate --model"},
                                                 {"--data-dir", "use tern-ablate --data-dir"},
                                                 {"--epochs", "use tern-ablate --epochs"}};

namespace {

Variant makeVariant(const std::string& name, const std::string& text, const std::string& where) {
    if (name.empty() ||
        name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.+") !=
            std::string::npos)
        throw std::invalid_argument(where + ": variant name '" + name +
                                    "' must be letters, digits and -_.+ (it names a directory)");
    const std::string what = where + ": variant '" + name + "'";
    Variant v{name, trim(text), parseFlags(splitWords(text), what)};
    rejectFlags(v.flags, kPerRun, what);
    if (resolveMethod(v.flags, what)) v.text = joined(flagWords(v.flags), " ");  // canonical names
    return v;
}

}  // namespace

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

}  // namespace tern::ablate
