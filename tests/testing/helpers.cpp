#include "testing/helpers.hpp"

#include <atomic>
#include <filesystem>
#include <unistd.h>

namespace tern::testing {

std::string tempDir(const std::string& tag) {
    static std::atomic<int> counter{0};
    namespace fs = std::filesystem;
    fs::path p = fs::temp_directory_path() /
                 ("tern-" + tag + "-" + std::to_string(::getpid()) + "-" +
                  std::to_string(counter++));
    fs::remove_all(p);
    fs::create_directories(p);
    return p.string();
}

}  // namespace tern::testing
