// Reading an HDF5 file without tern's integrity header in a child process first
// (hdf5_util.hpp: probeUnverified). libhdf5 trusts a file's metadata: damaged metadata can crash
// or hang it, and tern cannot check a file that carries no checksum (written by tern before the
// header existed, by h5py, by other programs). The child opens the file and reads every object,
// every attribute and every dataset (up to a size) with libhdf5; if it crashes, hangs or meets
// an HDF5 error, the file is refused with a message, and the caller's process never reads it.
#include "hdf5_util.hpp"

#include "tern/io/integrity.hpp"

#include <hdf5.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

// Under a sanitizer and libFuzzer, a crash runs libFuzzer's death callback, which saves the input
// as a crash artifact: the child must not (its crash is the reader's expected outcome).
extern "C" void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

namespace tern::io::h5 {

namespace {

constexpr int kOk = 0, kHdf5Error = 3, kNotHdf5 = 4;
constexpr hsize_t kMaxRead = hsize_t{1} << 30;  // bytes read per dataset or attribute

int gPipe = -1;        // child: where the first HDF5 error message goes
bool gInChild = false;  // in a probing child: no nested probes

herr_t firstError(unsigned n, const H5E_error2_t* err, void* out) {
    auto* msg = static_cast<std::string*>(out);
    if (n == 0 && err && err->desc) *msg = err->desc;
    return 0;
}

[[noreturn]] void childFail() {
    std::string msg;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, firstError, &msg);
    if (msg.empty()) msg = "unknown HDF5 error";
    if (gPipe >= 0) {
        const ssize_t ignored = ::write(gPipe, msg.data(), std::min<std::size_t>(msg.size(), 200));
        (void)ignored;
    }
    ::_exit(kHdf5Error);
}

/// Reads `n` elements of `type` from attribute or dataset `id` (read(id, memType, buf)).
template <class Read>
void readAll(hid_t fileType, hssize_t n, Read read) {
    if (n < 0) childFail();
    const hid_t mem = H5Tget_native_type(fileType, H5T_DIR_ASCEND);
    if (mem < 0) childFail();
    const size_t size = H5Tget_size(mem);
    if (size == 0) childFail();
    const double bytes = static_cast<double>(size) * static_cast<double>(n);
    if (bytes > static_cast<double>(kMaxRead)) {  // too large to read here: the readers' size
        H5Tclose(mem);                            // checks refuse what the file cannot hold
        return;
    }
    std::vector<unsigned char> buf(static_cast<size_t>(bytes) + 16);
    if (read(mem, buf.data()) < 0) childFail();
    // variable-length data allocated by libhdf5 is left for _exit() to discard
    H5Tclose(mem);
}

herr_t visitAttr(hid_t obj, const char* name, const H5A_info_t*, void*) {
    const hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) childFail();
    const hid_t type = H5Aget_type(a), space = H5Aget_space(a);
    if (type < 0 || space < 0) childFail();
    readAll(type, H5Sget_simple_extent_npoints(space),
            [&](hid_t mem, void* buf) { return H5Aread(a, mem, buf); });
    H5Sclose(space);
    H5Tclose(type);
    H5Aclose(a);
    return 0;
}

herr_t visitObject(hid_t file, const char* name, const H5O_info_t* info, void*) {
    const hid_t obj = H5Oopen(file, name, H5P_DEFAULT);
    if (obj < 0) childFail();
    hsize_t at = 0;
    if (H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_NATIVE, &at, visitAttr, nullptr) < 0) childFail();
    if (info->type == H5O_TYPE_DATASET) {
        const hid_t type = H5Dget_type(obj), space = H5Dget_space(obj);
        if (type < 0 || space < 0) childFail();
        readAll(type, H5Sget_simple_extent_npoints(space),
                [&](hid_t mem, void* buf) { return H5Dread(obj, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf); });
        H5Sclose(space);
        H5Tclose(type);
    }
    H5Oclose(obj);
    return 0;
}

