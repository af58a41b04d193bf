// JSON files for the apps (json.hpp).
#include "common/json.hpp"

#include "tern/core/format.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace tern::app {

nlohmann::json readJsonFile(const std::string& path) {
    std::ifstream f(path);
    if (!f) throw std::runtime_error(path + ": cannot open");
    std::stringstream text;
    text << f.rdbuf();
    try {
        return nlohmann::json::parse(text.str());
    } catch (const nlohmann::json::parse_error& e) {
        throw std::runtime_error(path + ": not valid JSON (" + e.what() + ")");
    }
}

namespace {

void flatten(const nlohmann::json& j, const std::string& key,
             std::map<std::string, std::string>& out) {
    using V = nlohmann::json::value_t;
    switch (j.type()) {
    case V::object:
        for (const auto& [k, v] : j.items()) flatten(v, key.empty() ? k : key + "." + k, out);
        break;
    case V::array:
    case V::discarded:
        break;
    case V::string: out[key] = j.get<std::string>(); break;
    case V::boolean: out[key] = j.get<bool>() ? "true" : "false"; break;
    case V::null: out[key] = ""; break;
    case V::number_integer: out[key] = std::to_string(j.get<std::int64_t>()); break;
    case V::number_unsigned: out[key] = std::to_string(j.get<std::uint64_t>()); break;
    case V::number_float: out[key] = formatShortest(j.get<double>()); break;
    case V::binary: break;
    }
}

}  // namespace

std::map<std::string, std::string> flattenScalars(const nlohmann::json& doc) {
    std::map<std::string, std::string> out;
    flatten(doc, "", out);
    return out;
}

}  // namespace tern::app
