// Private helpers of src/io shared by the checkpoint files and the plain HDF5 files: quiet
// HDF5 errors with their text kept for our messages, type names, keys and paths, datasets, fsync,
// and the tmp file the writers write and rename (with AtomicWriter, their public base).
#include "hdf5_util.hpp"

#include "tern/core/error.hpp"
#include "tern/io/atomic_writer.hpp"
#include "tern/io/integrity.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iomanip>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace tern::io::h5 {

namespace {

herr_t collectError(unsigned /*n*/, const H5E_error2_t* err, void* data) {
    auto* msgs = static_cast<std::vector<std::string>*>(data);
    if (err && err->desc && *err->desc) {
        std::string m = err->desc;
        if (std::find(msgs->begin(), msgs->end(), m) == msgs->end()) msgs->push_back(m);
    }
    return 0;
}

/// What the last failing HDF5 call on this thread reported (its innermost messages).
thread_local std::string tLastError;

/// HDF5's automatic error handler, called when an API function fails, while its error stack
/// is still intact (by the time a C++ catch block runs, destructors of HDF5 objects have made
/// other API calls and cleared it). Records instead of printing.
herr_t recordError(hid_t /*estack*/, void* /*clientData*/) {
    std::vector<std::string> msgs;
    try {
        H5::Exception::walkErrorStack(H5E_WALK_UPWARD, collectError, &msgs);  // innermost first
        std::string out;
        for (std::size_t i = 0; i < msgs.size() && i < 3; ++i) out += (i ? "; " : "") + msgs[i];
        tLastError = out;
    } catch (...) {  // nothing may propagate through HDF5's C frames
    }
    return 0;
}

}  // namespace

/// The HDF5 library prints its error stack to stderr by default; tern prints nothing. Printing
/// is switched off (dontPrint) and replaced by recordError, which keeps the text for our
/// exception messages. Set on every construction, since other code may change the handler.
void quietHdf5() {
    H5::Exception::dontPrint();
    H5E_auto2_t handler = recordError;
    H5::Exception::setAutoPrint(handler, nullptr);
    tLastError.clear();
}

/// The HDF5 error: what the library reported (e.g. "truncated file: eof = 1024, ..."), then
/// the C++ wrapper's message.
std::string detail(const H5::Exception& e) {
    std::string lib;
    lib.swap(tLastError);
    const std::string where = e.getFuncName() + ": " + e.getDetailMsg();
    std::string out = lib.empty() ? where : lib + " [" + where + "]";
    // One line: some HDF5 messages carry a newline (a ctime() timestamp in "unable to open file").
    std::replace(out.begin(), out.end(), '\n', ' ');
    return out;
}

H5::StrType fixedString(const std::string& value) {
    H5::StrType type(H5::PredType::C_S1, value.size() + 1);
    type.setCset(H5T_CSET_UTF8);
    type.setStrpad(H5T_STR_NULLTERM);
    return type;
}

/// True if the integer type `t` is signed.
bool isSigned(const H5::DataType& t) {
    H5::IntType it;
    it.copy(t);
    return it.getSign() != H5T_SGN_NONE;
}

/// "float32", "int64", "uint8", "string", ... for messages.
std::string typeName(const H5::DataType& t) {
    switch (t.getClass()) {
        case H5T_FLOAT:
            return "float" + std::to_string(8 * t.getSize());
        case H5T_INTEGER: {
            return (isSigned(t) ? "int" : "uint") + std::to_string(8 * t.getSize());
        }
        case H5T_STRING:
            return "string";
        case H5T_COMPOUND:
            return "compound";
        case H5T_ENUM:
            return "enum";
        case H5T_ARRAY:
            return "array";
        default:
            return "HDF5 type class " + std::to_string(static_cast<int>(t.getClass()));
    }
}

/// Integer types whose every value fits in int64 (all but uint64 and wider).
bool fitsInt64(const H5::DataType& t) {
    if (t.getClass() != H5T_INTEGER) return false;
    return t.getSize() < 8 || (t.getSize() == 8 && isSigned(t));
}

/// Dims of a dataspace: rank 0 for a scalar. Throws std::invalid_argument for a null space.
std::optional<Shape> spaceShape(const H5::DataSpace& space) {
    switch (space.getSimpleExtentType()) {
        case H5S_SCALAR:
            return Shape{};
        case H5S_SIMPLE: {
            const int rank = space.getSimpleExtentNdims();
            std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
            space.getSimpleExtentDims(dims.data());
            Shape s;
            for (hsize_t d : dims) s.dims.push_back(static_cast<Index>(d));
            return s;
        }
        default:
            return std::nullopt;  // H5S_NULL: no elements, not even a shape
    }
}