[[noreturn]] void child(const std::string& path, const std::function<void()>& attempt) {
    gInChild = true;
    // die by the signal: handlers inherited from the parent (a test framework's, a fuzzer's,
    // a sanitizer's) would otherwise go on running the parent's code in this process
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP})
        ::signal(sig, SIG_DFL);
    if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(nullptr);
    // the parent prints what matters (its own warnings come again when it reads the file)
    const int devNull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (devNull >= 0) ::dup2(devNull, STDERR_FILENO);
    if (attempt) {  // the caller's own reading of the file, exceptions included
        try {
            attempt();
        } catch (...) {
        }
        ::_exit(kOk);
    }
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    const htri_t isHdf5 = H5Fis_hdf5(path.c_str());
    if (isHdf5 <= 0) ::_exit(kNotHdf5);
    const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) childFail();
#if H5_VERSION_GE(1, 12, 0)
    if (H5Ovisit3(f, H5_INDEX_NAME, H5_ITER_NATIVE,
                  [](hid_t o, const char* n, const H5O_info2_t* i, void* d) -> herr_t {
                      H5O_info_t old{};
                      old.type = i->type;
                      return visitObject(o, n, &old, d);
                  },
                  nullptr, H5O_INFO_BASIC) < 0)
        childFail();
#else
    if (H5Ovisit2(f, H5_INDEX_NAME, H5_ITER_NATIVE, visitObject, nullptr, H5O_INFO_BASIC) < 0)
        childFail();
#endif
    if (H5Fclose(f) < 0) childFail();
    ::_exit(kOk);
}

}  // namespace

void probeUnverified(const std::string& path, const std::string& who, double timeoutSeconds,
                     const std::function<void()>& attempt) {
    if (gInChild) return;
    const std::string where = who + ": '" + path + "'";
    if (timeoutSeconds <= 0) {
        std::error_code ec;
        const auto bytes = std::filesystem::file_size(path, ec);
        timeoutSeconds = 5.0 + (ec ? 0.0 : static_cast<double>(bytes) / 1e7);
    }
    const std::string why =
        " (it has no integrity header: written by an older tern or another program, so it was "
        "read in a separate process first)";
    int fds[2];
    if (::pipe(fds) != 0)
        throw std::runtime_error(where + ": cannot check it: pipe(): " + std::strerror(errno));
    const pid_t pid = ::fork();
    if (pid < 0) {
        ::close(fds[0]);
        ::close(fds[1]);
        throw std::runtime_error(where + ": cannot check it: fork(): " + std::strerror(errno));
    }
    if (pid == 0) {
        ::close(fds[0]);
        gPipe = fds[1];
        child(path, attempt);
    }
    ::close(fds[1]);
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration<double>(timeoutSeconds);
    int status = 0;
    bool done = false;
    while (!done) {
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            done = true;
        } else if (r < 0 && errno != EINTR) {
            ::close(fds[0]);
            throw std::runtime_error(where + ": cannot check it: waitpid(): " + std::strerror(errno));
        } else if (std::chrono::steady_clock::now() > deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            ::close(fds[0]);
            throw std::runtime_error(where + " is corrupt: libhdf5 did not finish reading it in " +
                                     std::to_string(static_cast<int>(timeoutSeconds)) + " s" + why);
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    }
    char msg[256] = {};
    const ssize_t got = ::read(fds[0], msg, sizeof(msg) - 1);
    ::close(fds[0]);
    if (WIFSIGNALED(status))
        throw std::runtime_error(where + " is corrupt: libhdf5 crashed reading it (signal " +
                                 std::to_string(WTERMSIG(status)) + ")" + why);
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code == kOk || code == kNotHdf5) return;  // the caller reads it (or says it is not HDF5)
    if (code == kHdf5Error)
        throw std::runtime_error(where + " is corrupt or truncated: libhdf5 reports '" +
                                 std::string(msg, got > 0 ? static_cast<size_t>(got) : 0) +
                                 "' reading it" + why);
    throw std::runtime_error(where + " is corrupt: libhdf5 failed reading it (exit " +
                             std::to_string(code) + ")" + why);
}

}  // namespace tern::io::h5

namespace tern::io {

void readUnverifiedSafely(const std::string& path, const std::string& who,
                          const std::function<void()>& attempt) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) return;  // the reader says what is wrong
    IntegrityCheck c;
    try {
        c = checkIntegrity(path, who);
    } catch (const std::exception&) {
        return;  // damaged: the reader throws the same error itself
    }
    if (!c.hasHeader) h5::probeUnverified(path, who, 0, attempt);
}

}  // namespace tern::io
