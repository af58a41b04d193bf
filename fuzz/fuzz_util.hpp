#pragma once
// Shared by the fuzz targets (docs/reliability.md): the readers take paths, so
// every target writes its input into a scratch directory of its own and reads it from there.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

namespace tern::fuzz {

/// The process's scratch directory, $TMPDIR/tern-fuzz-<pid> (or /tmp/...): made on first use,
/// removed at a normal exit. fuzz/run.sh points TMPDIR at a folder of its own, so what a
/// crashed process leaves behind is removed with it.
inline const std::string& scratchDir() {
    struct Dir {
        std::filesystem::path path;
        Dir() {
            const char* tmp = std::getenv("TMPDIR");
            path = std::filesystem::path(tmp && *tmp ? tmp : "/tmp") /
                   ("tern-fuzz-" + std::to_string(::getpid()));
            std::filesystem::create_directories(path);
        }
        ~Dir() {
            std::error_code ignored;
            std::filesystem::remove_all(path, ignored);
        }
    };
    static const Dir dir;
    static const std::string s = dir.path.string();
    return s;
}

/// Writes `size` bytes to scratchDir()/name (replacing it) and returns the path.
inline std::string writeFile(const std::string& name, const std::uint8_t* data, std::size_t size) {
    const std::string path = scratchDir() + "/" + name;
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    f.close();
    if (!f) std::abort();  // the harness itself failed: not a finding about tern
    return path;
}

/// Removes scratchDir()/name if it exists.
inline void removeFile(const std::string& name) {
    std::error_code ignored;
    std::filesystem::remove(scratchDir() + "/" + name, ignored);
}

/// Runs `f`; a std::exception is a clean rejection of the input and ends only this step.
/// Anything else (an H5::Exception, which does not derive from std::exception) escapes and
/// ends the process: a finding, as a crash, a sanitizer report, a hang or a leak is.
template <class F>
void clean(F&& f) {
    try {
        f();
    } catch (const std::exception&) {
    }
}

/// Little-endian u32 at p.
inline std::uint32_t le32(const std::uint8_t* p) {
    return std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 |
           std::uint32_t(p[3]) << 24;
}

}  // namespace tern::fuzz
