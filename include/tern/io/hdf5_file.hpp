#pragma once
/// \file Plain HDF5 files that are not tern checkpoints: Hdf5Reader reads the numeric datasets of
/// any HDF5 file (tern-lsq's A and b), Hdf5Writer writes a small result file (tern-lsq's x,
/// scale, objective) atomically. Neither needs nor writes the `format` / `version` attributes
/// of io/checkpoint.hpp. Like the checkpoint classes, they keep HDF5 out of every header.
///
/// Threads: the HDF5 library Debian ships is not thread-safe; use them from one thread at a time.
#include "tern/core/types.hpp"
#include "tern/io/atomic_writer.hpp"

#include <memory>
#include <string>
#include <vector>

namespace tern::io {

/// What a dataset holds, as far as a reader of numbers cares.
struct DatasetInfo {
    /// HDF5 type class of the elements.
    enum class Class { Integer, Float, String, Other };
    Class valueClass = Class::Other;
    std::string typeName;  ///< "float32", "float64", "int8", "uint16", "string", ...
    Shape shape;           ///< stored dims, row-major (rank 0: a scalar)
};

/// Reads datasets of any HDF5 file by name ("A", "group/b"). The file is opened read-only.
///
/// A file with tern's integrity header (one Hdf5Writer wrote) is checked before libhdf5 reads
/// it; other files are read as they are, without a warning (tern-lsq's input comes from h5py).
///
/// Errors: the constructor throws std::runtime_error "Hdf5Reader: cannot open '<path>' ..." for
/// a missing, non-HDF5 or corrupt file ("Hdf5Reader: '<path>' is corrupt: ..." when the
/// integrity check fails). info() and readDoubles() throw std::out_of_range naming the dataset
/// and file if it is missing, std::invalid_argument for a malformed name or a non-numeric
/// dataset, std::runtime_error if HDF5 fails while reading or the dataset claims more values
/// than the file (or, for readDoubles(), this machine's memory) can hold: "'A' in '<path>'
/// claims shape [100000, 100000] ...", before anything is allocated.
class Hdf5Reader {
public:
    explicit Hdf5Reader(const std::string& path);
    ~Hdf5Reader();
    Hdf5Reader(const Hdf5Reader&) = delete;
    Hdf5Reader& operator=(const Hdf5Reader&) = delete;

    /// True if `name` is a dataset (false for a group or a missing path).
    bool has(const std::string& name) const;
    /// Type class, type name and dims of the dataset `name`.
    DatasetInfo info(const std::string& name) const;
    /// The values of an integer or floating-point dataset as double, row-major.
    std::vector<double> readDoubles(const std::string& name) const;

    const std::string& path() const { return path_; }

private:
    struct Impl;
    std::string path_;
    std::unique_ptr<Impl> impl_;
};

/// Writes a plain HDF5 file atomically: built in memory, written by close() to `path + ".tmp"`
/// with tern's integrity header in its user block, fsynced and renamed onto `path`. Destroyed
/// without close(), it removes the tmp file and leaves `path` untouched. Datasets are created
/// at the root or below (groups made as needed); string attributes go on the root as
/// fixed-length UTF-8 strings.
///
/// Errors: std::invalid_argument for a bad or repeated name or a size mismatch;
/// std::runtime_error "Hdf5Writer...: cannot ... '<path>.tmp' (...)" for I/O and HDF5 failures;
/// std::logic_error for use after close().
class Hdf5Writer final : public AtomicWriter {
public:
    /// Creates (truncates) `path + ".tmp"`.
    explicit Hdf5Writer(const std::string& path);

    /// A float32 dataset whose dims are `shape.dims` (rank 0: a scalar).
    void writeFloats(const std::string& name, CVecRef data, const Shape& shape);
    /// A float64 scalar dataset.
    void writeDouble(const std::string& name, double value);
    /// A string attribute on the root.
    void attr(const std::string& name, const std::string& value);
    /// Writes the file, fsyncs it, renames it onto `path` and fsyncs the directory. A second
    /// call does nothing. On failure (a full disk: "No space left on device") the tmp file is
    /// removed and `path` left as it was.
    void close();
};

}  // namespace tern::io
