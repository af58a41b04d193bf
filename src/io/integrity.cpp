// The integrity header of tern's HDF5 files (include/tern/io/integrity.hpp): sealing a file
// image in memory, checking a file on disk before libhdf5 sees it, and the io layer's warnings.
#include "tern/io/integrity.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <bitset>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <stdexcept>

namespace tern::io {

namespace {

constexpr std::size_t kMagicSize = 8;
constexpr std::size_t kSizeAt = 8;         // uint64 file size
constexpr std::size_t kCrcAt = 16;         // uint32 CRC-32, zero while computed
constexpr std::size_t kUserBlockAt = 20;   // uint32 user block size
constexpr std::size_t kNoteAt = 24;        // text for a human with `head -c 200`
constexpr std::size_t kHeaderSize = 24;    // the fields that are checked
constexpr char kNote[] =
    "\ntern integrity header: bytes 8-15 the file size, bytes 16-19 the CRC-32 (zlib) of the "
    "whole file with these 4 bytes as zero, bytes 20-23 the user block size; little-endian. "
    "HDF5 content follows at byte 512.\n";
static_assert(kNoteAt + sizeof(kNote) <= kUserBlockSize);

void putLe(unsigned char* p, std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}

std::uint64_t getLe(const unsigned char* p, int bytes) {
    std::uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

/// CRC-32 of `n` bytes continuing `crc` (zlib's crc32 takes at most 4 GiB per call).
std::uint32_t crcUpdate(std::uint32_t crc, const unsigned char* p, std::size_t n) {
    return static_cast<std::uint32_t>(crc32_z(crc, p, n));
}

/// Bits that differ between the first 8 bytes of a file and the magic.
int magicDistance(const unsigned char* p) {
    int d = 0;
    for (std::size_t i = 0; i < kMagicSize; ++i)
        d += static_cast<int>(
            std::bitset<8>(static_cast<unsigned char>(p[i] ^ kIntegrityMagic[i])).count());
    return d;
}

/// A file descriptor closed on scope exit.
struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

/// Reads up to `n` bytes (fewer only at the end of the file); throws with errno's text.
std::size_t readFull(int fd, unsigned char* p, std::size_t n, const std::string& fail) {
    std::size_t got = 0;
    while (got < n) {
        const ssize_t r = ::read(fd, p + got, n - got);
        if (r < 0) {
            if (errno == EINTR) continue;
            throw std::runtime_error(fail + std::strerror(errno));
        }
        if (r == 0) break;
        got += static_cast<std::size_t>(r);
    }
    return got;
}

std::mutex& warningMutex() {
    static std::mutex m;
    return m;
}

std::function<void(const std::string&)>& warningHandler() {
    static std::function<void(const std::string&)> h;
    return h;
}

}  // namespace

void sealIntegrity(unsigned char* file, std::uint64_t size) {
    std::memset(file, 0, kUserBlockSize);
    std::memcpy(file, kIntegrityMagic, kMagicSize);
    putLe(file + kSizeAt, size, 8);
    putLe(file + kUserBlockAt, kUserBlockSize, 4);
    std::memcpy(file + kNoteAt, kNote, sizeof(kNote) - 1);
    // the CRC field is zero while the CRC is computed
    std::uint32_t crc = crcUpdate(0, nullptr, 0);
    crc = crcUpdate(crc, file, static_cast<std::size_t>(size));
    putLe(file + kCrcAt, crc, 4);
}

IntegrityCheck checkIntegrity(const std::string& path, const std::string& who) {
    const std::string where = who + ": '" + path + "'";
    Fd f;
    f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (f.fd < 0)
        throw std::runtime_error(who + ": cannot open '" + path + "': " + std::strerror(errno));
    struct stat st {};
    if (::fstat(f.fd, &st) != 0)
        throw std::runtime_error(who + ": cannot read '" + path + "': " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) throw std::runtime_error(where + " is not a regular file");
    IntegrityCheck out;
    out.size = static_cast<std::uint64_t>(st.st_size);

    const std::string readFailed = who + ": cannot read '" + path + "': ";
    // chunks of up to 1 MiB, uninitialized (small files are checked often: no 1 MiB memset)
    const std::size_t chunk = static_cast<std::size_t>(
        std::clamp<std::uint64_t>(out.size, kHeaderSize, std::uint64_t{1} << 20));
    const std::unique_ptr<unsigned char[]> data(new unsigned char[chunk]);
    unsigned char* const buf = data.get();
    const std::size_t first = readFull(f.fd, buf, chunk, readFailed);
    if (first < kMagicSize) return out;  // too short for a header: no header
    if (std::memcmp(buf, kIntegrityMagic, kMagicSize) != 0) {
        // A header whose magic lost a few bits is a damaged tern file, not a foreign one (the
        // HDF5 signature that starts a file without a user block is 34 bits away).
        if (magicDistance(buf) <= 8)
            throw std::runtime_error(where +
                                     " is corrupt: damaged integrity header (file damaged)");
        return out;
    }
    out.hasHeader = true;
    if (first < kHeaderSize)
        throw std::runtime_error(where + " is corrupt: " + std::to_string(out.size) +
                                 " bytes, too short for its integrity header (file damaged or "
                                 "truncated)");
    const std::uint64_t claimed = getLe(buf + kSizeAt, 8);
    if (claimed != out.size)
        throw std::runtime_error(where + " is corrupt: " + std::to_string(out.size) +
                                 " bytes, the integrity header says " + std::to_string(claimed) +
                                 " (file damaged or truncated)");
    out.crc = static_cast<std::uint32_t>(getLe(buf + kCrcAt, 4));
    const std::uint64_t userBlock = getLe(buf + kUserBlockAt, 4);
    std::memset(buf + kCrcAt, 0, 4);
    std::uint32_t crc = crcUpdate(crcUpdate(0, nullptr, 0), buf, first);
    std::uint64_t seen = first;
    for (;;) {
        const std::size_t n = readFull(f.fd, buf, chunk, readFailed);
        if (n == 0) break;
        crc = crcUpdate(crc, buf, n);
        seen += n;
    }
    if (seen != out.size)  // changed while we read it
        throw std::runtime_error(where + " changed while it was read (" + std::to_string(seen) +
                                 " bytes read, " + std::to_string(out.size) + " expected)");
    if (crc != out.crc)
        throw std::runtime_error(where +
                                 " is corrupt: checksum mismatch (file damaged or truncated)");
    if (userBlock != kUserBlockSize)  // covered by the CRC: a future layout, not damage
        throw std::runtime_error(where + ": integrity header with a user block of " +
                                 std::to_string(userBlock) + " bytes (this tern reads " +
                                 std::to_string(kUserBlockSize) + "); upgrade tern");
    return out;
}

std::function<void(const std::string&)> setWarningHandler(
    std::function<void(const std::string&)> handler) {
    std::lock_guard<std::mutex> lock(warningMutex());
    std::function<void(const std::string&)> old = std::move(warningHandler());
    warningHandler() = std::move(handler);
    return old;
}

void warning(const std::string& text) {
    std::function<void(const std::string&)> handler;
    {
        std::lock_guard<std::mutex> lock(warningMutex());
        handler = warningHandler();
    }
    if (handler)
        handler(text);
    else
        std::cerr << "warning: " << text << std::endl;
}

}  // namespace tern::io
