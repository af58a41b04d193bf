#pragma once
// Private to src/io: the HDF5 helpers the checkpoint files (checkpoint.cpp) and the plain HDF5
// files (hdf5_file.cpp) share. The only place besides those two that includes H5Cpp.h.
#include "tern/core/types.hpp"

#include <H5Cpp.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace tern::io::h5 {

/// The HDF5 library prints its error stack to stderr by default; tern prints nothing. Printing
/// is switched off (dontPrint) and replaced by a handler that keeps the text for our exception
/// messages. Call it on every construction, since other code may change the handler.
void quietHdf5();

/// For a file without tern's integrity header: forks a child that reads every object, attribute
/// and dataset of `path` with libhdf5, and throws std::runtime_error naming the file if the
/// child crashes, takes longer than `timeoutSeconds` or meets an HDF5 error (src/io/probe.cpp).
/// Returns normally for a readable file and for a file with no HDF5 signature (the caller says
/// what it is).
/// timeoutSeconds 0: 5 s plus 1 s per 10 MB of file (reading a sound file takes a fraction).
/// With `attempt`, the child runs attempt() instead (the caller's whole reading of the file:
/// io::readUnverifiedSafely). Nested calls inside a probing child return at once.
void probeUnverified(const std::string& path, const std::string& who, double timeoutSeconds = 0,
                     const std::function<void()>& attempt = {});

/// The HDF5 error on one line: what the library reported (e.g. "truncated file: eof = 1024,
/// ..."), then the C++ wrapper's message.
std::string detail(const H5::Exception& e);

/// A fixed-length UTF-8 string type that holds `value` and its terminating NUL (what the
/// writers use for string attributes: variable-length strings live in HDF5's global heap,
/// whose damage libhdf5 does not survive).
H5::StrType fixedString(const std::string& value);

/// True if the integer type `t` is signed.
bool isSigned(const H5::DataType& t);

/// "float32", "int64", "uint8", "string", ... for messages.
std::string typeName(const H5::DataType& t);

/// Integer types whose every value fits in int64 (all but uint64 and wider).
bool fitsInt64(const H5::DataType& t);

/// Dims of a dataspace: rank 0 for a scalar; nullopt for a null dataspace (no elements, not
/// even a shape).
std::optional<Shape> spaceShape(const H5::DataSpace& space);

/// Splits a '/'-separated key into its components. A leading '/' is allowed; empty components
/// ("a//b", trailing '/'), "." and ".." are not (std::invalid_argument from `where`). An empty
/// key (or "/") gives no components, which is the root, allowed only where `allowRoot`.
std::vector<std::string> splitKey(const std::string& key, const char* where, bool allowRoot);

/// "/a/b/c" from the first `n` components; "/" for the root.
std::string joinKey(const std::vector<std::string>& parts, std::size_t n);

/// Type of the object at `parts` below the root of `file`, or nullopt if it does not exist.
/// Walks the path one link at a time, so a missing or non-group intermediate gives nullopt
/// (HDF5 would report an error instead). A non-group intermediate sets `blockedBy`.
std::optional<H5O_type_t> objectType(const H5::H5File& file, const std::vector<std::string>& parts,
                                     std::string* blockedBy = nullptr);

/// An open group or dataset, the two kinds of object that carry tern's attributes.
/// (H5::H5Object's destructor is protected, so it cannot be owned through a base pointer.)
class Object {
public:
    explicit Object(const H5::Group& g) : obj_(std::in_place_type<H5::Group>, g) {}
    explicit Object(const H5::DataSet& d) : obj_(std::in_place_type<H5::DataSet>, d) {}
    H5::H5Object* operator->() {
        return std::visit([](auto& o) -> H5::H5Object* { return &o; }, obj_);
    }

private:
    std::variant<H5::Group, H5::DataSet> obj_;
};

/// True if `key` names an object of type `type` in `file`. splitKey's rules (root allowed where
/// `allowRoot`); std::runtime_error "<where>: '<key>' in '<path>': <HDF5 detail>" if HDF5 fails.
bool hasObject(const H5::H5File& file, const std::string& key, H5O_type_t type, bool allowRoot,
               const std::string& path, const char* where);

/// Opens the group or dataset at `path` (already known to exist with type `type`); nullopt
/// for other object kinds (named datatypes).
std::optional<Object> openObject(const H5::H5File& file, const std::string& path,
                                 H5O_type_t type);

