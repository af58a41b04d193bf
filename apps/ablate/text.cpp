// tern-ablate's text helpers (text.hpp).
#include "ablate/text.hpp"

#include <cmath>
#include <iomanip>
#include <sstream>
#include <stdexcept>

namespace tern::ablate {

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

std::string shellQuote(const std::string& w) {
    const char* plain = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%";
    if (!w.empty() && w.find_first_not_of(plain) == std::string::npos) return w;
    std::string q = "'";
    for (char c : w) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

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

}  // namespace tern::ablate
