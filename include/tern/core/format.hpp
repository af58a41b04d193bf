#pragma once
/// \file Small text formatting and parsing helpers shared by the trainer and the apps.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tern {

/// A duration for progress lines: "4m05s" under an hour, "1h07m" from an hour on, "?" for a
/// negative or non-finite number of seconds.
std::string formatDuration(double seconds);

/// The shortest decimal text that reads back (std::strtod, std::stod, `>>`) to exactly `x`, in
/// the C locale: std::to_chars' shortest round-trip form, the shorter of fixed and scientific
/// (fixed on a tie). 0.1 -> "0.1" (not "0.10000000000000001"), 100 -> "100", 0.001 -> "0.001",
/// 5e-4 -> "5e-04", 1e20 -> "1e+20", -0.0 -> "-0". Not finite: every NaN prints "nan",
/// infinities "inf" and "-inf" (std::strtod reads all three back). Not JSON: a JSON writer must
/// map NaN and infinities itself.
std::string formatShortest(double x);

/// As formatShortest(double), shortest for a float: 0.3f -> "0.3" (std::strtof reads it back to
/// the same float; as a double it would print "0.30000001192092896").
std::string formatShortest(float x);

/// The number the whole of `text` spells, in the C locale (std::from_chars: no leading space or
/// '+', no hex); nullopt for an empty, partial ("3x") or out-of-range text. The double form
/// reads "nan" and "inf" too: callers that need a finite value check it.
std::optional<double> parseWholeNumber(std::string_view text);
std::optional<long long> parseWholeInteger(std::string_view text);

/// The items with `separator` between them: {"a", "b"} -> "a, b" (lists of names in messages).
std::string joined(const std::vector<std::string>& items, const std::string& separator = ", ");

}  // namespace tern
