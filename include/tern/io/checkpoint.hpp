#pragma once
/// \file HDF5 checkpoint files: StateWriter / StateReader on an HDF5 file.
///
/// A checkpoint is an ordinary HDF5 file (docs/checkpoint-format.md): root attributes
/// `format` (string) and `version` (int64); every key "a/b/c" is the dataset `/a/b/c`, with
/// intermediate groups created as needed; attributes hang on groups or datasets ("" = root).
/// Tensors are float32 datasets whose dims are the tensor's Shape (rank 0 is an HDF5 scalar
/// dataspace); integer arrays are 1-D datasets of the narrowest signed type that holds them
/// (read back as int64); byte arrays are uint8 or int8 datasets of any shape; string attributes
/// are fixed-length UTF-8 strings (older files' variable-length ones still read). Any HDF5 tool
/// reads it: `h5dump -H file.h5`, h5py, HDFView.
///
/// The file starts with a 512-byte HDF5 user block holding tern's integrity header (file size
/// and CRC-32; io/integrity.hpp), which the reader checks before libhdf5 reads anything.
///
/// The writer never leaves a half-written file at `path`: it writes `path + ".tmp"` and
/// close() renames that onto `path` after an fsync, so a crash keeps the previous checkpoint.
///
/// Threads: the HDF5 library Debian ships is not thread-safe; use writers and readers from one
/// thread at a time (any thread, but not concurrently).
#include "tern/core/state.hpp"
#include "tern/io/atomic_writer.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tern::io {

/// Writes a checkpoint atomically: the HDF5 file is built in memory; close() writes it, sealed
/// with the integrity header, to `path + ".tmp"` (created by the constructor), fsyncs it,
/// renames it onto `path` (std::filesystem::rename, atomic on POSIX) and fsyncs the directory.
/// Destroyed without close() (an exception, a crash), it removes the tmp file and leaves any
/// existing `path` untouched.
///
/// Errors: std::invalid_argument for a bad key, a size/shape mismatch or a key written twice;
/// std::runtime_error naming the file and the reason for I/O and HDF5 failures ("cannot write
/// '<path>.tmp': No space left on device"); std::logic_error for use after close().
class CheckpointWriter final : public StateWriter, public AtomicWriter {
public:
    using StateWriter::attr;

    /// Creates (truncates) `path + ".tmp"` and writes the root attributes `format` and
    /// `version`. Throws std::invalid_argument for an empty path or format or version < 1,
    /// std::runtime_error if the tmp file cannot be created.
    explicit CheckpointWriter(const std::string& path,
                              const std::string& format = "tern-checkpoint", int version = 1);

    /// Writes `data` as a float32 dataset at `key` ("params/conv1.weights") whose dims are
    /// `shape.dims` (rank 0: a scalar dataspace; zero-sized dims are allowed). Creates
    /// intermediate groups. Throws std::invalid_argument if data.size() != shape.size(), a dim
    /// is negative, the key is malformed or already exists, or a path component is a dataset.
    void write(const std::string& key, CVecRef data, const Shape& shape) override;
    /// Writes a 1-D int64 dataset at `key` (may be empty). Same key rules as write().
    void writeInts(const std::string& key, const std::vector<std::int64_t>& data) override;
    /// Writes `data` as a uint8 dataset (H5T_STD_U8LE) at `key` whose dims are `shape.dims`
    /// (packed codes, masks). Same key and size rules as write().
    void writeBytes(const std::string& key, const std::vector<std::uint8_t>& data,
                    const Shape& shape);
    /// Writes `data` as an int8 dataset (H5T_STD_I8LE); see writeBytes(key, uint8 data, shape).
    void writeBytes(const std::string& key, const std::vector<std::int8_t>& data,
                    const Shape& shape);
    /// Sets a float64 attribute on the group or dataset `path` ("" = root); a missing path is
    /// created as a group; an existing attribute of that name is replaced.
    void attr(const std::string& path, const std::string& name, double value) override;
    /// Sets an int64 attribute; see attr(path, name, double).
    void attr(const std::string& path, const std::string& name, std::int64_t value) override;
    /// Sets a fixed-length UTF-8 string attribute (no NUL bytes); see attr(path, name, double).
    void attr(const std::string& path, const std::string& name, const std::string& value) override;

