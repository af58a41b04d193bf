// Checked writes of a run's text files (text_file.hpp).
#include "text_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace tern::run::detail {

namespace {

namespace fs = std::filesystem;

[[noreturn]] void failWith(const std::string& what, const std::string& path, int err) {
    throw std::runtime_error("cannot " + what + " '" + path + "': " + std::strerror(err));
}

/// write() all of `text` to fd, then fsync and close it; the first failure's errno, 0 if none.
int writeAll(int fd, const std::string& text) {
    const char* p = text.data();
    std::size_t left = text.size();
    int err = 0;
    while (left > 0 && !err) {
        const ssize_t n = ::write(fd, p, left);
        if (n < 0) {
            if (errno != EINTR) err = errno;
            continue;
        }
        p += n;
        left -= static_cast<std::size_t>(n);
    }
    if (!err && ::fsync(fd) != 0) err = errno;
    if (::close(fd) != 0 && !err) err = errno;
    return err;
}

}  // namespace

void writeFileAtomically(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) failWith("create", tmp, errno);
    if (const int err = writeAll(fd, text)) {
        ::unlink(tmp.c_str());
        failWith("write", tmp, err);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        failWith("rename '" + tmp + "' onto", path, err);
    }
}

void appendToFile(const std::string& path, const std::string& text) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) failWith("open", path, errno);
    if (const int err = writeAll(fd, text)) failWith("write", path, err);
}

void requireWritableDirectory(const std::string& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec)
        throw std::runtime_error("cannot create the output directory '" + dir + "': " +
                                 ec.message());
    if (!fs::is_directory(dir, ec))
        throw std::runtime_error("the output directory '" + dir + "' is not a directory");
    const std::string probe = (fs::path(dir) / ".tern-write-test").string();
    const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        throw std::runtime_error("the output directory '" + dir + "' is not writable: " +
                                 std::strerror(errno));
    const int err = writeAll(fd, "x");
    ::unlink(probe.c_str());
    if (err)
        throw std::runtime_error("cannot write into the output directory '" + dir + "': " +
                                 std::strerror(err));
}

}  // namespace tern::run::detail