/// Splits a '/'-separated key into its components. A leading '/' is allowed; empty components
/// ("a//b", trailing '/'), "." and ".." are not. An empty key (or "/") gives no components,
/// which is the root, allowed only where `allowRoot`.
std::vector<std::string> splitKey(const std::string& key, const char* where, bool allowRoot) {
    std::vector<std::string> parts;
    const std::string body = (!key.empty() && key.front() == '/') ? key.substr(1) : key;
    if (body.empty()) {
        if (!allowRoot) fail(where, "empty key (the root is not a dataset)");
        return parts;
    }
    std::size_t start = 0;
    while (true) {
        const std::size_t end = body.find('/', start);
        std::string part = body.substr(start, end == std::string::npos ? end : end - start);
        if (part.empty() || part == "." || part == "..")
            fail(where, "malformed key '" + key + "' (empty, '.' or '..' component)");
        parts.push_back(std::move(part));
        if (end == std::string::npos) break;
        start = end + 1;
    }
    return parts;
}

/// "/a/b/c" from components; "/" for the root.
std::string joinKey(const std::vector<std::string>& parts, std::size_t n) {
    if (n == 0) return "/";
    std::string out;
    for (std::size_t i = 0; i < n; ++i) out += "/" + parts[i];
    return out;
}

/// Type of the object at `parts` below the root of `file`, or nullopt if it does not exist.
/// Walks the path one link at a time, so a missing or non-group intermediate gives nullopt
/// (HDF5 would report an error instead). A non-group intermediate sets `blockedBy`.
std::optional<H5O_type_t> objectType(const H5::H5File& file, const std::vector<std::string>& parts,
                                     std::string* blockedBy) {
    if (parts.empty()) return H5O_TYPE_GROUP;
    for (std::size_t n = 1; n <= parts.size(); ++n) {
        const std::string prefix = joinKey(parts, n);
        if (!file.nameExists(prefix)) return std::nullopt;
        const H5O_type_t type = file.childObjType(prefix);
        if (n == parts.size()) return type;
        if (type != H5O_TYPE_GROUP) {
            if (blockedBy) *blockedBy = prefix;
            return std::nullopt;
        }
    }
    return std::nullopt;  // unreachable
}

bool hasObject(const H5::H5File& file, const std::string& key, H5O_type_t type, bool allowRoot,
               const std::string& path, const char* where) {
    const std::vector<std::string> parts = splitKey(key, where, allowRoot);
    try {
        const auto t = objectType(file, parts);
        return t && *t == type;
    } catch (const H5::Exception& e) {
        throw std::runtime_error(std::string(where) + ": '" + key + "' in '" + path +
                                 "': " + detail(e));
    }
}

/// Opens the group or dataset at `path` (already known to exist with type `type`); nullopt
/// for other object kinds (named datatypes).
std::optional<Object> openObject(const H5::H5File& file, const std::string& path,
                                 H5O_type_t type) {
    if (type == H5O_TYPE_GROUP) return Object(file.openGroup(path));
    if (type == H5O_TYPE_DATASET) return Object(file.openDataSet(path));
    return std::nullopt;
}

// ------------------------------------------------------------------ POSIX durability

/// fsync of a file or directory; throws std::runtime_error with errno's text.
void fsyncPath(const std::filesystem::path& p, bool directory, const std::string& where) {
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
    if (fd < 0)
        throw std::runtime_error(where + ": cannot open '" + p.string() + "' to fsync it: " +
                                 std::strerror(errno));
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0)
        throw std::runtime_error(where + ": fsync of '" + p.string() + "' failed: " +
                                 std::strerror(err));
}

/// Creates the groups above the dataset `parts` and checks that the dataset does not exist.
/// Returns the dataset's absolute path.
std::string prepareDataset(H5::H5File& file, const std::vector<std::string>& parts,
                           const std::string& key, const std::string& tmp, const char* where) {
    for (std::size_t n = 1; n < parts.size(); ++n) {
        const std::string prefix = joinKey(parts, n);
        if (!file.nameExists(prefix))
            file.createGroup(prefix);
        else if (file.childObjType(prefix) != H5O_TYPE_GROUP)
            fail(where, "cannot write '" + key + "' to '" + tmp + "': '" + prefix +
                            "' is a dataset, not a group");
    }
    const std::string full = joinKey(parts, parts.size());
    if (file.nameExists(full))
        fail(where, "'" + key + "' is already written to '" + tmp + "'");
    return full;
}

