#pragma once
/// \file tern-ablate's text helpers: trimming and splitting words and lists, shell quoting (for
/// the logged and --dry-run command lines), numbers read whole and printed with fixed decimals.
#include <string>
#include <vector>

namespace tern::ablate {

/// `s` without leading and trailing white space.
std::string trim(const std::string& s);
/// `s` split at white space (no quoting).
std::vector<std::string> splitWords(const std::string& s);
/// "a, b,c" -> {"a", "b", "c"}; an empty item is an error naming `option`.
std::vector<std::string> splitList(const std::string& s, const std::string& option);
/// The items of `v` with `sep` between them.
std::string joined(const std::vector<std::string>& v, const std::string& sep);
/// A word as a POSIX shell would need it (for the logged and --dry-run command lines).
std::string shellQuote(const std::string& w);
/// Parses all of `s` as a number, or returns NaN.
double toNumber(const std::string& s);
/// `v` with `decimals` decimals, "-" when not finite.
std::string fixed(double v, int decimals);

}  // namespace tern::ablate