    /// Closes the HDF5 file, writes it to the tmp file with the integrity header, fsyncs and
    /// closes that, renames it onto `path` and fsyncs the directory. A second call does
    /// nothing, also after a failed one. If a step up to the rename fails (a full disk: "No
    /// space left on device"), the tmp file is removed, `path` is left as it was, and
    /// std::runtime_error names the file and the reason. If only the final directory fsync
    /// fails, the new file is already at `path` (not yet known to be durable) and
    /// std::runtime_error says so.
    void close();
};

/// Reads a checkpoint written by CheckpointWriter (or any HDF5 file with the same layout).
/// The file is opened read-only and never modified.
///
/// Before libhdf5 sees the file, the constructor checks its integrity header (io/integrity.hpp):
/// a damaged or truncated file is refused ("'<path>' is corrupt: checksum mismatch (file
/// damaged or truncated)"). A file without the header (older tern, h5py) is read unchecked,
/// after one warning per file and process through io::warning().
///
/// Errors: the constructor throws std::runtime_error naming the file and the problem (missing,
/// corrupt, not HDF5 / truncated / corrupt with the HDF5 detail appended, wrong or missing
/// `format`, `version` newer than supported). Accessors throw std::out_of_range naming the key
/// and the file if something is missing, std::invalid_argument for a wrong shape, type or rank,
/// and std::runtime_error if HDF5 fails while reading or a dataset claims more values than the
/// file or this machine's memory can hold (checked before anything is allocated).
class CheckpointReader final : public StateReader {
public:
    /// Opens `path` read-only and checks that the root attribute `format` equals `format` and
    /// `version` is in [1, maxVersion].
    explicit CheckpointReader(const std::string& path,
                              const std::string& format = "tern-checkpoint", int maxVersion = 1);
    ~CheckpointReader() override;
    CheckpointReader(const CheckpointReader&) = delete;
    CheckpointReader& operator=(const CheckpointReader&) = delete;

    /// True if `key` names a dataset (tensor or integer array); false for a group or a missing
    /// path. Throws std::invalid_argument for a malformed key ("a//b").
    bool has(const std::string& key) const override;
    /// Reads the float32 dataset `key`; its dims must equal `expected.dims` (an HDF5 scalar
    /// is rank 0). Throws std::out_of_range if missing, std::invalid_argument naming the key and
    /// both shapes on a mismatch, or if the dataset is not float32.
    Vector read(const std::string& key, const Shape& expected) const override;
    /// The stored dims of the dataset `key` (std::out_of_range if missing; std::runtime_error
    /// if the file cannot hold that many values).
    Shape shape(const std::string& key) const;
    /// Reads the uint8 dataset `key`; its dims must equal `expected.dims`. Throws
    /// std::out_of_range if missing, std::invalid_argument naming the key if it is not uint8
    /// (int8 included: no silent conversion) or on a shape mismatch (both shapes named).
    std::vector<std::uint8_t> readBytes(const std::string& key, const Shape& expected) const;
    /// Reads the int8 dataset `key`; see readBytes().
    std::vector<std::int8_t> readSignedBytes(const std::string& key, const Shape& expected) const;
    /// Reads a 1-D (or scalar) integer dataset as int64. Throws std::out_of_range if missing,
    /// std::invalid_argument if it is not an integer type that fits in int64 or has rank > 1.
    std::vector<std::int64_t> readInts(const std::string& key) const override;
    /// True if the object `path` ("" = root) exists and has the attribute `name`.
    bool hasAttr(const std::string& path, const std::string& name) const override;
    /// A float or integer attribute as double.
    double attrDouble(const std::string& path, const std::string& name) const override;
    /// An integer attribute (any integer type that fits in int64).
    std::int64_t attrInt(const std::string& path, const std::string& name) const override;
    /// A string attribute (variable- or fixed-length; trailing NULs of fixed strings dropped).
    std::string attrString(const std::string& path, const std::string& name) const override;

    /// Names of the children (groups and datasets) of the group `group` ("" = root), sorted.
    /// Throws std::out_of_range if missing, std::invalid_argument if it is not a group.
    std::vector<std::string> keys(const std::string& group) const;
    /// True if `path` names a group ("" = root).
    bool hasGroup(const std::string& path) const;

    /// The file's `version` attribute.
    int version() const { return version_; }
    /// The file path.
    const std::string& path() const { return path_; }

private:
    struct Impl;
    std::string path_;
    int version_ = 0;
    std::unique_ptr<Impl> impl_;
};

}  // namespace tern::io
