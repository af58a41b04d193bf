#pragma once
/// \file Argument checks used at API boundaries. Messages follow
/// "Where(): what must hold (got X)".
#include "tern/core/types.hpp"

#include <sstream>
#include <stdexcept>
#include <string>

namespace tern {

/// Throws std::invalid_argument with `where + ": " + what`.
[[noreturn]] void fail(const std::string& where, const std::string& what);

/// value > 0, finite.
void requirePositive(double value, const char* where, const char* field);
/// value >= 0, finite.
void requireNonNegative(double value, const char* where, const char* field);
/// lo <= value <= hi.
void requireInRange(double value, double lo, double hi, const char* where, const char* field);
/// a.size() == b.size(); message names both sizes.
void requireSameSize(Index a, Index b, const char* where, const char* aName, const char* bName);
/// Every entry finite; message names the first bad index.
void requireFinite(CVecRef v, const char* where, const char* name);

/// Stream-style message builder: TERN_MSG("got " << x).
#define TERN_MSG(expr) (static_cast<std::ostringstream&&>(std::ostringstream() << expr).str())

}  // namespace tern