/// Creates the groups above the dataset `parts` and checks that the dataset does not exist
/// (std::invalid_argument from `where` naming `key` and `file` otherwise). Returns the
/// dataset's absolute path.
std::string prepareDataset(H5::H5File& file, const std::vector<std::string>& parts,
                           const std::string& key, const std::string& tmp, const char* where);

/// The dims of `shape` as HDF5 takes them; std::invalid_argument from `where` naming `key` if
/// one is negative.
std::vector<hsize_t> datasetDims(const Shape& shape, const std::string& key, const char* where);

/// std::invalid_argument from `where` unless the `count` values given for `key` fill `shape`.
void checkCount(Index count, const Shape& shape, const std::string& key, const char* where);

/// Creates the dataset `parts` (named `key`; see prepareDataset) of type `fileType` whose dims
/// are `dims` (none: a scalar dataspace) and writes the `count` values at `data`, in `memType`,
/// into it. HDF5 failures propagate as H5::Exception.
void createDataset(H5::H5File& file, const std::vector<std::string>& parts,
                   const std::string& key, const std::string& tmp, const char* where,
                   const std::vector<hsize_t>& dims, const H5::PredType& fileType,
                   const H5::PredType& memType, const void* data, Index count);

/// Opens the dataset `key` or throws std::out_of_range naming key and file (`path`).
H5::DataSet openDataset(const H5::H5File& file, const std::string& key, const std::string& path,
                        const char* where);

/// fsync of a file or directory; throws std::runtime_error from `where` with errno's text.
void fsyncPath(const std::filesystem::path& p, bool directory, const std::string& where);

/// Throws std::runtime_error from `where`, naming `key` and `path`, if the dataset `ds` of
/// shape `shape` claims more values than the file (`fileSize` bytes) can hold where they are
/// stored as they are (contiguous or compact layout), or than this machine's memory can hold at
/// `memBytesPerValue` bytes each (any layout): a damaged or hostile file is refused before
/// anything is allocated for it.
void checkClaim(const H5::DataSet& ds, const Shape& shape, std::size_t memBytesPerValue,
                const std::string& key, const std::string& path, std::uint64_t fileSize,
                const char* where);

/// Why a step of the writers failed, worded by the writer: "<who>: cannot write '<tmp>': <why>".
using Failure = std::function<std::string(const std::string& why)>;

/// The HDF5 file of an AtomicWriter (include/tern/io/atomic_writer.hpp). `path + ".tmp"` is
/// created (truncated) at once, so an unwritable directory is found early, but HDF5 writes to
/// memory (the core driver): no HDF5 call ever meets a full disk. commit() seals the image
/// with the integrity header (io/integrity.hpp) in its 512-byte user block and writes it with
/// checked POSIX calls.
struct OutputFile {
    std::string path, tmp;
    bool closed = false;

    /// Creates (truncates) `path + ".tmp"` and an empty HDF5 file in memory. Throws
    /// std::runtime_error(cannotCreate(why)) if either fails (then no tmp file is left).
    OutputFile(const std::string& path, const Failure& cannotCreate);
    /// Without commit(): drops the HDF5 file and removes the tmp file. Never throws.
    ~OutputFile();
    OutputFile(const OutputFile&) = delete;
    OutputFile& operator=(const OutputFile&) = delete;

    /// The HDF5 file (in memory) while open.
    H5::H5File& file() { return *file_; }

    /// std::logic_error "<where>: '<path>' is closed" once commit() has been called.
    void checkOpen(const char* where) const;

    /// Closes the HDF5 file, writes its sealed image to the tmp file, fsyncs and closes that
    /// and renames it onto `path`; false (and nothing done) if called before. On failure,
    /// std::runtime_error(failed(why)) (why: "No space left on device", ...), or
    /// "<where>: cannot rename ..."; then the tmp file is removed and `path` left as it was.
    /// The HDF5 handle is never used again after its close, whether that succeeded or not.
    bool commit(const std::string& where, const Failure& failed);

private:
    int fd_ = -1;
    std::unique_ptr<H5::H5File> file_;

    /// Closes the HDF5 file; if that fails, the handle is abandoned (never closed twice).
    void closeHdf5(const Failure& failed);
    /// Drops everything: the HDF5 file, the tmp file's descriptor and the tmp file.
    void discard() noexcept;
};

}  // namespace tern::io::h5