std::vector<hsize_t> datasetDims(const Shape& shape, const std::string& key, const char* where) {
    std::vector<hsize_t> dims;
    for (Index d : shape.dims) {
        if (d < 0) fail(where, "'" + key + "' has a negative dim in shape " + shape.str());
        dims.push_back(static_cast<hsize_t>(d));
    }
    return dims;
}

void checkCount(Index count, const Shape& shape, const std::string& key, const char* where) {
    if (count != shape.size())
        fail(where, TERN_MSG("'" << key << "': data has " << count << " elements, shape "
                                 << shape.str() << " has " << shape.size()));
}

void createDataset(H5::H5File& file, const std::vector<std::string>& parts,
                   const std::string& key, const std::string& tmp, const char* where,
                   const std::vector<hsize_t>& dims, const H5::PredType& fileType,
                   const H5::PredType& memType, const void* data, Index count) {
    const std::string full = prepareDataset(file, parts, key, tmp, where);
    const H5::DataSpace space = dims.empty()
                                    ? H5::DataSpace(H5S_SCALAR)
                                    : H5::DataSpace(static_cast<int>(dims.size()), dims.data());
    H5::DataSet ds = file.createDataSet(full, fileType, space);
    if (count > 0) ds.write(data, memType);
}

/// Opens the dataset `key` or throws std::out_of_range naming key and file.
H5::DataSet openDataset(const H5::H5File& file, const std::string& key, const std::string& path,
                        const char* where) {
    const std::vector<std::string> parts = splitKey(key, where, false);
    const auto type = objectType(file, parts);
    if (!type || *type != H5O_TYPE_DATASET)
        throw std::out_of_range(std::string(where) + ": no dataset '" + key + "' in '" + path +
                                "'" + (type ? " (it is a group)" : ""));
    return file.openDataSet(joinKey(parts, parts.size()));
}

// ------------------------------------------------------------------ claimed sizes

namespace {

/// Bytes of RAM, or less where the address space is limited (ulimit -v).
long double memoryLimit() {
    const long pages = ::sysconf(_SC_PHYS_PAGES), pageSize = ::sysconf(_SC_PAGE_SIZE);
    long double limit = (pages > 0 && pageSize > 0) ? static_cast<long double>(pages) * pageSize
                                                    : std::numeric_limits<long double>::max();
    struct rlimit rl {};
    if (::getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        limit = std::min(limit, static_cast<long double>(rl.rlim_cur));
    return limit;
}

/// "812 bytes", "3.2 GiB", ...
std::string bytesText(long double b) {
    const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    int u = 0;
    while (b >= 1024 && u < 6) {
        b /= 1024;
        ++u;
    }
    std::ostringstream s;
    if (u == 0)
        s << static_cast<unsigned long long>(b) << " bytes";
    else
        s << std::setprecision(3) << static_cast<double>(b) << " " << units[u];
    return s.str();
}

}  // namespace

void checkClaim(const H5::DataSet& ds, const Shape& shape, std::size_t memBytesPerValue,
                const std::string& key, const std::string& path, std::uint64_t fileSize,
                const char* where) {
    long double count = 1;  // in long double: 1e6 x 1e6 x 1e6 must not overflow
    for (Index d : shape.dims) count *= static_cast<long double>(d);
    if (count == 0) return;
    const std::size_t typeSize = ds.getDataType().getSize();
    const H5D_layout_t layout = ds.getCreatePlist().getLayout();
    std::ostringstream claim;
    claim << std::setprecision(4) << where << ": '" << key << "' in '" << path
          << "' claims shape " << shape.str() << " (" << static_cast<double>(count) << " values";
    // Contiguous and compact data is stored as is; chunked data may be compressed or sparse.
    if ((layout == H5D_CONTIGUOUS || layout == H5D_COMPACT) &&
        count * typeSize > static_cast<long double>(fileSize))
        throw std::runtime_error(claim.str() + " of " + std::to_string(typeSize) + " bytes), " +
                                 "but the file has only " + bytesText(fileSize) +
                                 " (file damaged or truncated)");
    const long double memory = count * static_cast<long double>(memBytesPerValue);
    const long double limit = memoryLimit();
    if (memory > limit)
        throw std::runtime_error(claim.str() + ", " + bytesText(memory) + " in memory), " +
                                 "more than this machine's memory (" + bytesText(limit) + ")");
}

// ------------------------------------------------------------------ the writers' tmp file

namespace {

/// HDF5's 8-byte signature, at the start of the HDF5 content.
constexpr unsigned char kHdf5Signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

/// The whole file: kUserBlockSize bytes of user block, then the HDF5 image of the open
/// in-memory `file` (H5Fget_file_image returns the content after the user block). HDF5
/// failures propagate as H5::Exception.
std::vector<unsigned char> fileImage(const H5::H5File& file) {
    const ssize_t n = H5Fget_file_image(file.getId(), nullptr, 0);
    if (n <= 0) throw H5::FileIException("H5Fget_file_image", "cannot get the file's size");
    std::vector<unsigned char> out(kUserBlockSize + static_cast<std::size_t>(n));
    if (H5Fget_file_image(file.getId(), out.data() + kUserBlockSize,
                          static_cast<std::size_t>(n)) != n)
        throw H5::FileIException("H5Fget_file_image", "cannot copy the file image");
    return out;
}

/// Writes all of `data`; errno's text (e.g. "No space left on device") on failure.
void writeAll(int fd, const unsigned char* data, std::size_t n, const Failure& failed) {
    std::size_t done = 0;
    while (done < n) {
        const ssize_t w = ::write(fd, data + done, n - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            throw std::runtime_error(failed(std::strerror(errno)));
        }
        if (w == 0) throw std::runtime_error(failed("write wrote nothing"));
        done += static_cast<std::size_t>(w);
    }
}

}  // namespace

OutputFile::OutputFile(const std::string& finalPath, const Failure& cannotCreate)
    : path(finalPath), tmp(finalPath + ".tmp") {
    fd_ = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd_ < 0) throw std::runtime_error(cannotCreate(std::strerror(errno)));
    try {
        H5::FileAccPropList fapl;
        fapl.setCore(std::size_t{1} << 20, false);  // in memory, no backing store
        fapl.setFcloseDegree(H5F_CLOSE_STRONG);     // close() really closes the file
        H5::FileCreatPropList fcpl;
        fcpl.setUserblock(kUserBlockSize);           // room for the integrity header
        file_ = std::make_unique<H5::H5File>(tmp, H5F_ACC_TRUNC, fcpl, fapl);
    } catch (const H5::Exception& e) {
        discard();
        throw std::runtime_error(cannotCreate(detail(e)));
    } catch (...) {
        discard();
        throw;
    }
}

