// tern-ablate's results (summary.hpp): summary.json read back, results.csv and results.md.
#include "ablate/summary.hpp"

#include "ablate/text.hpp"
#include "common/json.hpp"
#include "tern/optim/methods.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace tern::ablate {

namespace fs = std::filesystem;

FlatJson readSummary(const fs::path& runDir) {
    const fs::path path = runDir / "summary.json";
    if (!fs::exists(path)) return {};
    return app::flattenScalars(app::readJsonFile(path.string()));
}

std::string field(const FlatJson& j, const std::string& key) {
    const auto it = j.find(key);
    return it == j.end() ? "" : it->second;
}

namespace {

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

/// The registry's canonical name of a method as a summary stores it (an alias where tern-train
/// was given one); the text as it is when the registry does not know it.
std::string canonicalMethod(const std::string& method) {
    try {
        return optim::findMethod(method).name;
    } catch (const std::invalid_argument&) {
        return method;
    }
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

}  // namespace

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
            csv << ',' << csvField(column == "status"   ? status
                                   : column == "method" ? canonicalMethod(field(sum, key))
                                                        : field(sum, key));
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

}  // namespace tern::ablate
