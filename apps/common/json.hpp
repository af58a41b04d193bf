#pragma once
/// \file JSON files for the apps, through nlohmann::json (Debian nlohmann-json3-dev): reading
/// with errors that name the file, and a flat view of a document's scalars.
#include <nlohmann/json.hpp>

#include <map>
#include <string>

namespace tern::app {

/// Parses the JSON file at `path`. Throws std::runtime_error naming the file: "PATH: cannot
/// open", "PATH: not valid JSON (<the parser's message>)".
nlohmann::json readJsonFile(const std::string& path);

/// A document's scalars as text under dotted keys: {"status": "completed", "cost":
/// {"storage_bits": 1024}} -> {"status": "completed", "cost.storage_bits": "1024"}. Strings
/// are kept as they are, integers in full, floating-point numbers as formatShortest(),
/// booleans "true" / "false", null "". Arrays and what is inside them are left out, so a key
/// never names an array element.
std::map<std::string, std::string> flattenScalars(const nlohmann::json& doc);

}  // namespace tern::app
