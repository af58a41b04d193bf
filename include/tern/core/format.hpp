#pragma once
/// \file Small text formatting helpers shared by the trainer and the apps.
#include <string>

namespace tern {

/// A duration for progress lines: "4m05s" under an hour, "1h07m" from an hour on, "?" for a
/// negative or non-finite number of seconds.
std::string formatDuration(double seconds);

}  // namespace tern