OutputFile::~OutputFile() {
    // Abandoned (exception or early exit): drop the tmp file, keep `path` as it was.
    if (!closed) discard();
}

void OutputFile::checkOpen(const char* where) const {
    if (closed) throw std::logic_error(std::string(where) + ": '" + path + "' is closed");
}

void OutputFile::closeHdf5(const Failure& failed) {
    if (!file_) return;
    try {
        file_->close();
        file_.reset();
    } catch (const H5::Exception& e) {
        // A failed close may leave the id half torn down: closing it again (H5File's
        // destructor would) can crash inside HDF5. Abandon the handle instead.
        static_cast<void>(file_.release());
        throw std::runtime_error(failed("HDF5 close: " + detail(e)));
    }
}

void OutputFile::discard() noexcept {
    try {
        closeHdf5([](const std::string& why) { return why; });
    } catch (...) {
    }
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
}

bool OutputFile::commit(const std::string& where, const Failure& failed) {
    if (closed) return false;
    closed = true;
    try {
        std::vector<unsigned char> image;
        try {
            file_->flush(H5F_SCOPE_GLOBAL);
            image = fileImage(*file_);
        } catch (const H5::Exception& e) {
            throw std::runtime_error(failed("HDF5: " + detail(e)));
        }
        closeHdf5(failed);
        if (std::memcmp(image.data() + kUserBlockSize, kHdf5Signature, 8) != 0)
            throw std::runtime_error(failed("the HDF5 image does not start after the user block"));
        sealIntegrity(image.data(), image.size());
        writeAll(fd_, image.data(), image.size(), failed);
        if (::fsync(fd_) != 0)
            throw std::runtime_error(failed(std::string("fsync failed: ") + std::strerror(errno)));
        const int fd = fd_;
        fd_ = -1;
        if (::close(fd) != 0)  // NFS reports some write errors only here
            throw std::runtime_error(failed(std::string("close failed: ") + std::strerror(errno)));
        std::error_code ec;
        std::filesystem::rename(tmp, path, ec);
        if (ec)
            throw std::runtime_error(where + ": cannot rename '" + tmp + "' to '" + path +
                                     "': " + ec.message());
    } catch (...) {
        discard();
        throw;
    }
    return true;
}

}  // namespace tern::io::h5

namespace tern::io {

// ------------------------------------------------------------------ AtomicWriter

AtomicWriter::AtomicWriter(std::string path) : path_(std::move(path)) {}

AtomicWriter::~AtomicWriter() = default;

bool AtomicWriter::closed() const { return out_->closed; }

}  // namespace tern::io
