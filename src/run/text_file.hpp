#pragma once
// Text files of a run (summary.json, metrics.csv, admm.csv) written so that a failure is never
// silent: every write, flush and close is checked and reported with the file and errno's text
// ("No space left on device"). Private to src/run.
#include <string>

namespace tern::run::detail {

/// Writes `text` to `path + ".tmp"`, fsyncs it and renames it onto `path`: `path` holds either
/// its old content or all of `text`. On failure the tmp file is removed and std::runtime_error
/// names the file and the reason.
void writeFileAtomically(const std::string& path, const std::string& text);

/// Appends `text` to `path` (created if absent) and fsyncs it. A failed write leaves at most a
/// partial last line, which restartCsv() drops on resume. std::runtime_error on failure.
void appendToFile(const std::string& path, const std::string& text);

/// Checks that `dir` exists or can be created and takes a file (one byte written, synced and
/// removed): an unwritable or full --out is found before the data are read, not after an epoch.
void requireWritableDirectory(const std::string& dir);

}  // namespace tern::run::detail
