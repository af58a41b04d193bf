#pragma once
/// \file tern-ablate's results: each run's summary.json (flattened) and the grid's
/// OUT/results.csv (one row per run) and OUT/results.md (one row per variant).
#include "ablate/grid.hpp"
#include "ablate/runner.hpp"

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace tern::ablate {

/// summary.json's scalars, flattened: "status", "cost.nonzero_weights", "config.method", ...
/// (app::flattenScalars: strings as they are, numbers as shortest text, null ""). Arrays
/// ("layers", "model") are left out, so a config key never collides with a top-level one.
using FlatJson = std::map<std::string, std::string>;

/// The run's summary.json, flattened; empty when absent (tern-train writes it whole, through a
/// temporary file). Throws std::runtime_error naming the file when it is there but not JSON.
FlatJson readSummary(const std::filesystem::path& runDir);

/// The value of `key`, "" when absent.
std::string field(const FlatJson& j, const std::string& key);

/// Writes OUT/results.csv (one row per run of the grid, "missing" where a run has no summary)
/// and OUT/results.md (one row per variant, over its completed runs); returns the Markdown.
/// `commonFlags`: what this invocation gave every run ("" = not known, e.g. --summarize-only).
std::string writeResults(const Settings& s, const std::vector<Run>& runs,
                         const std::vector<Variant>& grid, const std::string& commonFlags);

}  // namespace tern::ablate
